"""The local judge: its parsers, Cohen's kappa, the padding probe, the items it grades, and the stored run."""
import math

import pytest

from lmguide import engines, judge, router
from lmguide.recipes import together


@pytest.mark.parametrize("reply, verdict", [
    ("correct", "correct"), ("Incorrect.", "incorrect"), ("**Correct**", "correct"), ("The answer is right", "unclear"),
    ("", "unclear"),
])
def test_parse_grade_reads_the_first_word(reply, verdict):
    assert judge.parse_grade(reply) == verdict


@pytest.mark.parametrize("reply, choice", [("A", "A"), ("b.", "B"), ("Answer B is better", "B"), ("Both", "unclear")])
def test_parse_preference_reads_one_letter(reply, choice):
    assert judge.parse_preference(reply) == choice


def test_cohen_kappa_against_hand_worked_cases():
    r1 = ["y"] * 5 + ["n"] * 5
    r2 = ["y"] * 4 + ["n"] + ["y"] + ["n"] * 4  # agree on 8 of 10, each says y half the time: chance 0.5
    assert math.isclose(judge.cohen_kappa(r1, r2), 0.6)
    assert judge.cohen_kappa(r1, r1) == 1.0 and judge.cohen_kappa(r1, r1[::-1]) == -1.0
    with pytest.raises(ValueError, match="equally long"):
        judge.cohen_kappa(r1, r2[:3])


def test_padding_adds_words_but_keeps_the_answer():
    padded = judge.pad(" 24 months. ")
    assert "24 months." in padded and len(padded) > 5 * len("24 months.")


def test_items_carry_the_rules_verdict():
    stored = router.load_answers()
    passages = {p["id"]: p["text"] for p in router.load_passages()}
    questions = router.load_questions("test")[:6]
    for item, q in zip(judge.items(stored, "qwen2.5-coder-1.5b", questions, passages), questions):
        assert item["passage"] == passages[q["passage"]]
        assert (item["rule"] == "correct") == router.score(item["answer"], q["answers"])["correct"]


def test_a_judge_answers_with_a_verdict_it_can_parse():
    j = judge.Judge(engines.open_engine("smollm2-135m"))
    q = router.load_questions("test")[0]
    passage = next(p["text"] for p in router.load_passages() if p["id"] == q["passage"])
    assert j.grade(q["question"], q["answers"][0], q["answers"][0], passage) in ("correct", "incorrect", "unclear")
    assert j.prefer(q["question"], q["answers"][0], "no idea", q["answers"][0], passage) in ("A", "B", "unclear")


def test_the_stored_judge_run_is_whole():
    if not together.JUDGE_FILE.is_file():
        pytest.skip("no stored judge run (python -m lmguide.recipes.together --judge)")
    stored = together.load("judge")
    assert len(stored["grades"]) == len(router.load_questions("test"))
    assert all(g["judge"] in ("correct", "incorrect", "unclear") for g in stored["grades"])
    for p in stored["preferences"]:  # exactly one side right by the rule, asked in both orders
        assert p["right side"] in (stored["graded side"], stored["other side"])
        assert {p["first order"], p["swapped order"]} <= {stored["graded side"], stored["other side"], "unclear"}
    wrong = {g["id"] for g in stored["grades"] if g["rule"] == "incorrect"}
    assert stored["verbosity"] and {v["id"] for v in stored["verbosity"]} <= wrong  # padding probes wrong answers only
