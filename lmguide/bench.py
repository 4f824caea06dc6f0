"""Measuring generation fairly: warm up, use a monotonic clock, repeat, report the median.

A single ``time.time()`` around one ``generate`` call measures the first call's one-off
costs (memory allocation, lazy initialisation) and whatever else the machine did in that
second. Here every timing is::

    fn()                              # warm-up: pay the one-off costs, don't count them
    for _ in range(repeats):          # then several runs on a monotonic clock
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    median(times)                     # robust to one slow run

Generation speed is reported as *new* tokens per second. When several things are compared,
their runs are *interleaved* (A, B, A, B, ...) so that a burst of background work slows one
run of each rather than all runs of one. Each function takes a ``clock`` argument so the
tests can drive it with a fake clock.

``capture_warnings`` records what a call warns about (Python warnings and transformers'
logger) instead of printing it to stderr, so a notebook can show a warning as output.
"""
from __future__ import annotations

import contextlib
import json
import math
import dataclasses
import logging
import statistics
import time
import warnings
from typing import Callable, Sequence


@dataclasses.dataclass
class Timing:
    """Seconds taken by each timed run (warm-up runs excluded), and what the last run returned."""

    seconds: list[float]
    result: object = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how much the runs disagree."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median > 0 else 0.0


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
              clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed with ``clock``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats}); time at least one run")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 (got {warmup}); use 0 for no warm-up run")
    for _ in range(warmup):
        fn()
    seconds, result = [], None
    for _ in range(repeats):
        start = clock()
        result = fn()
        seconds.append(clock() - start)
    return Timing(seconds, result)


def tokens_per_second(new_tokens: int, seconds: float) -> float:
    """New tokens divided by the seconds it took to make them."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0 (got {seconds}); the clock did not advance")
    return new_tokens / seconds


def time_generation(model, input_ids, max_new_tokens: int, repeats: int = 3, warmup: int = 1,
                    use_cache: bool = True, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Median time of greedy decoding of exactly ``max_new_tokens`` tokens (no EOS stop), and tokens/s.

    The time includes reading the prompt once (the prefill); keep the prompt short when the
    decoding speed is what you want.
    """
    from lmguide.sampling import greedy_generate

    timing = time_call(lambda: greedy_generate(model, input_ids, max_new_tokens, use_cache=use_cache),
                       repeats=repeats, warmup=warmup, clock=clock)
    return {"new tokens": max_new_tokens, "median s": timing.median,
            "tokens/s": tokens_per_second(max_new_tokens, timing.median), "runs": timing.seconds}


def _interleaved(calls: dict, repeats: int, warmup: int, clock) -> dict:
    """Time several calls in rounds (one run of each per round); name -> Timing."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats}); time at least one run")
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    seconds = {name: [] for name in calls}
    results = {}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = clock()
            results[name] = fn()
            seconds[name].append(clock() - start)
    return {name: Timing(seconds[name], results[name]) for name in calls}


def compare_generation_speed(models: dict, max_new_tokens: int, repeats: int = 5, warmup: int = 1,
                             clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time greedy decoding of ``max_new_tokens`` for several models, runs interleaved.

    ``models`` maps a name to ``(model, input_ids)``. Returns name -> the same dict as
    :func:`time_generation` (new tokens, median s, tokens/s, runs).
    """
    from lmguide.sampling import greedy_generate

    calls = {name: (lambda m=m, ids=ids: greedy_generate(m, ids, max_new_tokens))
             for name, (m, ids) in models.items()}
    timings = _interleaved(calls, repeats, warmup, clock)
    return {name: {"new tokens": max_new_tokens, "median s": t.median,
                   "tokens/s": tokens_per_second(max_new_tokens, t.median), "runs": t.seconds}
            for name, t in timings.items()}


