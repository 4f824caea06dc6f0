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
