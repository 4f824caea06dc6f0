"""One model in many precisions, measured side by side: size, forward and decode latency, quality.

Notebook 05 turns a model into each of ``quantize.PRECISIONS`` (``quantize.to_precision``) and
measures every variant the same way here; the int8 variants' model cards hold the same rows
(``python -m lmguide.recipes.quantized --measure``). Sizes are in MiB; quality is the one
scorer's (``measure.quality.score``: bits per byte on the whole Austen test split, or QA dev F1),
so a row's "quality task" and "quality" mean what they mean in the comparison table.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from lmguide import _util
from lmguide.eval import weights_key
from lmguide.measure import quality
from lmguide.quantize import QuantLinear, quantization_of, quantized_file_bytes, to_precision, torch_state_bytes
from lmguide.timing import time_call

# ----------------------------------------------------------------------------- sizes


def stored_bytes(model: nn.Module) -> int:
    """Bytes of weights the model would store: the safetensors data for float and our quantized
    models, a ``torch.save`` pickle for torch's dynamic quantization (which safetensors cannot hold)."""
    if quantization_of(model) is not None:
        return quantized_file_bytes(model)
    if any("quantized" in type(m).__module__ for m in model.modules()):
        return torch_state_bytes(model)
    seen, total = set(), 0
    for t in model.state_dict().values():
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def linear_weight_bytes(model: nn.Module) -> dict:
    """Bytes held by the linear layers' weights (codes + scales + minimums) and by everything else.

    Linear layers are ``nn.Linear``, GPT-2's ``Conv1D`` and the quantized layers; a weight tied to
    the input embedding (the output head) counts as a linear weight, once.
    """
    from transformers.pytorch_utils import Conv1D

    linear_ids = {id(m.weight) for m in model.modules() if type(m) in (nn.Linear, Conv1D)}
    linear, total = 0, 0
    seen = set()
    for m in model.modules():
        if "quantized" in type(m).__module__ and type(m).__name__ == "Linear":  # torch's dynamic int8
            w = m.weight()  # int8 codes, with one float64 scale per tensor (or per row)
            size = w.numel() + 8 * (w.q_per_channel_scales().numel() if w.qscheme() != torch.per_tensor_affine else 1)
            linear, total = linear + size, total + size
        own = list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
        for name, t in own:
            if t is None or id(t) in seen:
                continue
            seen.add(id(t))
            size = t.numel() * t.element_size()
            total += size
            if isinstance(m, QuantLinear) and name != "bias" or id(t) in linear_ids:
                linear += size
    return {"linear weights": linear, "everything": total}


def supports_bf16() -> dict:
    """Whether this CPU has bfloat16 (and float16) instructions that oneDNN uses, and which flags say so."""
    flags = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    mkldnn = getattr(torch.ops, "mkldnn", None)

    def probe(fn):
        try:
            return bool(getattr(mkldnn, fn)())
        except (AttributeError, RuntimeError):
            return False

    return {"bf16": probe("_is_mkldnn_bf16_supported"), "fp16": probe("_is_mkldnn_fp16_supported"),
            "cpu flags": sorted(flags & {"avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16", "avx2", "avx512f"}),
            "capability": torch.backends.cpu.get_cpu_capability()}


# ----------------------------------------------------------------------------- latency