def kv_cache_benchmark(model, input_ids, lengths: Sequence[int], repeats: int = 3, warmup: int = 1,
                       clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """Greedy decoding with and without the key/value cache, for each number of new tokens.

    ``warmup`` short untimed runs of each kind come first (one-off costs); then one row per
    length: median seconds with cache and without (runs interleaved), the speedup, and whether
    both produced the same tokens (they must: the cache only avoids recomputing the past).
    """
    from lmguide.sampling import greedy_generate

    for _ in range(warmup):
        for use_cache in (True, False):
            greedy_generate(model, input_ids, min(lengths), use_cache=use_cache)
    rows = []
    for n in lengths:
        runs = _interleaved({"with": lambda: greedy_generate(model, input_ids, n, use_cache=True),
                             "without": lambda: greedy_generate(model, input_ids, n, use_cache=False)},
                            repeats, 0, clock)
        with_cache, without = runs["with"], runs["without"]
        rows.append({"new tokens": n, "with cache s": with_cache.median, "without cache s": without.median,
                     "speedup": without.median / with_cache.median if with_cache.median > 0 else float("nan"),
                     "same tokens": _same(with_cache.result, without.result)})
    return rows


def _same(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))


@contextlib.contextmanager
def capture_warnings():
    """Collect the warnings raised inside the block (Python ``warnings`` and transformers' logger).

    Yields a list that holds the messages once the block ends; nothing is printed to stderr.
    transformers' verbosity and handlers are restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    messages: list[str] = []

    class _ListHandler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = _ListHandler(level=logging.WARNING)
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_default_handler()
    hf_logging.add_handler(handler)
    hf_logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
        messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        hf_logging.remove_handler(handler)
        hf_logging.enable_default_handler()
        hf_logging.set_verbosity(verbosity)


# =============================================================================================
# The comparison table (notebook 07, ``lmguide bench``): every zoo model measured the same way
# =============================================================================================
# Each model is measured in its own process (``measure_isolated``) so that one model's
# peak memory cannot hide in another's; quality scores are slow (SmolLM2 reads the whole Austen
# test split) so they are cached in the user cache, keyed by the model's file hashes.

QUALITY_TASKS = {"causal-lm": "Austen test bits/byte", "question-answering": "QA dev F1",
                 "encoder": "retrieval recall@5"}
PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
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


def decode_speed(model, input_ids, new_tokens: int = 32, repeats: int = 3, warmup: int = 1,
                 clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time to first token and decode tokens/s, from greedy runs of 1 and ``new_tokens`` tokens, interleaved.

    Time to first token is a 1-token run (the prompt read once, one token chosen); decode speed
    is the extra tokens over the extra time of the long run, so the prompt does not count.
    """
    from lmguide.sampling import greedy_generate

    if new_tokens < 2:
        raise ValueError(f"new_tokens must be >= 2 (got {new_tokens}); decode speed needs tokens after the first")
    runs = _interleaved({"first": lambda: greedy_generate(model, input_ids, 1),
                         "long": lambda: greedy_generate(model, input_ids, new_tokens)}, repeats, warmup, clock)
    first, long = runs["first"], runs["long"]
    steps = [(b - a) / (new_tokens - 1) for a, b in zip(first.seconds, long.seconds)]
    step = statistics.median(steps)
    return {"first token ms": 1000 * first.median, "tokens/s": 1 / step if step > 0 else float("nan"),
            "step ms": 1000 * step, "spread": Timing([max(s, 1e-12) for s in steps]).spread}


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


# --- quality, cached ---------------------------------------------------------------------------
def _cache_file(kind: str, key: str):
    from lmguide import zoo

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return zoo.cache_dir() / "bench" / f"{kind}-{safe}.json"


def _cached(kind: str, key: str | None, compute: Callable[[], dict]) -> dict:
    """``compute()`` once per key: its dict is stored in the user cache and read back next time."""
    if key is None:
        return compute()
    file = _cache_file(kind, key)
    if file.is_file():
        return {**json.loads(file.read_text()), "cached": True}
    value = compute()
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(value, indent=1))
    return {**value, "cached": False}


