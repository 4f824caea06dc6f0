"""Notebook 00's exercises: each reference solution passes, typical mistakes get their own sentence."""
import math

import pytest

from lmguide import exercises
from lmguide.exercise_bank import nb00


def message(q, answer):
    result = q.check(answer, quiet=True)
    assert not result, f"{answer!r} should be refused"
    return result.message


def test_perplexity_reference_is_two_to_the_bits_per_token():
    q = exercises.get("nb00.perplexity")
    bits_per_token = nb00._BPB * nb00._BYTES / nb00._TOKENS
    assert q.solve() == pytest.approx(2 ** bits_per_token)
    assert q.solve() == pytest.approx(math.exp(bits_per_token * math.log(2)))  # e ** nats per token
    assert q.check(q.solve(), quiet=True)
    assert q.check(round(q.solve(), 1), quiet=True)  # 46.5, as a learner types it


def test_perplexity_mistakes_are_named():
    q = exercises.get("nb00.perplexity")
    bits_per_token = nb00._BPB * nb00._BYTES / nb00._TOKENS
    assert "bits per token first" in message(q, 2 ** nb00._BPB)
    assert "2 to that power" in message(q, bits_per_token)
    assert "base 2" in message(q, math.exp(bits_per_token))
    assert "swapped" in message(q, 2 ** (nb00._BPB * nb00._TOKENS / nb00._BYTES))
    assert "too high" in message(q, 2 * q.solve())


def test_perplexity_hints_do_not_give_the_number_away():
    q = exercises.get("nb00.perplexity")
    answer = q.solve()
    for hint in q.hints:
        for shown in (f"{answer:.0f}", f"{answer:.1f}", f"{answer:.2g}", f"{nb00._BPB * nb00._BYTES / nb00._TOKENS:.2f}"):
            assert shown not in hint


def test_which_model_explains_each_wrong_letter():
    q = exercises.get("nb00.which_model")
    assert q.check("B", quiet=True) and q.check("b", quiet=True)
    assert "no ready-made vector" in message(q, "A")
    assert "never trained" in message(q, "C")
    assert "B" not in q.hints[0].replace("Be", "")  # the hint names no letter
