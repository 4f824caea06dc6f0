"""The comparison table: one row per model in a fresh process, the Pareto front, the recommendation,
stored results and `lmguide bench` (lmguide.measure)."""
import pytest

from lmguide.measure import command, rows, table


@pytest.mark.parametrize("argv, message", [
    (["--models", "gpt-17"], "unknown model 'gpt-17'"),
    (["--repeats", "0"], "--repeats must be >= 1 (got 0)"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bench_command_bad_arguments_get_one_sentence(argv, message, capsys):
    assert command.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([l for l in err.splitlines() if l.startswith("lmguide bench: error")]) == 1


def test_measure_isolated_gives_one_row_from_a_fresh_process():
    # 3 repeats of 16 tokens: with 1 repeat of 4, load once made the long run faster than the short one (NaN)
    row = rows.measure_isolated("austen-gpt-small", repeats=3, new_tokens=16, with_quality=False)
    assert row["model"] == "austen-gpt-small" and row["kind"] == "causal-lm"
    assert row["tokens/s"] > 0 and row["load s"] > 0
    assert row["peak RSS MiB"] > row["model RAM MiB"] > 0
    assert row["weights in RAM MiB"] == pytest.approx(row["parameters M"] * 1e6 * 4 / 2**20, rel=0.05)
    assert row["precision"] == "float32"


def test_sizes_are_what_runs_and_precision_is_named():
    """An adapter cannot run without its parent, so its size counts both; an int8 variant says it is int8."""
    from lmguide import zoo

    adapter, parent = (rows.size_to_run(n) for n in ("austen-gpt-small-support", "austen-gpt-small"))
    own = sum(p.stat().st_size for p in zoo.path("austen-gpt-small-support").iterdir() if p.is_file())
    assert adapter > parent and adapter <= parent + own
    model, _ = zoo.load("austen-gpt-large-int8")
    assert rows.weights_precision(model).startswith("int8")


def test_results_round_trip(tmp_path):
    import pandas as pd

    results = {"machine": {"cpu": "x"}, "table": pd.DataFrame([{"model": "a", "tokens/s": 3.0}]).set_index("model")}
    table.save_results(results, tmp_path / "r.json")
    back = table.load_results(tmp_path / "r.json")
    assert table.frame_from_results(back).loc["a", "tokens/s"] == 3.0
    assert table.load_results(tmp_path / "missing.json") is None


def test_pareto_front_keeps_only_undominated_points():
    points = {"big": (0.9, 1.0), "small": (0.5, 10.0), "worse": (0.4, 5.0), "nan": (float("nan"), 3.0),
              "tie": (0.9, 1.0)}
    assert sorted(table.pareto_front(points)) == ["big", "small", "tie"]
    # bits per byte: lower is better, so "worse" (0.4) becomes the best quality
    assert sorted(table.pareto_front(points, lower_quality_is_better=True)) == ["small", "worse"]


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
    out = table.recommend(_measured(), "write text", max_ram_mib=500, max_first_token_ms=100)
    assert list(out.index) == ["small-lm", "big-lm"]  # the one that fits comes first
    assert out.loc["small-lm", "fits"] and not out.loc["big-lm", "fits"]
    assert "900 MiB" in out.loc["big-lm", "why"] and "reader" not in out.index
    roomy = table.recommend(_measured(), "write text", max_ram_mib=2000, max_first_token_ms=100)
    assert list(roomy.index) == ["big-lm", "small-lm"]  # both fit: lower bits per byte first
    slow = table.recommend(_measured(), "write text", 2000, 100, min_tokens_per_s=50)
    assert "tokens/s" in slow.loc["big-lm", "why"]
    with pytest.raises(ValueError, match="need must be one of"):
        table.recommend(_measured(), "sing", 1, 1)


def test_train_step_full_and_lora():
    full = rows.train_step("austen-gpt-small", tokens=16, repeats=1)
    lora = rows.train_step("austen-gpt-small", tokens=16, repeats=1, lora=True)
    assert (full["method"], lora["method"]) == ("full", "LoRA")
    assert full["train step s"] > 0 and lora["train step s"] > 0 and full["tokens"] == 16
    assert full["peak RSS MiB"] >= full["training RAM MiB"]


def test_quality_score_is_cached_by_key_and_quick_scores_a_part(tmp_path, monkeypatch):
    from lmguide import load
    from lmguide.measure import quality

    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    model, tokenizer = load("minilm-qa")
    part = quality.score(model, tokenizer, "question-answering", quick=True)
    assert part["task"] == "QA dev F1 (part)" and part["questions"] == 48 and not part["cached"]
    with pytest.raises(ValueError, match="no quality task for kind 'vision'"):
        quality.score(model, tokenizer, "vision")


def test_quality_key_changes_with_the_files():
    from lmguide import zoo
    from lmguide.eval import weights_key

    assert weights_key("austen-gpt-small") == f"austen-gpt-small-{zoo.fingerprint('austen-gpt-small')}"
    assert weights_key("austen-gpt-small") != weights_key("austen-gpt-large")


def test_ladder_rows_come_from_the_model_cards_naming_their_machine():
    from lmguide import zoo

    cards = table.card_rows()
    ladder = [n for n, e in zoo.ENTRIES.items() if e.chunks]
    assert sorted(cards.index) == sorted(ladder)
    assert (cards["engine"] == "llama.cpp").all() and cards["measured on"].str.contains("model card").all()
    # the bigger model of one family is slower and needs more memory; both read fewer bytes than they store
    small, big = cards.loc["qwen2.5-coder-0.5b"], cards.loc["qwen2.5-coder-1.5b"]
    assert big["tokens/s"] < small["tokens/s"] and big["peak RSS MiB"] > small["peak RSS MiB"]
    assert (cards["weights read per token MiB"] <= cards["size on disk MiB"]).all()
    assert (cards["quality task"] == "Austen test bits/byte").all() and big["quality"] < small["quality"]
    # a quick table scores a part of the split: the cards store that part too, so the ladder shares its axis
    part = table.card_rows(quick=True)
    assert (part["quality task"] == "Austen test bits/byte (part)").all()
    assert part.loc["qwen2.5-coder-1.5b", "quality"] < part.loc["qwen2.5-coder-0.5b", "quality"]
    assert not part["quality"].equals(cards["quality"])


def test_a_ladder_model_is_measured_through_its_engine():
    from lmguide import makers, zoo
    from lmguide.engines import llama_cpp

    if not llama_cpp.available() or makers.left_out(zoo.entry("qwen2.5-coder-0.5b")):
        pytest.skip("the size ladder or the llama.cpp build is not installed here")
    row = rows.measure_isolated("qwen2.5-coder-0.5b", repeats=2, new_tokens=8)
    assert row["engine"] == "llama.cpp" and row["tokens/s"] > 0 and row["peak RSS MiB"] > row["model RAM MiB"] > 0
    assert row["precision"] == "GGUF Q4_K_M"
    assert row["quality cached"].startswith("model card")  # the whole split is the card's, not re-scored