def weights_key(name: str) -> str:
    """A key that changes when the model's files change: the name and the zoo's fingerprint of its files."""
    from lmguide import zoo

    return f"{name}-{zoo.fingerprint(name)}"


def austen_bits_per_byte(model, tokenizer, name: str | None = None, max_chars: int | None = None) -> dict:
    """Bits per byte on the whole Austen test split (cached under the zoo ``name``), or live on its
    first ``max_chars`` characters (a quick, uncached look)."""
    from lmguide import data, eval as lm_eval

    if max_chars is None:
        r = lm_eval.split_bits_per_byte(model, tokenizer, split="test", key=name)
        return {"value": r["bits_per_byte"], "bytes": r["bytes"], "cached": r.get("cached", False)}
    text = data.austen("test")[:max_chars]
    return {"value": lm_eval.bits_per_byte(model, tokenizer, text), "bytes": len(text.encode("utf-8")), "cached": False}


def _stored_split_bpb(model, name: str) -> dict | None:
    """The whole-test-split figure ``eval.split_bits_per_byte`` stored for this model's files and window rule, if any."""
    from lmguide import eval as lm_eval, zoo

    window, stride = lm_eval.window_rule(model)
    for file in sorted((zoo.cache_dir() / "bpb").glob(f"{name}-{zoo.fingerprint(name)}-test-*.json")):
        r = json.loads(file.read_text())
        if r.get("window") == window and r.get("stride") == stride:
            return {"value": r["bits_per_byte"], "bytes": r["bytes"]}
    return None


def qa_f1(model, tokenizer, limit: int | None = None) -> dict:
    """SQuAD F1 and exact match of an extractive QA model on the shipped dev set (or its first ``limit``
    questions), always answering (``null_margin=inf``): every dev question has an answer, as in SQuAD v1.1.
    The workbook's one QA scorer (notebooks 05 and 07, the model cards)."""
    from lmguide import qa, qa_data

    dev = qa_data.first_questions(qa_data.load_split("dev"), limit)
    questions = list(qa_data.iter_questions(dev))
    found = qa.answer_many([(q["question"], q["context"]) for q in questions], model, tokenizer, null_margin=math.inf)
    scores = qa.squad_evaluate({q["id"]: f["answer"] for q, f in zip(questions, found)}, dev)
    return {"value": scores["f1"], "exact match": scores["exact_match"], "questions": len(questions)}


def retrieval_recall(model, tokenizer, k: int = 5, limit: int | None = None) -> dict:
    """Recall@k: for each QA dev question, is its passage among the k nearest of every QA passage (train + dev)?

    With a ``limit`` (a quick look) only the first ``limit`` dev questions are asked, among the dev
    split's passages (embedding the training passages too takes ~20 s on 2 cores).
    """
    from lmguide import qa_data, search

    def compute():
        dev = list(qa_data.iter_questions(qa_data.load_split("dev")))
        questions = dev[:limit]
        train = qa_data.iter_questions(qa_data.load_split("train")) if limit is None else []
        contexts = sorted({q["context"] for q in dev} | {q["context"] for q in train})
        where = {c: i for i, c in enumerate(contexts)}
        index = search.SemanticIndex(contexts, model, tokenizer)
        hits = [where[q["context"]] in [h.index for h in index.search(q["question"], k)] for q in questions]
        return {"value": sum(hits) / len(hits), "k": k, "questions": len(questions), "passages": len(contexts)}

    return compute()


_QUALITY_CACHE = {"causal-lm": "bpb", "question-answering": "qa", "encoder": "recall"}


QUICK_PART = {"causal-lm": "first 8,000 characters", "question-answering": "first 48 questions",
              "encoder": "first 48 dev questions, among the dev passages"}


