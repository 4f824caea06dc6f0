"""Timing helpers with a fake clock, the KV-cache benchmark and decode speed on a tiny model (lmguide.timing)."""
import pytest
import torch

from lmguide import timing as lm_timing
from lmguide.sampling import greedy_generate

torch.set_num_threads(1)


class FakeClock:
    """Returns the given instants one by one, so every timing is known in advance."""

    def __init__(self, instants):
        self.instants = list(instants)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.instants.pop(0)


def test_time_call_warms_up_then_takes_the_median_of_repeats():
    calls = []
    clock = FakeClock([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # runs of 1 s, 3 s, 2 s
    timing = lm_timing.time_call(lambda: calls.append(1), repeats=3, warmup=2, clock=clock)
    assert len(calls) == 2 + 3  # warm-up runs are made but not timed
    assert clock.calls == 6 and timing.seconds == [1.0, 3.0, 2.0]
    assert timing.median == 2.0 and timing.best == 1.0 and timing.spread == 1.0


def test_time_call_keeps_the_last_result():
    values = iter(range(10))
    assert lm_timing.time_call(lambda: next(values), repeats=3, warmup=1).result == 3


def test_median_ignores_one_slow_run():
    clock = FakeClock([0, 1, 1, 2, 2, 30, 30, 31])  # 1 s, 1 s, 28 s (the machine was busy), 1 s
    assert lm_timing.time_call(lambda: None, repeats=4, warmup=0, clock=clock).median == 1.0


def test_tokens_per_second_arithmetic():
    assert lm_timing.tokens_per_second(200, 4.0) == 50.0
    assert lm_timing.tokens_per_second(1, 0.001) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match=r"seconds must be > 0 \(got 0\)"):
        lm_timing.tokens_per_second(10, 0)


@pytest.mark.parametrize("kwargs, message", [({"repeats": 0}, r"repeats must be >= 1 \(got 0\)"),
                                             ({"warmup": -1}, r"warmup must be >= 0 \(got -1\)")])
def test_time_call_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lm_timing.time_call(lambda: None, **kwargs)


def test_time_generation_counts_new_tokens_only(model):
    ids = torch.randint(1, 100, (1, 5), generator=torch.Generator().manual_seed(0))
    clock = FakeClock([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])  # three runs of 0.5 s
    row = lm_timing.time_generation(model, ids, 10, repeats=3, warmup=1, clock=clock)
    assert row["new tokens"] == 10 and row["median s"] == 0.5 and row["tokens/s"] == 20.0
    assert row["runs"] == [0.5, 0.5, 0.5]


def test_compare_generation_speed_interleaves_and_reports_tokens_per_second(model):
    ids = torch.randint(1, 100, (1, 4), generator=torch.Generator().manual_seed(3))
    order = []

    def clock():  # each model's runs take a fixed time; record which model was timed when
        order.append(len(order))
        return {0: 0.0, 1: 1.0, 2: 10.0, 3: 12.0, 4: 20.0, 5: 21.0, 6: 30.0, 7: 32.0}[len(order) - 1]

    speed = lm_timing.compare_generation_speed({"a": (model, ids), "b": (model, ids[:, :2])}, 10, repeats=2,
                                           warmup=1, clock=clock)
    assert speed["a"]["runs"] == [1.0, 1.0] and speed["b"]["runs"] == [2.0, 2.0]  # a, b, a, b
    assert speed["a"]["tokens/s"] == 10.0 and speed["b"]["tokens/s"] == 5.0
    assert speed["b"]["new tokens"] == 10 and speed["b"]["median s"] == 2.0
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        lm_timing.compare_generation_speed({"a": (model, ids)}, 5, repeats=0)


def test_kv_cache_benchmark_same_tokens_and_one_row_per_length(model):
    ids = torch.randint(1, 100, (1, 4), generator=torch.Generator().manual_seed(1))
    rows = lm_timing.kv_cache_benchmark(model, ids, lengths=[3, 8], repeats=2, warmup=1)
    assert [r["new tokens"] for r in rows] == [3, 8]
    for r in rows:
        assert r["same tokens"] is True
        assert r["with cache s"] > 0 and r["without cache s"] > 0
        assert r["speedup"] == pytest.approx(r["without cache s"] / r["with cache s"])
    # and the tokens it compared really are the greedy ones
    assert torch.equal(greedy_generate(model, ids, 8), greedy_generate(model, ids, 8, use_cache=False))


def test_kv_cache_benchmark_with_fake_clock_reports_speedup(model):
    ids = torch.randint(1, 100, (1, 4), generator=torch.Generator().manual_seed(2))
    # runs alternate: with 1 s, without 4 s, with 3 s, without 6 s (warm-up runs are not timed)
    clock = FakeClock([0.0, 1.0, 10.0, 14.0, 20.0, 23.0, 30.0, 36.0])
    (row,) = lm_timing.kv_cache_benchmark(model, ids, lengths=[5], repeats=2, warmup=1, clock=clock)
    assert clock.calls == 8
    assert row == {"new tokens": 5, "with cache s": 2.0, "without cache s": 5.0, "speedup": 2.5,
                   "same tokens": True}


def test_decode_speed_separates_the_prompt_from_the_per_token_cost(model):
    # per round: the 1-token run takes 1 s, the 9-token run 5 s -> 0.5 s per extra token
    clock = FakeClock([0.0, 1.0, 1.0, 6.0] * 3)
    r = lm_timing.decode_speed(model, torch.tensor([[1, 2, 3]]), new_tokens=9, repeats=2, warmup=1, clock=clock)
    assert r["first token ms"] == pytest.approx(1000.0)
    assert r["tokens/s"] == pytest.approx(2.0) and r["step ms"] == pytest.approx(500.0)


def test_first_token_and_decode_takes_the_true_median_of_an_even_count():
    # two rounds: steps (5-1)/8 = 0.5 s and (7-1)/8 = 0.75 s; the median of two is their mean
    clock = FakeClock([0.0, 1.0, 1.0, 6.0, 0.0, 1.0, 1.0, 8.0])
    r = lm_timing.first_token_and_decode(lambda ids, n: None, None, new_tokens=9, repeats=2, warmup=0, clock=clock)
    assert r["step ms"] == pytest.approx(625.0)  # not 750 ms, the upper middle value
    assert r["tokens/s"] == pytest.approx(1.6)
