"""Serving measurements: latency against prompt length, request percentiles, batching, cost (lmguide.serving)."""
import math

import numpy as np
import pytest
import torch

from lmguide import engines, serving


@pytest.fixture(scope="module")
def engine(model):
    """The tiny GPT-2 of conftest behind the torch engine, with a stand-in tokenizer of one id per character."""
    class Chars:
        eos_token_id = 0
        chat_template = None

        def __call__(self, text, **kwargs):
            return {"input_ids": [1 + ord(c) % 90 for c in text]}

        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(65 + i % 26) for i in ids)

    return engines.open_engine("tiny", "torch", model=model, tokenizer=Chars())


def test_repeat_to_length_makes_exact_lengths():
    assert serving.repeat_to_length([5, 6, 7], 7) == [5, 6, 7, 5, 6, 7, 5]
    assert serving.repeat_to_length(torch.tensor([1, 2]), 1) == [1]
    with pytest.raises(ValueError, match="empty"):
        serving.repeat_to_length([], 4)
    with pytest.raises(ValueError, match="integer >= 1"):
        serving.repeat_to_length([1], 0)


def test_latency_by_prompt_length_reads_each_prompt_and_leaves_the_cache_empty(engine):
    rows = serving.latency_by_prompt_length(engine, [3, 4, 5], (4, 16), repeats=1, steps=2)
    assert [r["prompt tokens"] for r in rows] == [4, 16]
    assert all(r["first token ms"] > 0 and r["per token ms"] > 0 for r in rows)
    assert rows[1]["prompt tokens/s"] == pytest.approx(16 / (rows[1]["first token ms"] / 1000))
    assert engine.n_cached == 0
    with pytest.raises(ValueError, match="context of 64 tokens"):
        serving.latency_by_prompt_length(engine, [3], (64,))


def test_request_latencies_time_each_request(engine):
    rows = serving.request_latencies(engine, ["abc", "a longer request"], new_tokens=3, chat=False)
    assert [r["prompt tokens"] for r in rows] == [3, 16]
    for r in rows:
        assert 1 <= r["new tokens"] <= 3 and 0 < r["first token ms"] / 1000 <= r["total s"]
    with pytest.raises(ValueError, match="empty"):
        serving.request_latencies(engine, [], chat=False)


def test_latency_summary_orders_its_percentiles():
    values = [0.9, 0.1, 0.5, 2.0, 0.3, 0.7, 1.1]
    s = serving.latency_summary(values)
    assert s["requests"] == 7 and s["p50 s"] == pytest.approx(0.7) and s["max s"] == 2.0
    assert s["p95 s"] == pytest.approx(np.percentile(values, 95)) and s["p95 s"] == pytest.approx(1.73)  # rank 5.7 of 0..6: 1.1 + 0.7 x (2.0 - 1.1)
    assert s["p50 s"] <= s["p95 s"] <= s["max s"] and s["mean s"] == pytest.approx(sum(values) / 7)
    with pytest.raises(ValueError, match="at least one"):
        serving.latency_summary([])


def test_batched_throughput_counts_every_sequence(model):
    ids = torch.tensor([[1, 2, 3, 4]])
    rows = serving.batched_throughput(model, ids, (1, 3), new_tokens=3, repeats=1)
    assert [r["batch"] for r in rows] == [1, 3]
    for r in rows:
        if not math.isnan(r["tokens/s per sequence"]):
            assert r["tokens/s total"] == pytest.approx(r["batch"] * r["tokens/s per sequence"])
    with pytest.raises(ValueError, match="integers >= 1"):
        serving.batched_throughput(model, ids, (0,))


def test_cost_per_million_tokens_is_core_hours_times_price():
    # 100 tokens/s: a million take 10,000 s = 2.78 hours, on 2 cores 5.56 core-hours
    assert serving.cost_per_million_tokens(100, 2, 0.05) == pytest.approx(1e4 / 3600 * 2 * 0.05)
    assert serving.cost_per_million_tokens(200, 2, 0.05) == pytest.approx(serving.cost_per_million_tokens(100, 2, 0.05) / 2)
    with pytest.raises(ValueError, match="tokens_per_s > 0"):
        serving.cost_per_million_tokens(0, 2)


def test_support_requests_carry_a_passage_and_a_question():
    requests = serving.support_requests(20)
    assert len(requests) == 20 and len(set(requests)) == 20
    assert all("Question: " in r and len(r) > 150 for r in requests)
    with pytest.raises(ValueError, match="from 1 to"):
        serving.support_requests(0)