def quality(name: str, model, tokenizer, kind: str, quick: bool = False, cache: bool = True) -> dict:
    """The score on the task each kind suits: ``{"task", "value", "cached", ...}``.

    The whole task's score (whole Austen test split, every dev question) is stored in the user
    cache, keyed by the model's files, and read back on later runs. ``quick`` scores the same
    small part for every model of a kind instead (:data:`QUICK_PART`; live, marked "(part)"), so
    that a quick table compares like with like rather than mixing whole-task and part scores.
    """
    if kind not in QUALITY_TASKS:
        raise ValueError(f"no quality task for kind {kind!r}; known kinds: {', '.join(QUALITY_TASKS)}")
    if quick:
        part = {"causal-lm": lambda: austen_bits_per_byte(model, tokenizer, max_chars=8_000),
                "question-answering": lambda: qa_f1(model, tokenizer, limit=48),
                "encoder": lambda: retrieval_recall(model, tokenizer, limit=48)}[kind]()
        return {"task": QUALITY_TASKS[kind] + " (part)", **part, "cached": False}
    key = weights_key(name) if cache else None
    if kind == "causal-lm" and cache:
        stored = _stored_split_bpb(model, name)
        if stored is not None:
            return {"task": QUALITY_TASKS[kind], **stored, "cached": True}
    full = {"causal-lm": lambda: austen_bits_per_byte(model, tokenizer, name if cache else None),
            "question-answering": lambda: qa_f1(model, tokenizer),
            "encoder": lambda: retrieval_recall(model, tokenizer)}[kind]
    return {"task": QUALITY_TASKS[kind], **_cached(_QUALITY_CACHE[kind], key, full)}


# --- one model, measured ---------------------------------------------------------------------
def _peak_rss_mib() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def release_memory() -> float:
    """Collect garbage and hand freed heap memory back to the operating system; returns RSS in MiB.

    After ``del model`` Python frees the tensors, but glibc keeps much of the freed heap for
    reuse, so the process still *looks* as big (and Binder's 2 GB limit counts what it looks).
    ``malloc_trim`` returns it. A no-op where the C library has no such call (macOS, Windows).
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return _rss_mib()


def measure(name: str, repeats: int = 3, threads: int = 2, new_tokens: int = 32, quick: bool = False,
            with_quality: bool = True, cache: bool = True) -> dict:
    """One row of the comparison table for zoo model ``name``, measured in this process.

    Peak memory is this process's, so call it in a fresh process (:func:`measure_isolated`).
    """
    import torch

    from lmguide import load, zoo

    if name not in zoo.ENTRIES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(zoo.names())}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats}); time at least one run")
    torch.set_num_threads(threads)
    entry = zoo.ENTRIES[name]
    _import_model_code(name)  # prepare, verify and import the model's code outside the timed load
    before = _rss_mib()
    start = time.perf_counter()
    model, tokenizer = load(name)
    load_s = time.perf_counter() - start
    row = {"model": name, "kind": entry.kind, "parent": getattr(entry, "parent", "") or "",
           "parameters M": entry.parameters / 1e6, "size on disk MiB": _size_on_disk(name) / 2**20,
           "weights in RAM MiB": weight_bytes(model) / 2**20, "load s": load_s}
    with torch.inference_mode():
        if entry.kind == "causal-lm":
            ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
            row.update(decode_speed(model, ids, new_tokens, repeats))
        else:
            row.update(_encoder_speed(model, tokenizer, entry.kind, repeats))
        # the memory to load and run the model, taken before scoring it (an evaluation over long
        # windows holds far more activations than answering does, and a cached score needs none)
        row["peak RSS MiB"] = _peak_rss_mib()
        row["model RAM MiB"] = row["peak RSS MiB"] - before
        if with_quality:
            q = quality(name, model, tokenizer, entry.kind, quick=quick, cache=cache)
            row.update({"quality task": q["task"], "quality": q["value"], "quality cached": q.get("cached", False)})
    row["threads"] = threads
    return row


def _import_model_code(name: str) -> None:
    """Verify the files and import the model class's module, so neither counts as load time or model RAM."""
    from lmguide import zoo

    folder = zoo.path(name)
    try:
        import transformers

        config = transformers.AutoConfig.from_pretrained(folder)
        auto = getattr(transformers, zoo._AUTO_CLASS[zoo.ENTRIES[name].kind])
        auto._model_mapping[type(config)]  # importing the modelling module is the side effect wanted
    except Exception:  # a variant with its own loader: its code is imported by the load itself
        pass


