"""What bounds a model's speed on this machine: memory bandwidth, the bytes of weights one step reads,
the decode bound they set, how speed scales with threads, and which device class a model fits.

Decoding one token reads every weight once, so no engine can decode faster than
``bandwidth / weight bytes`` tokens per second (:func:`decode_bound`). Notebook 07 measures the
bandwidth with a large copy (:func:`memory_bandwidth`), counts the bytes (:func:`weight_bytes`)
and sets each model's measured speed beside its bound.
"""
from __future__ import annotations

import time

from lmguide.timing import PROMPT, decode_speed, time_call

HARDWARE_CLASSES = (  # (name, model RAM budget in MiB): the first class whose budget holds the model
    ("microcontroller / embedded board", 64),
    ("phone or Raspberry Pi", 512),
    ("any laptop", 2048),
    ("laptop with 16 GB or a server", 12288),
    ("GPU server", float("inf")),
)


def machine() -> dict:
    """What the numbers were measured on: CPU model, cores, torch threads, library versions."""
    import os
    import platform

    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "platform": platform.platform()}


def memory_bandwidth(mib: int = 256, repeats: int = 7, warmup: int = 1) -> dict:
    """This machine's memory bandwidth from a large tensor copy, median of ``repeats``.

    A copy of N bytes reads N and writes N, so 2N bytes move; the buffer is much larger than any
    CPU cache, so they come from RAM. Returns GB/s (1e9 bytes) median and spread, and the size.
    """
    import torch

    if mib < 64:
        raise ValueError(f"mib must be >= 64 (got {mib}); a smaller copy fits in the CPU caches")
    src = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    timing = time_call(lambda: dst.copy_(src), repeats=repeats, warmup=warmup)
    moved = 2 * src.numel() * src.element_size()
    return {"GB/s": moved / timing.median / 1e9, "spread": timing.spread, "MiB copied": mib,
            "runs s": timing.seconds}


def weight_bytes(model) -> int:
    """Bytes of the model's parameters as held in memory (tied weights once): what one decode step reads."""
    seen, total = set(), 0
    for p in list(model.parameters()) + list(model.buffers()):
        if p.data_ptr() in seen or not p.is_floating_point() and p.dtype not in _INT_DTYPES():
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    for module in model.modules():  # torch's dynamic int8 Linear keeps its weight outside parameters()
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            w, b = packed._weight_bias()
            total += w.numel() * w.element_size() + (b.numel() * b.element_size() if b is not None else 0)
    return total


def _INT_DTYPES():
    import torch

    return (torch.int8, torch.uint8, torch.qint8)


def decode_bound(weight_bytes: int, gb_per_s: float) -> float:
    """Upper bound on tokens/s when each new token must read every weight once from RAM."""
    if weight_bytes <= 0 or gb_per_s <= 0:
        raise ValueError(f"weight_bytes and gb_per_s must be > 0 (got {weight_bytes}, {gb_per_s})")
    return gb_per_s * 1e9 / weight_bytes


def hardware_class(model_ram_mib: float) -> str:
    """The smallest hardware class whose memory budget for the model holds ``model_ram_mib``."""
    for name, budget in HARDWARE_CLASSES:
        if model_ram_mib <= budget:
            return name
    return HARDWARE_CLASSES[-1][0]


def hardware_rule() -> str:
    """The rule :func:`hardware_class` applies, in words."""
    parts = [f"<= {b:,.0f} MiB: {n}" for n, b in HARDWARE_CLASSES if b != float("inf")]
    return ("a model's class is the smallest device whose spare RAM holds the memory the model adds to a "
            "process (peak RSS minus the process before loading): " + "; ".join(parts) + "; more: GPU server")


def thread_scaling(model, input_ids, threads=None, new_tokens: int = 24, repeats: int = 3) -> list[dict]:
    """Decode tokens/s at each torch thread count (default 1, 2 and all cores); threads restored after."""
    import os

    import torch

    threads = threads or sorted({1, 2, os.cpu_count() or 1})
    before = torch.get_num_threads()
    rows = []
    try:
        for n in threads:
            torch.set_num_threads(n)
            r = decode_speed(model, input_ids, new_tokens, repeats)
            rows.append({"threads": n, "tokens/s": r["tokens/s"], "step ms": r["step ms"], "spread": r["spread"]})
    finally:
        torch.set_num_threads(before)
    return rows


def scaling_table(names=("austen-gpt-small", "smollm2-135m"), repeats: int = 3, new_tokens: int = 24) -> list[dict]:
    """:func:`thread_scaling` for each model: rows of model, threads, tokens/s, step ms and spread."""
    import torch

    from lmguide import load

    rows = []
    for name in names:
        model, tokenizer = load(name)
        ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            rows += [{"model": name, **r} for r in thread_scaling(model, ids, new_tokens=new_tokens, repeats=repeats)]
        del model
    return rows


# --- what "large" means today: arithmetic from a model's shape, not a measurement -----------------------
# parameters, layers, key/value heads, head size: each model's published configuration
LARGE_MODELS = {
    "Llama-2-7B": (6.74e9, 32, 32, 128),       # full multi-head attention: 32 key/value heads
    "Llama-3.1-70B": (70.6e9, 80, 8, 128),     # grouped-query attention: 8 key/value heads
    "Llama-3.1-405B": (405.9e9, 126, 8, 128),
}
ADAMW_BYTES_PER_PARAMETER = 16  # fp32 weights 4 + gradients 4 + AdamW's two moments 8 (activations not counted)


def kv_cache_bytes_per_token(layers: int, kv_heads: int, head_size: int, bytes_per_value: int = 2) -> int:
    """Bytes the key/value cache grows by per token: a key and a value vector per layer and key/value head."""
    return 2 * layers * kv_heads * head_size * bytes_per_value


def model_arithmetic(parameters: float, layers: int, kv_heads: int, head_size: int, gb_per_s: float,
                     context: int = 4096) -> dict:
    """What a model of this shape needs, by arithmetic: weights at 16, 8 and 4 bits (GB), the decode bound at
    ``gb_per_s`` for each, the KV cache (fp16) per token and at ``context`` tokens, and full fine-tuning
    memory with AdamW (:data:`ADAMW_BYTES_PER_PARAMETER`)."""
    kv = kv_cache_bytes_per_token(layers, kv_heads, head_size)
    row = {"parameters B": parameters / 1e9}
    for bits in (16, 8, 4):
        weights = parameters * bits / 8
        row[f"weights {bits}-bit GB"] = weights / 1e9
        row[f"decode bound {bits}-bit tokens/s"] = decode_bound(int(weights), gb_per_s)
    row.update({"KV cache per token MiB": kv / 2**20, f"KV cache at {context:,} tokens GB": kv * context / 1e9,
                "AdamW training GB": parameters * ADAMW_BYTES_PER_PARAMETER / 1e9})
    return row


def large_model_table(gb_per_s: float, models: dict = LARGE_MODELS, context: int = 4096):
    """:func:`model_arithmetic` for each of ``models`` (name -> parameters, layers, kv heads, head size)."""
    import pandas as pd

    return pd.DataFrame({name: model_arithmetic(*shape, gb_per_s, context) for name, shape in models.items()}).T
