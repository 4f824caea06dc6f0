"""Notebook 03's exercises: each reference answer passes, each slip gets its own message,
and no message or hint shows the answer."""
import pytest
import torch

import lmguide as lg
from lmguide import exercises
from lmguide.exercise_bank import nb03


def check(q, answer):
    return q.check(answer, quiet=True)


# --- 1. masked max pooling ------------------------------------------------------------------------
def test_max_pool_reference_ignores_padding_on_the_exercise_batch():
    hidden, mask = nb03._padded_batch()
    pooled = lg.embeddings.max_pool(hidden, mask)
    assert pooled[1].tolist() == [-2.0, 2.0, 2.0]  # text 2's real tokens only; its padding holds 9s
    assert pooled[0].tolist() == hidden[0].amax(0).tolist()  # text 1 has no padding


def test_max_pool_accepts_another_correct_way_of_writing_it():
    def max_pool(hidden, mask):
        out = []
        for h, m in zip(hidden, mask):
            out.append(h[m.bool()].max(dim=0).values)  # the real tokens' rows, then the max
        return torch.stack(out)

    assert check(exercises.get("nb03.max_pool"), max_pool)


@pytest.mark.parametrize("make, says", [
    (lambda h, m: h.amax(dim=1), "padding wins"),
    (lambda h, m: (h * m[..., None]).amax(dim=1), "padding's 0 is still the max"),
    (lambda h, m: lg.embeddings.mean_pool(h, m), "masked mean"),
    (lambda h, m: h.masked_fill(m[..., None] == 0, float("inf")).amin(dim=1), "minimum"),
    (lambda h, m: h.amax(dim=2), "expected (2, 3)"),
    (lambda h, m: h.masked_fill(m == 0, float("-inf")).amax(dim=1), "raised RuntimeError"),  # mask without [..., None]
])
def test_max_pool_names_each_mistake(make, says):
    result = check(exercises.get("nb03.max_pool"), make)
    assert not result and says in result.message, result.message


def test_max_pool_mean_pool_from_section_1_does_not_pass():
    # section 1's function is the masked mean: the exercise must need new work
    def mean_pool_scratch(hidden, mask):
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1)

    assert not check(exercises.get("nb03.max_pool"), mean_pool_scratch)


# --- 2. SQuAD F1 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("typed", [2 / 3, 0.67, "0.67", 0.667, "2/3"])
def test_f1_accepts_two_thirds_as_people_write_it(typed):
    assert check(exercises.get("nb03.f1"), typed)


@pytest.mark.parametrize("typed, says", [
    (0.5, "precision alone"),
    (1, "recall alone"),
    (0, "exact-match score"),
    (0.57, "keeps 'the'"),
    ("0.571", "keeps 'the'"),
    (0.7, "significant figure"),
    (66.7, "percentage"),
])
def test_f1_names_each_slip(typed, says):
    result = check(exercises.get("nb03.f1"), typed)
    assert not result and says in result.message, result.message
    assert "off by 0%" not in result.message


def test_f1_reference_is_the_squad_rule():
    assert exercises.get("nb03.f1").solve() == pytest.approx(2 / 3)  # P = 2/4, R = 2/2


# --- 3. joint span --------------------------------------------------------------------------------
def test_joint_span_reference_is_the_best_legal_pair_by_brute_force():
    q = exercises.get("nb03.joint_span")
    legal = [(s, e) for s in range(5, 10) for e in range(s, min(s + 3, 10))]
    best = max(legal, key=lambda p: q.start[p[0]] + q.end[p[1]])
    assert tuple(q.solve()) == best


@pytest.mark.parametrize("typed", ["({}, {})", "{},{}", "{} {}", "[{}, {}]"])
def test_joint_span_accepts_the_pair_typed_as_text(typed):
    q = exercises.get("nb03.joint_span")
    assert check(q, typed.format(*q.solve()))
    assert check(q, list(q.solve())) and check(q, torch.tensor(q.solve()))


@pytest.mark.parametrize("answer, says", [
    ((2, 3), "outside the context"),
    ((6, 5), "ends before it starts"),
    ((5, 9), "5 tokens long"),
    ((8, 9), "legal but scores 4"),
    ("six to eight", "pair of token positions"),
    (7, "pair of token positions"),
])
def test_joint_span_names_each_slip(answer, says):
    result = check(exercises.get("nb03.joint_span"), answer)
    assert not result and says in result.message, result.message


def test_joint_span_messages_never_show_the_answer():
    q = exercises.get("nb03.joint_span")
    s, e = q.solve()
    for bad in ("?", 7, (2, 3), (6, 5), (5, 9), (8, 9), (7, 9)):
        message = check(q, bad).message
        assert f"({s}, {e})" not in message and f"{s}, {e}" not in message, message
    for hint in q.hints:
        assert f"{s}, {e}" not in hint and f"start {s}, end {e}" not in hint