def train_step(name: str, tokens: int = 64, repeats: int = 3, threads: int = 2, lora: bool = False) -> dict:
    """Cost of one fine-tuning step (forward, loss, backward) on ``tokens`` tokens of Austen: median
    seconds and the process's peak RSS. All weights trainable, or with ``lora`` a rank-8 LoRA adapter
    on the attention projections (``finetune.LORA_TARGETS``; the frozen weights then need no gradients,
    which is most of full fine-tuning's memory). Run it in a fresh process (``measure_isolated``)."""
    import torch

    from lmguide import data, load

    torch.set_num_threads(threads)
    before = _rss_mib()
    model, tokenizer = load(name)
    if lora:
        from lmguide.finetune import LORA_TARGETS, add_lora

        targets = LORA_TARGETS.get(model.config.model_type)
        if targets is None:
            raise ValueError(f"no LoRA targets known for a {model.config.model_type} model; "
                             f"known: {', '.join(LORA_TARGETS)}")
        model = add_lora(model, targets)
    model.train()
    batch = tokenizer(data.austen("train")[:4000], return_tensors="pt")["input_ids"][:, :tokens]

    def step():
        model.zero_grad(set_to_none=False)
        model(input_ids=batch, labels=batch).loss.backward()

    timing = time_call(step, repeats=repeats, warmup=1)
    return {"model": name, "method": "LoRA" if lora else "full", "train step s": timing.median,
            "spread": timing.spread, "tokens": tokens, "peak RSS MiB": _peak_rss_mib(),
            "training RAM MiB": _peak_rss_mib() - before}


def _size_on_disk(name: str) -> int:
    from lmguide import zoo

    size = zoo.size_on_disk(name)
    return size if size is not None else sum(p.stat().st_size for p in zoo.path(name).iterdir() if p.is_file())


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
    runs = _interleaved({"one": one, "batch": batch}, repeats, 1, time.perf_counter)
    return {"first token ms": 1000 * runs["one"].median, "inputs/s": len(questions) / runs["batch"].median,
            "spread": runs["batch"].spread}


def measure_isolated(name: str, job: str = "measure", **options) -> dict:
    """:func:`measure` (or, with ``job="train step"``, :func:`train_step`) in a fresh process, so
    peak memory is this model's alone; the row it returns."""
    if job not in ("measure", "train step"):
        raise ValueError(f"job must be 'measure' or 'train step' (got {job!r})")
    from lmguide import workers

    try:
        return workers.run(measure if job == "measure" else train_step, name, **options)
    except workers.JobError as exc:
        raise RuntimeError(f"measuring {name} failed: {exc.reason}") from None


