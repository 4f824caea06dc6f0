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

The prompt every speed measurement in the workbook reads is :data:`PROMPT`; the
first-token and decode-speed split of :func:`first_token_and_decode` is the one way the
comparison table, the engines and notebook 07 turn two timed runs into a decode speed.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
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


def interleaved(calls: dict, repeats: int = 3, warmup: int = 1,
                clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time several calls in rounds (A, B, A, B, ...: one run of each per round); name -> :class:`Timing`.

    ``calls`` maps a name to a function of no arguments; ``warmup`` untimed rounds come first.
    Background load then slows one run of each rather than every run of one.
    """
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
    timings = interleaved(calls, repeats, warmup, clock)
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
        runs = interleaved({"with": lambda: greedy_generate(model, input_ids, n, use_cache=True),
                             "without": lambda: greedy_generate(model, input_ids, n, use_cache=False)},
                            repeats, 0, clock)
        with_cache, without = runs["with"], runs["without"]
        rows.append({"new tokens": n, "with cache s": with_cache.median, "without cache s": without.median,
                     "speedup": without.median / with_cache.median if with_cache.median > 0 else float("nan"),
                     "same tokens": _same_tokens(with_cache.result, without.result)})
    return rows


def _same_tokens(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))




# --- time to first token and decode speed ---------------------------------------------------------
PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"


def first_token_and_decode(generate: Callable[[object, int], object], input_ids, new_tokens: int = 32,
                           repeats: int = 3, warmup: int = 1,
                           clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time to first token and decode speed of ``generate(input_ids, n)``, from runs of 1 and ``new_tokens``
    tokens, interleaved.

    Time to first token is a 1-token run (the prompt read once, one token chosen). Decode speed
    is the extra tokens over the extra time of the long run, paired round by round, so the
    prompt does not count; the median of those per-round step times is reported (NaN tokens/s
    when load made it non-positive). Returns first token ms, step ms, tokens/s, and the spread of the
    per-round step times.
    """
    if new_tokens < 2:
        raise ValueError(f"new_tokens must be >= 2 (got {new_tokens}); decode speed needs tokens after the first")
    runs = interleaved({"first": lambda: generate(input_ids, 1), "long": lambda: generate(input_ids, new_tokens)},
                       repeats, warmup, clock)
    first, long = runs["first"], runs["long"]
    steps = [(b - a) / (new_tokens - 1) for a, b in zip(first.seconds, long.seconds)]
    step = statistics.median(steps)
    return {"first token ms": 1000 * first.median, "step ms": 1000 * step,
            "tokens/s": 1 / step if step > 0 else float("nan"),
            "spread": Timing([max(s, 1e-12) for s in steps]).spread}


def decode_speed(model, input_ids, new_tokens: int = 32, repeats: int = 3, warmup: int = 1,
                 clock: Callable[[], float] = time.perf_counter) -> dict:
    """:func:`first_token_and_decode` of a torch model's greedy decoding (``sampling.greedy_generate``)."""
    from lmguide.sampling import greedy_generate

    return first_token_and_decode(lambda ids, n: greedy_generate(model, ids, n), input_ids, new_tokens,
                                  repeats, warmup, clock)
