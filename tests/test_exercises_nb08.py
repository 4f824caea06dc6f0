"""Notebook 08's exercises: each reference solution passes, and typical wrong answers get a specific message."""
import pytest

from lmguide import exercises
from lmguide.exercise_bank import nb08

KEYS = ["nb08.chance_any", "nb08.lcs", "nb08.auc", "nb08.probe_claim"]


@pytest.mark.parametrize("key", KEYS)
def test_reference_passes_and_wrong_example_fails(key, capsys):
    q = exercises.get(key)
    assert q.check(q.solve()).ok
    assert not q.check(q.wrong_example).ok
    out = capsys.readouterr().out
    assert "✓ Correct" in out and "✗ Not yet" in out


def test_chance_any_accepts_typed_forms_and_names_the_usual_mistakes(capsys):
    q = exercises.get("nb08.chance_any")
    assert q.solve() == pytest.approx(0.0902, abs=1e-4)
    assert q.check(0.0902).ok and q.check("0.090").ok and q.check("9.0e-2").ok
    assert not q.check(6 / 64).ok
    assert "counts twice" in capsys.readouterr().out
    assert not q.check(1 / 64).ok
    assert "one control's chance" in capsys.readouterr().out
    assert not q.check(5).ok
    assert "not a probability" in capsys.readouterr().out


def test_lcs_solution_code_passes_and_subsequence_is_named(capsys):
    q = exercises.get("nb08.lcs")
    namespace = {}
    exec(q.solution_code, namespace)
    assert q.check(namespace["longest_common_substring"]).ok

    def subsequence(a, b):  # longest common subsequence: gaps allowed
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i, x in enumerate(a, 1):
            for j, y in enumerate(b, 1):
                table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
        return table[-1][-1]

    assert not q.check(subsequence).ok
    assert "subsequence" in capsys.readouterr().out
    assert not q.check(42).ok
    assert "pass your function itself" in capsys.readouterr().out


def test_brute_force_reference_is_right():
    assert nb08._brute_force_lcs([1, 2, 3, 4], [0, 2, 3, 4, 9]) == 3
    assert nb08._brute_force_lcs([], [1]) == 0


def test_auc_solution_code_passes_and_flipped_labels_are_named(capsys):
    q = exercises.get("nb08.auc")
    namespace = {}
    exec(q.solution_code, namespace)
    assert q.check(namespace["auc"]).ok
    flipped = lambda scores, labels: namespace["auc"]([-s for s in scores], labels)
    assert not q.check(flipped).ok
    assert "1 minus the right one" in capsys.readouterr().out
    assert not q.check(q.wrong_example).ok
    assert "ties count one half" in capsys.readouterr().out


def test_probe_claim_explains_each_wrong_letter(capsys):
    q = exercises.get("nb08.probe_claim")
    for letter in "ACD":
        result = q.check(letter.lower())
        assert not result.ok and result.message == q.why_wrong[letter]
    assert q.check(" b ").ok