def sample_ids(model: nn.Module, batch: int, length: int) -> torch.Tensor:
    """Seeded random token ids (batch, length) in the model's vocabulary, for timing."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(5, model.config.vocab_size, (batch, length), generator=g)


@torch.inference_mode()
def forward_latency(model: nn.Module, batch: int = 8, length: int = 128, repeats: int = 3, warmup: int = 1):
    """``timing.Timing`` of one forward pass over ``batch`` x ``length`` random token ids."""
    ids = sample_ids(model, batch, length)
    mask = torch.ones_like(ids)
    return time_call(lambda: model(input_ids=ids, attention_mask=mask), repeats=repeats, warmup=warmup)


@torch.inference_mode()
def decode_latency(model: nn.Module, prompt_length: int = 128, repeats: int = 5, warmup: int = 1):
    """``timing.Timing`` of one decoding step (one new token, batch 1) after a ``prompt_length`` prompt, KV cache on."""
    ids = sample_ids(model, 1, prompt_length + 1)
    cache = model(input_ids=ids[:, :prompt_length], use_cache=True).cache   # transformers 5: ``cache``
    step_ids = ids[:, prompt_length:]

    def step():
        out = model(input_ids=step_ids, cache=cache, use_cache=True)
        cache.crop(-1)  # drop the new token: every timed step sees the same prompt
        return out

    return time_call(step, repeats=repeats, warmup=warmup)


_MATMUL_OPS = ("aten::addmm", "aten::mm", "aten::_int_mm", "quantized::linear_dynamic", "aten::linear",
               "aten::matmul", "aten::bmm", "aten::baddbmm")
_ATTENTION_OPS = ("aten::_scaled_dot_product", "aten::scaled_dot_product", "aten::softmax", "aten::_softmax")


@contextlib.contextmanager
def _native_stderr_quiet():
    """Silence what C++ code writes straight to file descriptor 2 (the profiler's start/stop lines),
    which Python's warning filters cannot reach and a notebook would show as stderr."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@torch.inference_mode()
def time_by_op(model: nn.Module, batch: int = 8, length: int = 128, warmup: int = 1):
    """Where one forward pass spends its CPU time: matrix multiplies, attention, everything else.

    Returns a pandas DataFrame (ms and share of the profiled self time per group), from
    ``torch.profiler`` over one pass after ``warmup`` untimed ones.
    """
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile

    ids = sample_ids(model, batch, length)
    mask = torch.ones_like(ids)
    for _ in range(warmup):
        model(input_ids=ids, attention_mask=mask)
    with _native_stderr_quiet(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(input_ids=ids, attention_mask=mask)
    groups = {"matrix multiplies": 0.0, "attention (scores, softmax)": 0.0, "everything else": 0.0}
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3
        if event.key.startswith(_MATMUL_OPS):
            groups["matrix multiplies"] += ms
        elif event.key.startswith(_ATTENTION_OPS):
            groups["attention (scores, softmax)"] += ms
        else:
            groups["everything else"] += ms
    total = sum(groups.values())
    return pd.DataFrame({"ms": groups, "share": {k: v / total for k, v in groups.items()}})


# ----------------------------------------------------------------------------- one row


def quality_key(name: str, precision: str) -> str:
    """The cache key of a precision's whole-task score: the model's files, then the precision."""
    slug = precision.replace(" ", "-").replace("(", "").replace(")", "")
    return f"{weights_key(name)}-{slug}"


def measure_precision(name: str, precision: str, with_quality: bool = True, repeats: int = 3,
                      decode_repeats: int = 5) -> dict:
    """One row of the precisions table: load the zoo model ``name`` afresh, convert it to ``precision``,
    measure size (MiB), forward (8 x 128) and one-token decode latency, and quality; then let it go.

    Quality is ``measure.quality.score`` on the whole task, cached under :func:`quality_key`.
    Loading each variant afresh keeps one copy in memory at a time (SmolLM2 in fp32 is 513 MiB).
    """
    from lmguide import zoo

    model, tokenizer = zoo.load(name)
    kind = zoo.entry(name).kind
    model = to_precision(model, precision)
    row = {"model": name, "precision": precision, "size MiB": stored_bytes(model) / _util.MIB,
           "linear weights MiB": linear_weight_bytes(model)["linear weights"] / _util.MIB}
    timing = forward_latency(model, repeats=repeats)
    row.update({"forward 8x128 ms": 1e3 * timing.median, "forward spread": timing.spread})
    if kind == "causal-lm":
        step = decode_latency(model, repeats=decode_repeats)
        row.update({"decode 1 token ms": 1e3 * step.median, "decode spread": step.spread})
    else:
        row.update({"decode 1 token ms": float("nan"), "decode spread": float("nan")})
    if with_quality:
        with torch.inference_mode():
            q = quality.score(model, tokenizer, kind, key=quality_key(name, precision))
        row.update({"quality task": q["task"], "quality": q["value"]})
    row["threads"] = torch.get_num_threads()
    del model
    _util.release_memory()  # give the variant's memory back before the next one is loaded
    return row
