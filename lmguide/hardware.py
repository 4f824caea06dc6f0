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
    return copy_speed(mib, repeats, warmup)


def copy_speed(mib: float, repeats: int = 7, warmup: int = 1) -> dict:
    """GB/s of copying a ``mib`` MiB float32 tensor (2 x ``mib`` bytes move), median and spread of ``repeats``:
    from RAM when the two tensors are far larger than the CPU's caches, from a cache when they fit in it."""
    import torch

    src = torch.ones(max(int(mib * 2**20) // 4, 1), dtype=torch.float32)
    dst = torch.empty_like(src)
    timing = time_call(lambda: dst.copy_(src), repeats=repeats, warmup=warmup)
    moved = 2 * src.numel() * src.element_size()
    return {"GB/s": moved / timing.median / 1e9, "spread": timing.spread, "MiB copied": mib,
            "runs s": timing.seconds}


def bandwidth_by_size(sizes_mib=(0.25, 1, 4, 16, 64, 256), repeats: int = 7) -> list[dict]:
    """:func:`copy_speed` at each size, smallest first: the speed falls at each cache level the copy outgrows."""
    return [{"MiB": m, **{k: v for k, v in copy_speed(m, repeats).items() if k != "runs s"}} for m in sorted(sizes_mib)]


def cache_sizes() -> dict[str, int]:
    """The CPU's data caches as the system reports them (Linux sysfs), level name -> bytes, e.g.
    ``{"L1d": 49152, "L2": 2097152, "L3": 503316480}``; empty where the system does not say. In a virtual
    machine the last level is often the whole host's, shared with other guests."""
    from pathlib import Path

    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            level, size = (index / "level").read_text().strip(), (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:].upper(), 1)
        sizes[f"L{level}" + ("d" if kind == "Data" else "")] = int(size.rstrip("KMGkmg")) * unit
    return sizes


def weight_bytes(model) -> int:
    """Bytes of the model's parameters as held in memory (tied weights once): what one decode step reads."""
    return sum(bytes_by_dtype(model).values())


def bytes_by_dtype(model) -> dict[str, int]:
    """:func:`weight_bytes` split by what the weights are stored in (``{"float32": ..., "int8": ...}``): float
    and int8 parameters and buffers (tied ones once), and the packed weights of torch's dynamic int8 Linear."""
    seen, counts = set(), {}

    def add(dtype, n):
        name = str(dtype).replace("torch.", "").replace("qint8", "int8")
        counts[name] = counts.get(name, 0) + n

    for p in list(model.parameters()) + list(model.buffers()):
        if p.data_ptr() in seen or not p.is_floating_point() and p.dtype not in _INT_DTYPES():
            continue
        seen.add(p.data_ptr())
        add(p.dtype, p.numel() * p.element_size())
    for module in model.modules():  # torch's dynamic int8 Linear keeps its weight outside parameters()
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            w, b = packed._weight_bias()
            add(w.dtype, w.numel() * w.element_size())
            if b is not None:
                add(b.dtype, b.numel() * b.element_size())
    return counts


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


# --- a decode step, modelled -----------------------------------------------------------------------------
def layer_count(name: str) -> int:
    """Transformer blocks of zoo model ``name``: its config's ``num_hidden_layers`` (or ``n_layer``), its
    parent's for an adapter, the ``blk.N`` tensors of a GGUF file (read from the header, nothing loaded)."""
    import json

    from lmguide import engines, zoo

    e = zoo.entry(name)
    if e.parent and not (zoo.path(name) / "config.json").is_file():
        return layer_count(e.parent)
    if engines.default_kind(name) == "llama.cpp":
        from lmguide.engines import llama_cpp

        blocks = {t.split(".")[1] for t in llama_cpp.gguf_tensor_bytes(llama_cpp.gguf_file(name)) if t.startswith("blk.")}
        return len(blocks)
    config = json.loads((zoo.path(name) / "config.json").read_text())
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if key in config:
            return int(config[key])
    raise ValueError(f"{name}'s config.json names no layer count (num_hidden_layers, n_layer or num_layers)")


def fit_step_model(step_ms, layers, bytes_read, gb_per_s: float | None = None) -> dict:
    """Fit ``step = fixed + per_layer x layers + bytes_read / bandwidth`` to measured decode steps (ms).

    ``fixed`` is what every step pays once (the loop, choosing the token); ``per_layer`` what each block
    adds besides reading its weights (launching its kernels, attention over the cache). With ``gb_per_s``
    (a copy's measured bandwidth) the bytes term is fixed and two numbers are fitted; without it the
    bandwidth is fitted too, an *effective* bandwidth that also absorbs work growing with the bytes (4-bit
    weights unpacked before multiplying). Least squares with every term >= 0 (each subset of terms tried:
    exact for three unknowns). Returns the terms, each step's predicted ms, the error of each prediction
    (% of the measured step) and the share of each step that reading the bytes at the bandwidth explains.
    """
    import itertools

    import numpy as np

    t = np.asarray(step_ms, dtype=float)
    n_layers = np.asarray(layers, dtype=float)
    nbytes = np.asarray(bytes_read, dtype=float)
    unknowns = 2 if gb_per_s else 3
    if not len(t) == len(n_layers) == len(nbytes) or len(t) < unknowns:
        raise ValueError(f"give step_ms, layers and bytes_read of the same length, at least {unknowns} models "
                         f"(as many as the terms fitted)")
    target = t - (nbytes / (gb_per_s * 1e9) * 1000 if gb_per_s else 0)
    x = np.stack([np.ones_like(t), n_layers, nbytes / 1e9 * 1000], axis=1)[:, :unknowns]  # ms per (1, layer, GB/s)
    best = (np.zeros(unknowns), float((target ** 2).sum()))
    for size in range(unknowns, 0, -1):
        for columns in itertools.combinations(range(unknowns), size):
            coef = np.linalg.lstsq(x[:, columns], target, rcond=None)[0]
            error = float(((x[:, columns] @ coef - target) ** 2).sum())
            if (coef >= 0).all() and error < best[1] - 1e-12 * max(1.0, best[1]):
                best = (np.zeros(unknowns), error)
                best[0][list(columns)] = coef
    coef = best[0]
    bandwidth = gb_per_s or (1 / coef[2] if coef[2] > 0 else float("inf"))
    read_ms = nbytes / (bandwidth * 1e9) * 1000
    predicted = coef[0] + coef[1] * n_layers + read_ms
    return {"fixed ms": float(coef[0]), "per layer ms": float(coef[1]), "bandwidth GB/s": float(bandwidth),
            "bandwidth fitted": gb_per_s is None, "predicted ms": predicted.tolist(),
            "error %": (100 * (predicted - t) / t).tolist(), "bytes share %": (100 * read_ms / t).tolist()}


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
                "AdamW training GB": fine_tuning_memory(parameters, parameters)["total GB"]})
    return row


