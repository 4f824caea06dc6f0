"""Decode speed of one model in several engines and formats, each beside its own bandwidth bound (notebook 07).

Each variant is an engine of :mod:`lmguide.engines` (torch in fp32, bf16 or dynamic int8;
onnxruntime in fp32 or int8), opened and timed in a fresh process of its own
(:func:`engine_speed` through :mod:`lmguide.workers`): one copy of the weights in memory at a
time, and each engine's peak memory its own. The timing is :func:`lmguide.timing.first_token_and_decode`
(the one split of first-token time and decode steps, and the one median) of the engine's greedy
``generate``; the bound is :func:`lmguide.hardware.decode_bound` of the bytes *that* engine reads
per step (``Engine.weight_bytes``).

Engines decode one sequence at a time; the batched row ("torch fp32, batch 8") times
``lmguide.sampling.greedy_generate`` on the torch model instead (:func:`lmguide.timing.decode_speed`),
the batching notebook 02 teaches. Its loop does a little more per step than the engine's
(masks and positions for a batch), which favours the single-sequence row slightly.
"""
from __future__ import annotations

import math

from lmguide import _util, engines, hardware
from lmguide.timing import PROMPT, decode_speed

# the row label (as notebook 07's stored tables name it) -> (engine kind, precision)
ENGINES = {"torch fp32": ("torch", "fp32"), "torch bf16": ("torch", "bf16"), "torch int8": ("torch", "int8"),
           "ort fp32": ("onnx", "fp32"), "ort int8": ("onnx", "int8")}


def _check(labels) -> None:
    unknown = [label for label in labels if label not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")


def open_variant(name: str, label: str, **options) -> engines.Engine:
    """Zoo model ``name`` in the engine a row ``label`` names ("torch int8", "ort fp32", ...)."""
    _check([label])
    kind, precision = ENGINES[label]
    return engines.open_engine(name, kind, precision=precision, **options)


def engine_speed(name: str, label: str, repeats: int = 3, threads: int = 2, new_tokens: int = 24,
                 batch: int = 1) -> dict:
    """One engine's decode timing for zoo model ``name``, in this process: open it, then greedy runs of 1 and
    ``new_tokens`` tokens (:func:`~lmguide.timing.first_token_and_decode`: interleaved, one warm-up,
    ``repeats`` timed). ``batch`` > 1 (torch fp32 only) decodes that many copies of the prompt together.
    Call it through :mod:`lmguide.workers`, so that the peak RSS is this engine's alone."""
    import torch

    _check([label])
    if batch != 1 and label != "torch fp32":
        raise ValueError(f"batch must be 1 for {label} (got {batch}); engines decode one sequence at a time, "
                         "only the torch fp32 row is batched")
    torch.set_num_threads(threads)
    if batch == 1:
        engine = open_variant(name, label)
        ids = engine.encode(PROMPT)
        r = engine.decode_speed(ids, new_tokens, repeats)
        read, setup, file_mib = engine.weight_bytes, engine.setup_seconds, engine.file_mib()
    else:
        from lmguide import load

        model, tokenizer = load(name)
        ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"].repeat(batch, 1)  # (batch, T)
        r = decode_speed(model, ids, new_tokens, repeats)
        read, setup, file_mib = hardware.weight_bytes(model), 0.0, math.nan
    return {"step ms": r["step ms"], "first token ms": r["first token ms"], "spread": r["spread"],
            "weight bytes": read, "setup s": setup, "file MiB": file_mib, "peak RSS MiB": _util.peak_rss_mib()}


def decode_variants(name: str = "smollm2-135m", repeats: int = 3, threads: int = 2, new_tokens: int = 24,
                    batch: int = 8, progress: bool = True, which=tuple(ENGINES)) -> list[dict]:
    """Decode speed of ``name`` in each engine of ``which`` and in torch fp32 on a batch of ``batch`` sequences,
    each with its bandwidth bound (bytes it reads per step / measured bandwidth).

    One row per engine: engine, weights MiB, step ms, tokens/s, bound tokens/s, % of bound, first token ms,
    setup s, file MiB (the ONNX graph; NaN for torch), peak RSS MiB, spread (of the per-round step times).
    """
    from tqdm.auto import tqdm

    from lmguide import workers

    _check(which)
    bandwidth = hardware.memory_bandwidth()
    _util.release_memory()  # hand the copy's buffers back before the engines load
    jobs = [(label, label, 1) for label in which] + [(f"torch fp32, batch {batch}", "torch fp32", batch)]
    rows = []
    for row_label, label, sequences in tqdm(jobs, desc="decode variants", disable=not progress):
        r = workers.run_or_raise(f"timing {name} in {row_label}", engine_speed, name, label, repeats=repeats,
                                 threads=threads, new_tokens=new_tokens, batch=sequences)
        bound = hardware.decode_bound(r["weight bytes"], bandwidth["GB/s"])
        steps_per_s = 1000 / r["step ms"] if r["step ms"] > 0 else math.nan  # NaN when load hid the steps
        rows.append({"engine": row_label, "weights MiB": r["weight bytes"] / _util.MIB, "step ms": r["step ms"],
                     "tokens/s": sequences * steps_per_s, "bound tokens/s": bound * sequences,
                     "% of bound": 100 * steps_per_s / bound,  # steps/s vs reads of the weights/s
                     "first token ms": r["first token ms"], "setup s": r["setup s"], "file MiB": r["file MiB"],
                     "peak RSS MiB": r["peak RSS MiB"], "spread": r["spread"]})
    return rows
