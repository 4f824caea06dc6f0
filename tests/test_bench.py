"""Timing helpers with a fake clock, the KV-cache benchmark on a tiny model, warning capture."""
import logging
import warnings

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide import bench
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


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(123)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel(config).eval()


def test_time_call_warms_up_then_takes_the_median_of_repeats():
    calls = []
    clock = FakeClock([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # runs of 1 s, 3 s, 2 s
    timing = bench.time_call(lambda: calls.append(1), repeats=3, warmup=2, clock=clock)
    assert len(calls) == 2 + 3  # warm-up runs are made but not timed
    assert clock.calls == 6 and timing.seconds == [1.0, 3.0, 2.0]
    assert timing.median == 2.0 and timing.best == 1.0 and timing.spread == 1.0


def test_time_call_keeps_the_last_result():
    values = iter(range(10))
    assert bench.time_call(lambda: next(values), repeats=3, warmup=1).result == 3


def test_median_ignores_one_slow_run():
    clock = FakeClock([0, 1, 1, 2, 2, 30, 30, 31])  # 1 s, 1 s, 28 s (the machine was busy), 1 s
    assert bench.time_call(lambda: None, repeats=4, warmup=0, clock=clock).median == 1.0


def test_tokens_per_second_arithmetic():
    assert bench.tokens_per_second(200, 4.0) == 50.0
    assert bench.tokens_per_second(1, 0.001) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match=r"seconds must be > 0 \(got 0\)"):
        bench.tokens_per_second(10, 0)


@pytest.mark.parametrize("kwargs, message", [({"repeats": 0}, r"repeats must be >= 1 \(got 0\)"),
                                             ({"warmup": -1}, r"warmup must be >= 0 \(got -1\)")])
def test_time_call_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.time_call(lambda: None, **kwargs)


def test_time_generation_counts_new_tokens_only(model):
    ids = torch.randint(1, 100, (1, 5), generator=torch.Generator().manual_seed(0))
    clock = FakeClock([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])  # three runs of 0.5 s
    row = bench.time_generation(model, ids, 10, repeats=3, warmup=1, clock=clock)
    assert row["new tokens"] == 10 and row["median s"] == 0.5 and row["tokens/s"] == 20.0
    assert row["runs"] == [0.5, 0.5, 0.5]


def test_compare_generation_speed_interleaves_and_reports_tokens_per_second(model):
    ids = torch.randint(1, 100, (1, 4), generator=torch.Generator().manual_seed(3))
    order = []

    def clock():  # each model's runs take a fixed time; record which model was timed when
        order.append(len(order))
        return {0: 0.0, 1: 1.0, 2: 10.0, 3: 12.0, 4: 20.0, 5: 21.0, 6: 30.0, 7: 32.0}[len(order) - 1]

    speed = bench.compare_generation_speed({"a": (model, ids), "b": (model, ids[:, :2])}, 10, repeats=2,
                                           warmup=1, clock=clock)
    assert speed["a"]["runs"] == [1.0, 1.0] and speed["b"]["runs"] == [2.0, 2.0]  # a, b, a, b
    assert speed["a"]["tokens/s"] == 10.0 and speed["b"]["tokens/s"] == 5.0
    assert speed["b"]["new tokens"] == 10 and speed["b"]["median s"] == 2.0
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench.compare_generation_speed({"a": (model, ids)}, 5, repeats=0)


def test_kv_cache_benchmark_same_tokens_and_one_row_per_length(model):
    ids = torch.randint(1, 100, (1, 4), generator=torch.Generator().manual_seed(1))
    rows = bench.kv_cache_benchmark(model, ids, lengths=[3, 8], repeats=2, warmup=1)
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
    (row,) = bench.kv_cache_benchmark(model, ids, lengths=[5], repeats=2, warmup=1, clock=clock)
    assert clock.calls == 8
    assert row == {"new tokens": 5, "with cache s": 2.0, "without cache s": 5.0, "speedup": 2.5,
                   "same tokens": True}


def test_capture_warnings_records_instead_of_printing(capsys):
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with bench.capture_warnings() as caught:
        warnings.warn("python warning here", UserWarning)
        hf_logging.get_logger("transformers.generation").warning("transformers warning here")
    assert "transformers warning here" in caught
    assert "UserWarning: python warning here" in caught
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
    assert hf_logging.get_verbosity() == logging.ERROR  # restored


# --- the comparison table (notebook 07, `lmguide bench`) -------------------------------------
def test_decode_bound_is_bandwidth_over_bytes():
    assert bench.decode_bound(500_000_000, 50.0) == pytest.approx(100.0)  # 50 GB/s / 0.5 GB per token
    with pytest.raises(ValueError, match="must be > 0"):
        bench.decode_bound(0, 50.0)


def test_memory_bandwidth_measures_a_copy():
    r = bench.memory_bandwidth(mib=64, repeats=2)
    assert r["GB/s"] > 0 and len(r["runs s"]) == 2
    with pytest.raises(ValueError, match="CPU caches"):
        bench.memory_bandwidth(mib=8)


def test_weight_bytes_counts_tied_weights_once(model):
    unique = {p.data_ptr(): p for p in model.parameters()}
    assert bench.weight_bytes(model) == 4 * sum(p.numel() for p in unique.values()) + sum(
        b.numel() * b.element_size() for b in model.buffers() if b.is_floating_point())
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # GPT-2 ties them


def test_weight_bytes_sees_torch_int8_linear_layers():
    import warnings

    lin = torch.nn.Sequential(torch.nn.Linear(64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(lin, {torch.nn.Linear}, dtype=torch.qint8)
    assert 64 * 64 <= bench.weight_bytes(q) < bench.weight_bytes(lin) / 3


def test_hardware_class_takes_the_smallest_budget_that_holds_the_model():
    assert bench.hardware_class(10) == bench.HARDWARE_CLASSES[0][0]
    assert bench.hardware_class(64.5) == bench.HARDWARE_CLASSES[1][0]
    assert bench.hardware_class(1e9) == bench.HARDWARE_CLASSES[-1][0]
    assert "MiB" in bench.hardware_rule()


def test_decode_speed_separates_the_prompt_from_the_per_token_cost(model):
    # per round: the 1-token run takes 1 s, the 9-token run 5 s -> 0.5 s per extra token
    clock = FakeClock([0.0, 1.0, 1.0, 6.0] * 3)
    r = bench.decode_speed(model, torch.tensor([[1, 2, 3]]), new_tokens=9, repeats=2, warmup=1, clock=clock)
    assert r["first token ms"] == pytest.approx(1000.0)
    assert r["tokens/s"] == pytest.approx(2.0) and r["step ms"] == pytest.approx(500.0)


def test_thread_scaling_restores_the_thread_count(model):
    before = torch.get_num_threads()
    rows = bench.thread_scaling(model, torch.tensor([[1, 2, 3]]), threads=[1, 2], new_tokens=3, repeats=1)
    assert [r["threads"] for r in rows] == [1, 2] and all(r["tokens/s"] > 0 for r in rows)
    assert torch.get_num_threads() == before


def test_machine_records_versions():
    m = bench.machine()
    assert m["torch"] == torch.__version__ and m["cores"] >= 1 and m["cpu"]


def test_cached_quality_is_computed_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    calls = []
    compute = lambda: calls.append(1) or {"value": 1.5}
    first = bench._cached("bpb", "some-model-abc", compute)
    again = bench._cached("bpb", "some-model-abc", compute)
    assert calls == [1] and first == {"value": 1.5, "cached": False} and again == {"value": 1.5, "cached": True}


@pytest.mark.parametrize("argv, message", [
    (["--models", "gpt-17"], "unknown model 'gpt-17'"),
    (["--repeats", "0"], "--repeats must be >= 1 (got 0)"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bench_command_bad_arguments_get_one_sentence(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([l for l in err.splitlines() if l.startswith("lmguide bench: error")]) == 1


def test_measure_isolated_gives_one_row_from_a_fresh_process():
    # 3 repeats of 16 tokens: with 1 repeat of 4, load once made the long run faster than the short one (NaN)
    row = bench.measure_isolated("austen-gpt-small", repeats=3, new_tokens=16, with_quality=False)
    assert row["model"] == "austen-gpt-small" and row["kind"] == "causal-lm"
    assert row["tokens/s"] > 0 and row["load s"] > 0
    assert row["peak RSS MiB"] > row["model RAM MiB"] > 0
    assert row["weights in RAM MiB"] == pytest.approx(row["parameters M"] * 1e6 * 4 / 2**20, rel=0.05)


def test_results_round_trip(tmp_path):
    import pandas as pd

    results = {"machine": {"cpu": "x"}, "table": pd.DataFrame([{"model": "a", "tokens/s": 3.0}]).set_index("model")}
    bench.save_results(results, tmp_path / "r.json")
    back = bench.load_results(tmp_path / "r.json")
    assert bench.frame_from_results(back).loc["a", "tokens/s"] == 3.0
    assert bench.load_results(tmp_path / "missing.json") is None


def test_pareto_front_keeps_only_undominated_points():
    points = {"big": (0.9, 1.0), "small": (0.5, 10.0), "worse": (0.4, 5.0), "nan": (float("nan"), 3.0),
              "tie": (0.9, 1.0)}
    assert sorted(bench.pareto_front(points)) == ["big", "small", "tie"]
    # bits per byte: lower is better, so "worse" (0.4) becomes the best quality
    assert sorted(bench.pareto_front(points, lower_quality_is_better=True)) == ["small", "worse"]


def _measured():
    import pandas as pd

    return pd.DataFrame([
        {"model": "big-lm", "kind": "causal-lm", "model RAM MiB": 900.0, "first token ms": 80.0, "tokens/s": 20.0,
         "quality task": "Austen test bits/byte", "quality": 1.0},
        {"model": "small-lm", "kind": "causal-lm", "model RAM MiB": 60.0, "first token ms": 5.0, "tokens/s": 300.0,
         "quality task": "Austen test bits/byte", "quality": 2.0},
        {"model": "reader", "kind": "question-answering", "model RAM MiB": 150.0, "first token ms": 20.0,
         "tokens/s": float("nan"), "quality task": "QA dev F1", "quality": 70.0},
    ]).set_index("model")


def test_recommend_filters_by_need_and_says_why():
    out = bench.recommend(_measured(), "write text", max_ram_mib=500, max_first_token_ms=100)
    assert list(out.index) == ["small-lm", "big-lm"]  # the one that fits comes first
    assert out.loc["small-lm", "fits"] and not out.loc["big-lm", "fits"]
    assert "900 MiB" in out.loc["big-lm", "why"] and "reader" not in out.index
    roomy = bench.recommend(_measured(), "write text", max_ram_mib=2000, max_first_token_ms=100)
    assert list(roomy.index) == ["big-lm", "small-lm"]  # both fit: lower bits per byte first
    slow = bench.recommend(_measured(), "write text", 2000, 100, min_tokens_per_s=50)
    assert "tokens/s" in slow.loc["big-lm", "why"]
    with pytest.raises(ValueError, match="need must be one of"):
        bench.recommend(_measured(), "sing", 1, 1)


def test_train_step_full_and_lora():
    full = bench.train_step("austen-gpt-small", tokens=16, repeats=1)
    lora = bench.train_step("austen-gpt-small", tokens=16, repeats=1, lora=True)
    assert (full["method"], lora["method"]) == ("full", "LoRA")
    assert full["train step s"] > 0 and lora["train step s"] > 0 and full["tokens"] == 16
    assert full["peak RSS MiB"] >= full["training RAM MiB"]
