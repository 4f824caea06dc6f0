"""One row of the comparison table: a zoo model loaded, timed and scored, in a process of its own.

Each model is measured in a fresh process (:func:`measure_isolated`, through ``lmguide.workers``)
so that one model's peak memory cannot hide in another's. Every row uses the same columns
(sizes in MiB, ``"peak RSS MiB"``), whatever the model's kind.
"""
from __future__ import annotations

import time

from lmguide import _util
from lmguide.eval import weights_key
from lmguide.hardware import bytes_by_dtype, weight_bytes
from lmguide.measure import quality
from lmguide.timing import PROMPT, decode_speed, interleaved


def _import_model_code(name: str) -> None:
    """Verify the files and import the model class's module, so neither counts as load time or model RAM."""
    from lmguide import zoo

    folder = zoo.path(name)
    try:
        import transformers

        config = transformers.AutoConfig.from_pretrained(folder)
        auto = getattr(transformers, zoo.AUTO_CLASSES[zoo.ENTRIES[name].kind])
        auto._model_mapping[type(config)]  # importing the modelling module is the side effect wanted
    except Exception:  # a variant with its own loader: its code is imported by the load itself
        pass


def size_to_run(name: str) -> int:
    """Bytes of the files that run: an adapter (LoRA) counts with its parent, which it cannot run without."""
    from lmguide import zoo

    size = zoo.size_on_disk(name)
    size = size if size is not None else sum(p.stat().st_size for p in zoo.path(name).iterdir() if p.is_file())
    entry = zoo.entry(name)
    if entry.parent and any(f.startswith("adapter_") for f in entry.files):
        size += size_to_run(entry.parent)
    return size


def weights_precision(model) -> str:
    """What the weights are stored in: each dtype holding at least a tenth of their bytes, most bytes first
    (``"int8 + float32"``: int8 layers beside a float32 embedding table)."""
    counts = bytes_by_dtype(model)
    total = sum(counts.values())
    return " + ".join(k for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v >= 0.1 * total) or "unknown"


def _encoder_speed(model, tokenizer, kind: str, repeats: int) -> dict:
    """One input's latency and inputs/s for a batch of 32 (sentences for encoders, questions for QA)."""
    from lmguide import qa, qa_data

    questions = list(qa_data.iter_questions(qa_data.load_split("dev")))[:32]
    if kind == "encoder":
        from lmguide.embeddings import embed

        texts = [q["question"] for q in questions]
        one, batch = (lambda: embed(texts[:1], model, tokenizer)), (lambda: embed(texts, model, tokenizer))
    else:
        pairs = [(q["question"], q["context"]) for q in questions]
        one = lambda: qa.answer_many(pairs[:1], model, tokenizer)
        batch = lambda: qa.answer_many(pairs, model, tokenizer)
    runs = interleaved({"one": one, "batch": batch}, repeats, 1)
    return {"first token ms": 1000 * runs["one"].median, "inputs/s": len(questions) / runs["batch"].median,
            "spread": runs["batch"].spread}


def _engine_decode(name: str, repeats: int, new_tokens: int, threads: int):
    """A model that runs outside torch (the llama.cpp ladder): its engine, loaded and timed like the others."""
    from lmguide import engines

    start = time.perf_counter()
    engine = engines.open_default(name, threads)
    load_s = time.perf_counter() - start
    return engine, load_s, engine.decode_speed(engine.encode(PROMPT), new_tokens, repeats)


