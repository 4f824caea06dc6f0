"""Serving: what a user waits for when a model answers requests, and what the answers cost.

    serving.latency_by_prompt_length(engine, ids, (64, 256, 1024))   # time to first token vs per-token time
    serving.request_latencies(engine, questions, new_tokens=16)      # one row per request, in turn
    serving.latency_summary(seconds)                                 # mean, p50, p95 of many requests
    serving.batched_throughput(model, ids, (1, 2, 4, 8))             # one weight read shared by B sequences
    serving.cost_per_million_tokens(tokens_per_s, cores, price)      # CPU-hours at a price you set

Notebook 07's serving section. A user of a chat model waits twice: for the first token (the
whole prompt is read first, so this grows with the prompt) and then for each next token (one
decode step: every weight read once, plus attention over the cache, which grows slowly with the
context). Latency of one request is both; a service answering many is judged by its median and
its 95th percentile, the wait of the unluckiest one in twenty. Batching B requests reads the
weights once per step for all B, so the total tokens/s grows while each sequence slows a little.
"""
from __future__ import annotations

import time

from lmguide.timing import decode_speed, time_call

# USD per CPU core per hour: an assumption (about what an on-demand cloud vCPU costs), not a measurement;
# notebook 07 and cost_per_million_tokens take your own
DEFAULT_PRICE_PER_CORE_HOUR = 0.04


def support_requests(n: int = 20) -> list[str]:
    """``n`` requests to a support desk (notebook 07's router set, test split first): a manual passage and a
    question about it, the shape of a retrieval-grounded request; prompts of a few hundred tokens."""
    from lmguide import router

    questions = router.load_questions("test") + router.load_questions("tune")
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= len(questions):
        raise ValueError(f"n must be an integer from 1 to {len(questions)} (got {n!r})")
    passages = {p["id"]: p for p in router.load_passages()}
    return [f"Answer from this passage of a thermostat's manual.\n\n{passages[q['passage']]['title']}: "
            f"{passages[q['passage']]['text']}\n\nQuestion: {q['question']}" for q in questions[:int(n)]]


def repeat_to_length(ids, n: int) -> list[int]:
    """``ids`` repeated and cut to exactly ``n`` tokens: a prompt of any length from a short one."""
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    if not ids:
        raise ValueError("ids is empty; give at least one token to repeat")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1 (got {n!r})")
    return (ids * (n // len(ids) + 1))[:n]


def latency_by_prompt_length(engine, ids, lengths=(64, 256, 1024), repeats: int = 3, steps: int = 5) -> list[dict]:
    """For each prompt length: the time to first token (read the whole prompt, from an empty cache) and the
    time of one decode step after it (the cache holding that prompt), medians of ``repeats`` / ``steps`` runs
    after a warm-up. ``engine`` is any :class:`lmguide.engines.Engine`; prompts are ``ids`` repeated."""
    rows = []
    for n in lengths:
        if engine.context_length is not None and n + 1 > engine.context_length:
            raise ValueError(f"a prompt of {n} tokens does not fit {engine.name}'s context of "
                             f"{engine.context_length} tokens with one more; choose shorter lengths")
        prompt = repeat_to_length(ids, n)
        first = time_call(lambda: (engine.reset(), engine.prefill(prompt)), repeats=repeats, warmup=1)
        step = engine.time_step(repeats=steps, warmup=1)  # the cache now holds the prompt
        rows.append({"prompt tokens": n, "first token ms": 1000 * first.median, "first token spread": first.spread,
                     "prompt tokens/s": n / first.median, "per token ms": 1000 * step.median,
                     "per token spread": step.spread})
    engine.reset()
    return rows


def request_latencies(engine, prompts, new_tokens: int = 16, chat: bool = True, warmup: int = 1) -> list[dict]:
    """Answer each of ``prompts`` in turn, greedy, at most ``new_tokens`` tokens (stopping at the end of the
    answer), as a service with one worker would: prompt tokens, new tokens, first token ms and total seconds
    of each request. ``warmup`` requests (the first prompt) run untimed first."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty; give at least one request to answer")
    for _ in range(warmup):
        list(engine.generate(engine.prompt_ids(prompts[0], chat), new_tokens))
    rows = []
    for text in prompts:
        ids = engine.prompt_ids(text, chat)
        start, first, n = time.perf_counter(), None, 0
        for _token in engine.generate(ids, new_tokens):
            n += 1
            if first is None:
                first = time.perf_counter() - start
        rows.append({"prompt tokens": len(ids), "new tokens": n, "first token ms": 1000 * first,
                     "total s": time.perf_counter() - start})
    return rows


def latency_summary(seconds) -> dict:
    """Requests, mean, median (p50), p95 and slowest of a list of request latencies (seconds); percentiles by
    ``numpy.percentile``'s default rule (linear interpolation between the two nearest ranks)."""
    import numpy as np

    seconds = [float(s) for s in seconds]
    if not seconds:
        raise ValueError("no latencies; a summary needs at least one request")
    p50, p95 = np.percentile(seconds, [50, 95])
    return {"requests": len(seconds), "mean s": sum(seconds) / len(seconds), "p50 s": float(p50),
            "p95 s": float(p95), "max s": max(seconds)}


def batched_throughput(model, input_ids, batch_sizes=(1, 2, 4, 8), new_tokens: int = 16, repeats: int = 3) -> list[dict]:
    """Greedy decoding of ``batch`` copies of the prompt at once (a torch causal LM): per batch size, the step
    time, tokens/s of each sequence and of the batch together (:func:`lmguide.timing.decode_speed`)."""
    rows = []
    for b in batch_sizes:
        if isinstance(b, bool) or int(b) != b or b < 1:
            raise ValueError(f"batch sizes must be integers >= 1 (got {b!r})")
        r = decode_speed(model, input_ids.repeat(int(b), 1), new_tokens, repeats)
        rows.append({"batch": int(b), "step ms": r["step ms"], "tokens/s per sequence": r["tokens/s"],
                     "tokens/s total": b * r["tokens/s"], "first token ms": r["first token ms"], "spread": r["spread"]})
    return rows


def cost_per_million_tokens(tokens_per_s: float, cores: int, price_per_core_hour: float = DEFAULT_PRICE_PER_CORE_HOUR) -> float:
    """What a million generated tokens cost: the seconds they take at ``tokens_per_s``, times the ``cores``
    kept busy, at ``price_per_core_hour`` (your price; the default is an assumption, see the constant)."""
    if not tokens_per_s > 0 or cores < 1 or price_per_core_hour < 0:
        raise ValueError(f"need tokens_per_s > 0, cores >= 1 and a price >= 0 (got {tokens_per_s}, {cores}, "
                         f"{price_per_core_hour})")
    return 1e6 / tokens_per_s / 3600 * cores * price_per_core_hour