def table(names=None, repeats: int = 3, threads: int = 2, quick: bool = False, progress: bool = True,
          bandwidth: dict | None = None, **options):
    """The comparison table: one row per model (default: every zoo entry), each measured in its own process.

    With a ``bandwidth`` (from :func:`memory_bandwidth`) generators also get their decode bound
    and the share of it they reach.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from lmguide import zoo

    names = list(names or zoo.names())
    unknown = [n for n in names if n not in zoo.ENTRIES]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(zoo.names())}")
    rows = []
    for name in tqdm(names, desc="measuring models", disable=not progress):
        rows.append(measure_isolated(name, repeats=repeats, threads=threads, quick=quick, **options))
    frame = pd.DataFrame(rows).set_index("model")
    frame["hardware class"] = [hardware_class(m) for m in frame["model RAM MiB"]]
    if bandwidth is not None and "tokens/s" in frame:
        bound = bandwidth["GB/s"] * 1e9 / (frame["weights in RAM MiB"] * 2**20)
        frame["bound tokens/s"] = bound.where(frame["kind"] == "causal-lm")
        frame["% of bound"] = 100 * frame["tokens/s"] / frame["bound tokens/s"]
    return frame


def pareto_front(points: dict, lower_quality_is_better: bool = False) -> list[str]:
    """Names of the points no other point beats on both axes; ``points`` maps name -> (quality, speed).

    Speed is always higher-is-better; quality is too unless ``lower_quality_is_better`` (bits per
    byte). A point is dominated when another is at least as good on both and better on one.
    """
    sign = -1.0 if lower_quality_is_better else 1.0
    clean = {n: (sign * q, s) for n, (q, s) in points.items() if q == q and s == s}  # drop NaN
    front = []
    for name, (q, s) in clean.items():
        dominated = any(q2 >= q and s2 >= s and (q2 > q or s2 > s) for other, (q2, s2) in clean.items() if other != name)
        if not dominated:
            front.append(name)
    return front


NEEDS = {"write text": ("causal-lm",), "answer from documents": ("question-answering", "encoder"),
         "search documents": ("encoder",)}


def recommend(frame, need: str, max_ram_mib: float, max_first_token_ms: float, min_tokens_per_s: float = 0.0):
    """Which measured models meet the needs, best quality first, each with the reason it fits or not.

    ``frame`` is the comparison table; ``need`` one of :data:`NEEDS`. Returns a DataFrame with
    columns fits (bool), quality and why (one sentence naming the limit a model breaks).
    """
    import pandas as pd

    if need not in NEEDS:
        raise ValueError(f"need must be one of {', '.join(NEEDS)} (got {need!r})")
    rows = []
    for name, r in frame[frame["kind"].isin(NEEDS[need])].iterrows():
        reasons = []
        if r["model RAM MiB"] > max_ram_mib:
            reasons.append(f"needs {r['model RAM MiB']:,.0f} MiB of RAM (> {max_ram_mib:,.0f})")
        if r["first token ms"] > max_first_token_ms:
            reasons.append(f"first output after {r['first token ms']:,.0f} ms (> {max_first_token_ms:,.0f})")
        speed = r.get("tokens/s", float("nan"))
        if r["kind"] == "causal-lm" and speed == speed and speed < min_tokens_per_s:
            reasons.append(f"{speed:,.1f} tokens/s (< {min_tokens_per_s:,.1f})")
        why = ("fits: " + f"{r['model RAM MiB']:,.0f} MiB, first output {r['first token ms']:,.0f} ms, "
               f"{r['quality task']} {r['quality']:.3g}") if not reasons else "does not fit: " + "; ".join(reasons)
        rows.append({"model": name, "kind": r["kind"], "fits": not reasons, "quality task": r["quality task"],
                     "quality": r["quality"], "why": why})
    out = pd.DataFrame(rows, columns=["model", "kind", "fits", "quality task", "quality", "why"]).set_index("model")
    lower_better = out["quality task"].str.contains("bits/byte")
    out["rank key"] = out["quality"].where(~lower_better, -out["quality"])
    return out.sort_values(["fits", "kind", "rank key"], ascending=[False, True, False]).drop(columns="rank key")


# --- results on disk: what `lmguide bench` writes and notebook 07 reads ------------------------
def results_file():
    from lmguide import zoo

    return zoo.cache_dir() / "bench" / "results.json"


def save_results(results: dict, file=None) -> None:
    import pathlib

    file = pathlib.Path(file or results_file())
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(results, indent=1, default=_json_default))


def load_results(file=None) -> dict | None:
    """What ``lmguide bench`` stored (machine, bandwidth, table, ...), or None if it has not run."""
    import pathlib

    file = pathlib.Path(file or results_file())
    return json.loads(file.read_text()) if file.is_file() else None


def _json_default(value):
    if hasattr(value, "to_dict"):
        return value.reset_index().to_dict(orient="records")
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in the results file")


def frame_from_results(results: dict, part: str = "table"):
    """A stored table back as a DataFrame (indexed by model for the comparison table)."""
    import pandas as pd

    frame = pd.DataFrame(results[part])
    return frame.set_index("model") if "model" in frame else frame


# --- the command line: `lmguide bench` ---------------------------------------------------------
def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="lmguide bench", description=(
        "Measure every zoo model the same way (each in its own process) and print the comparison table; "
        "the results are also stored in the user cache, where notebook 07 reads them."))
    p.add_argument("--models", nargs="+", metavar="NAME", help="zoo models to measure (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after one warm-up (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens generated per decode run (default 32)")
    p.add_argument("--quick", action="store_true", help="score quality on a small part of each task (fast, not cached as full)")
    p.add_argument("--extras", action="store_true",
                   help=("also thread scaling, SmolLM2's decode with bf16, int8, onnxruntime and batching, two training steps "
                         "and the router on every question (8 to 11 minutes on 2 cores; up to 2 GB of RAM)"))
    p.add_argument("--csv", metavar="OUT", help="write the table as CSV")
    p.add_argument("--json", metavar="OUT", help="write everything measured (machine, bandwidth, table) as JSON")
    p.add_argument("--no-save", action="store_true", help="do not store the results in the user cache")
    return p


def run(names=None, repeats: int = 3, threads: int = 2, new_tokens: int = 32, quick: bool = False,
        extras: bool = False, progress: bool = True) -> dict:
    """Everything ``lmguide bench`` measures, as one dict (machine, bandwidth, table and, with extras, more)."""
    import torch

    torch.set_num_threads(threads)
    results = {"machine": machine(), "bandwidth": memory_bandwidth(), "repeats": repeats, "quick": quick,
               "measured at": time.strftime("%Y-%m-%d %H:%M:%S")}
    frame = table(names, repeats=repeats, threads=threads, new_tokens=new_tokens, quick=quick, progress=progress,
                  bandwidth=results["bandwidth"])
    results["table"] = frame
    if extras:
        from lmguide import export, router, workers

        results["decode variants"] = export.decode_variants(repeats=repeats, threads=threads, progress=progress)
        results["thread scaling"] = workers.run(scaling_table, repeats=repeats)
        results["train step"] = [measure_isolated(n, job="train step", repeats=repeats, threads=threads)
                                 for n in ("austen-gpt-small", "smollm2-135m")]
        results["router"] = router.answer_all(router.load_questions(), *router.both_sides(), progress=progress)
    return results


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


def main(argv=None) -> int:
    """``lmguide bench ...``: returns the exit status (2 for bad arguments, with one sentence why)."""
    import sys

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line error (or the help)
        return int(exc.code or 0)
    from lmguide import zoo

    try:
        if args.repeats < 1:
            raise ValueError(f"--repeats must be >= 1 (got {args.repeats}); time at least one run")
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1 (got {args.threads})")
        if args.new_tokens < 2:
            raise ValueError(f"--new-tokens must be >= 2 (got {args.new_tokens})")
        unknown = [n for n in args.models or [] if n not in zoo.ENTRIES]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(zoo.names())}")
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"lmguide bench: error: {exc}", file=sys.stderr)
        return 2
    results = run(args.models, args.repeats, args.threads, args.new_tokens, args.quick, args.extras)
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {args.threads} torch threads, torch {m['torch']}, "
          f"transformers {m['transformers']}")
    print(f"memory bandwidth (copy of {results['bandwidth']['MiB copied']} MiB): {results['bandwidth']['GB/s']:.1f} GB/s "
          f"(spread {results['bandwidth']['spread']:.0%})")
    print(results["table"].round(3).to_string())
    print(f"\nhardware class rule: {hardware_rule()}")
    if args.csv:
        results["table"].to_csv(args.csv)
    if args.json:
        save_results(results, args.json)
    if not args.no_save:
        save_results(results)
        print(f"stored in {results_file()} (notebook 07 reads it)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