def measure(name: str, repeats: int = 3, threads: int = 2, new_tokens: int = 32, quick: bool = False,
            with_quality: bool = True, cache: bool = True) -> dict:
    """One row of the comparison table for zoo model ``name``, measured in this process.

    Peak memory is this process's, so call it in a fresh process (:func:`measure_isolated`). A model
    that runs outside torch (``engines.default_kind``: the llama.cpp ladder) is measured through its
    engine by the same rules; its whole-split score is read from its model card when this cache has
    none (``quality.card_score``: a quarter of an hour for the 1.5 B, measured once by a recipe).
    """
    import torch

    from lmguide import engines, load, zoo

    if name not in zoo.ENTRIES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(zoo.names())}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats}); time at least one run")
    torch.set_num_threads(threads)
    entry = zoo.ENTRIES[name]
    key = weights_key(name) if cache else None
    if engines.default_kind(name) != "torch":
        zoo.path(name)  # join and verify the files outside the timed load
        before = _util.rss_mib()
        engine, load_s, speed = _engine_decode(name, repeats, new_tokens, threads)
        row = {"model": name, "kind": entry.kind, "engine": engine.kind, "parent": entry.parent or "",
               "parameters M": entry.parameters / 1e6, "size on disk MiB": engine.file_mib(),
               "weights in RAM MiB": engine.file_mib(), "weights read per token MiB": engine.weight_bytes / _util.MIB,
               "precision": engine.precision,
               "load s": load_s, **speed}
        row["peak RSS MiB"] = _util.peak_rss_mib()
        row["model RAM MiB"] = row["peak RSS MiB"] - before
        if with_quality:
            stored = quality.card_score(name, quick)
            q = stored or quality.score(engine, engine.tokenizer, entry.kind, key=key, quick=quick)
            row.update({"quality task": q["task"], "quality": q["value"], "quality cached": q.get("cached", False)})
        row["threads"] = threads
        return row
    _import_model_code(name)  # prepare, verify and import the model's code outside the timed load
    before = _util.rss_mib()
    start = time.perf_counter()
    model, tokenizer = load(name)
    load_s = time.perf_counter() - start
    row = {"model": name, "kind": entry.kind, "engine": "torch", "parent": getattr(entry, "parent", "") or "",
           "parameters M": entry.parameters / 1e6, "size on disk MiB": size_to_run(name) / _util.MIB,
           "weights in RAM MiB": weight_bytes(model) / _util.MIB, "precision": weights_precision(model), "load s": load_s}
    with torch.inference_mode():
        if entry.kind == "causal-lm":
            ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
            row["weights read per token MiB"] = row["weights in RAM MiB"]
            row.update(decode_speed(model, ids, new_tokens, repeats))
        else:
            row.update(_encoder_speed(model, tokenizer, entry.kind, repeats))
        # the memory to load and run the model, taken before scoring it (an evaluation over long
        # windows holds far more activations than answering does, and a cached score needs none)
        row["peak RSS MiB"] = _util.peak_rss_mib()
        row["model RAM MiB"] = row["peak RSS MiB"] - before
        if with_quality:
            q = quality.score(model, tokenizer, entry.kind, key=key, quick=quick)
            row.update({"quality task": q["task"], "quality": q["value"], "quality cached": q.get("cached", False)})
    row["threads"] = threads
    return row


def train_step(name: str, lora: bool = False, tokens: int = 64, repeats: int = 3, threads: int = 2) -> dict:
    """Cost of one fine-tuning step of zoo model ``name`` in a fresh process: all weights trainable, or
    with ``lora`` a rank-8 LoRA adapter (``finetune.LORA_TARGETS``); one batch of ``tokens`` tokens.

    A row of ``finetune.measure_in_subprocess`` (one AdamW step: median seconds, the memory account,
    the process's peak RSS) with the table's column names."""
    from lmguide import finetune

    cost = finetune.measure_in_subprocess(name, "lora" if lora else "full", batch_size=1, seq_len=tokens,
                                          repeats=repeats, threads=threads)
    return {"model": name, "method": "LoRA" if lora else "full", "train step s": cost["s/step"],
            "spread": cost["spread"], "tokens": tokens, "peak RSS MiB": cost["peak RSS MiB"],
            "training RAM MiB": cost["training RAM MiB"]}


def measure_isolated(name: str, **options) -> dict:
    """:func:`measure` in a fresh process, so peak memory is this model's alone; the row it returns."""
    from lmguide import workers

    return workers.run_or_raise(f"measuring {name}", measure, name, **options)
