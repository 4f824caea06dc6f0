"""Notebook 09's exercises: each reference solution passes, typical mistakes get their own message."""
import pytest

from lmguide import exercises

KEYS = ["nb09.best_k", "nb09.break_even", "nb09.kappa"]


@pytest.mark.parametrize("key", KEYS)
def test_reference_passes_and_wrong_example_fails(key, capsys):
    q = exercises.get(key)
    assert q.check(q.solve())
    assert not q.check(q.wrong_example)
    assert "✗ Not yet:" in capsys.readouterr().out


def test_best_k_is_a_close_call_the_formula_decides(capsys):
    q = exercises.get("nb09.best_k")
    assert q.solve() == 4
    assert q.check("4") and q.check(4.0)
    assert not q.check(2)
    assert "another k predicts more" in capsys.readouterr().out
    assert not q.check(8)
    assert "cost more than the extra tokens" in capsys.readouterr().out


def test_break_even_uses_the_stored_sweeps_step_costs():
    import json

    from lmguide.exercise_bank import nb09
    from lmguide.recipes import together

    if not together.SPECULATIVE_FILE.is_file():
        pytest.skip("no stored sweep")
    pair = next(p for p in json.loads(together.SPECULATIVE_FILE.read_text())["pairs"] if p["draft"] == "qwen2.5-coder-0.5b")
    req = pair["requests"]["prose"]
    assert abs(1000 * req["draft step s"] - nb09.DRAFT_MS) < 1 and abs(1000 * req["target step s"] - nb09.TARGET_MS) < 1
    assert abs(1000 * req["verify s by tokens read"]["5"] - nb09.VERIFY5_MS) < 1


def test_break_even_accepts_rounded_forms_and_names_mistakes(capsys):
    q = exercises.get("nb09.break_even")
    assert q.solve() == pytest.approx(0.966, abs=0.002)
    assert q.check(round(q.solve(), 3)) and q.check("0.97")
    assert not q.check(96.6)
    assert "not a probability" in capsys.readouterr().out
    assert not q.check((4 * 39 + 157) / 67 / 5)
    assert "1 + a + ... + a^4" in capsys.readouterr().out


def test_kappa_names_raw_agreement_and_half_of_chance(capsys):
    q = exercises.get("nb09.kappa")
    assert q.solve() == pytest.approx(0.647, abs=0.001)
    assert q.check(0.647) and q.check("0.65")
    assert not q.check(50 / 60)
    assert "raw agreement" in capsys.readouterr().out
    assert not q.check((50 / 60 - 40 / 60 * 35 / 60) / (1 - 40 / 60 * 35 / 60))
    assert "two parts" in capsys.readouterr().out