def fine_tuning_memory(parameters: float, trainable: float, weight_bytes: float = 4) -> dict:
    """Memory a fine-tuning step needs for weights and optimizer state (GB), activations not counted: every
    weight at ``weight_bytes`` per parameter (4 fp32, 2 bf16, ~0.5 a 4-bit base as in QLoRA), and per
    *trainable* parameter a gradient (4) and AdamW's two moments (8), plus an fp32 master copy (4) when the
    weights are stored in fewer bytes. Full fine-tuning in fp32: ``trainable = parameters`` and 16 bytes each
    (:data:`ADAMW_BYTES_PER_PARAMETER`); LoRA: ``trainable`` is the adapters' parameters
    (:func:`lora_parameters`)."""
    if not 0 <= trainable <= parameters or weight_bytes <= 0:
        raise ValueError(f"need 0 <= trainable <= parameters and weight_bytes > 0 (got {trainable}, {parameters}, "
                         f"{weight_bytes})")
    per_trainable = 4 + 8 + (4 if weight_bytes < 4 else 0)
    weights, states = parameters * weight_bytes, trainable * per_trainable
    return {"weights GB": weights / 1e9, "trainable parameters M": trainable / 1e6,
            "gradients + AdamW GB": states / 1e9, "total GB": (weights + states) / 1e9}


def lora_parameters(layers: int, shapes, rank: int = 8) -> int:
    """Parameters of rank-``rank`` LoRA adapters on each ``(inputs, outputs)`` matrix of every layer: each adds
    ``rank x (inputs + outputs)`` (its A and B)."""
    return layers * sum(rank * (n_in + n_out) for n_in, n_out in shapes)


def large_model_table(gb_per_s: float, models: dict = LARGE_MODELS, context: int = 4096):
    """:func:`model_arithmetic` for each of ``models`` (name -> parameters, layers, kv heads, head size)."""
    import pandas as pd

    return pd.DataFrame({name: model_arithmetic(*shape, gb_per_s, context) for name, shape in models.items()}).T
