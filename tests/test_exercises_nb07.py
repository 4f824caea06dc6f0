"""Notebook 07's exercises: each reference solution passes, typical mistakes get their own message."""
import math

import pytest

from lmguide import exercises
from lmguide.exercise_bank import nb07

KEYS = ["nb07.decode_bound", "nb07.route", "nb07.pareto", "nb07.long_prompt"]


@pytest.mark.parametrize("key", KEYS)
def test_reference_passes_and_wrong_example_fails(key, capsys):
    q = exercises.get(key)
    assert q.check(q.solve())
    assert not q.check(q.wrong_example)
    assert "✗ Not yet:" in capsys.readouterr().out


def test_decode_bound_accepts_rounded_and_string_forms_and_names_the_byte_mistake(capsys):
    q = exercises.get("nb07.decode_bound")
    assert q.solve() == pytest.approx(50e9 / 720e6)
    assert q.check(69.4)
    assert not q.check(2 * q.solve())
    assert "2 bytes" in capsys.readouterr().out


def _route(results, threshold):
    keep = results["slm confidence"] >= threshold
    return results["slm correct"].where(keep, results["llm correct"]).mean()


def test_route_solution_from_the_prompt_passes_and_mistakes_are_named(capsys):
    q = exercises.get("nb07.route")
    assert q.check(_route)
    assert not q.check(lambda r, t: 100 * _route(r, t))
    assert "not a percentage" in capsys.readouterr().out
    flipped = lambda r, t: r["llm correct"].where(r["slm confidence"] >= t, r["slm correct"]).mean()
    assert not q.check(flipped)
    assert "other way round" in capsys.readouterr().out
    assert not q.check(3)
    assert "pass your function itself" in capsys.readouterr().out


def test_route_data_has_a_confidence_on_each_side_of_every_tested_threshold():
    frame = nb07.results_frame()
    for t in (0.0, 2.0, 3.5):
        assert (frame["slm confidence"] >= t).any() and (frame["slm confidence"] < t).any()


def test_pareto_solution_code_passes(capsys):
    q = exercises.get("nb07.pareto")
    scope = {}
    exec(q.solution_code, scope)
    assert q.check(scope["pareto_front"])
    assert not q.check(lambda points: list(points))  # keeps everyone
    assert "kept" in capsys.readouterr().out


def test_long_prompt_follows_the_card_and_names_the_forgotten_part(capsys):
    from lmguide.measure import quality

    row = quality.card("qwen2.5-coder-1.5b")["serving"]["by prompt length"][-1]
    q = exercises.get("nb07.long_prompt")
    reading = 1500 * row["first token ms"] / 1000 / row["prompt tokens"]
    steps = 99 * row["per token ms"] / 1000
    assert q.solve() == pytest.approx(reading + steps) and reading > steps  # reading the prompt dominates
    assert q.check(round(q.solve(), 1)) and q.check(str(round(q.solve())))
    assert not q.check(steps)
    assert "reads all 1,500 prompt" in capsys.readouterr().out
    assert not q.check(reading)
    assert "first token only" in capsys.readouterr().out
    assert not q.check(1000 * q.solve())
    assert "milliseconds" in capsys.readouterr().out
    assert not q.check(steps + row["first token ms"] / 1000)
    assert "turn the row into a rate" in capsys.readouterr().out
    *lines, last = q.solution_code.strip().splitlines()
    scope = {}
    exec("\n".join(lines), scope)
    assert eval(last, scope) == pytest.approx(q.solve())  # the solution shown computes the answer checked
