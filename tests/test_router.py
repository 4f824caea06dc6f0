"""The router's question set, its scoring rule and its routing arithmetic; the SLM side on real models."""
import math
from collections import Counter

import pandas as pd
import pytest

from lmguide import router


def test_question_set_is_big_enough_and_every_question_points_at_a_passage():
    passages = {p["id"]: p["text"] for p in router.load_passages()}
    questions = router.load_questions()
    assert len(questions) >= 60
    assert len({q["id"] for q in questions}) == len(questions)
    kinds = {(q["kind"], q["split"]) for q in questions}
    assert kinds == {("easy", "tune"), ("easy", "test"), ("hard", "tune"), ("hard", "test")}
    for q in questions:
        assert q["passage"] in passages and q["answers"] and all(a.strip() == a and a for a in q["answers"])
        if q["kind"] == "easy":  # an easy answer is copied from its passage: extractive QA can find it
            assert q["answers"][0] in passages[q["passage"]], q["id"]
        else:
            assert q.get("why hard"), f"{q['id']}: say why it is hard"


def test_load_questions_filters_and_rejects_unknown_values():
    assert all(q["split"] == "tune" for q in router.load_questions("tune"))
    assert all(q["kind"] == "hard" for q in router.load_questions(kind="hard"))
    with pytest.raises(ValueError, match="split must be"):
        router.load_questions("dev")
    with pytest.raises(ValueError, match="kind must be"):
        router.load_questions(kind="medium")


@pytest.mark.parametrize("prediction, answers, expected", [
    ("The warranty lasts 24 months from purchase.", ["24 months"], True),     # span inside a sentence
    ("24 Months", ["24 months"], True),                                       # case and punctuation
    ("It lasts 24 weeks.", ["24 months"], False),
    ("", ["24 months"], False),                                               # an abstention
    ("No, the shop handles it.", ["no", "the shop"], True),
    ("You can not do that: no.", ["no"], False),                              # a bare no must come first
    ("Yes", ["no"], False),
    ("the Quillo Power Adapter", ["Quillo Power Adapter"], True),             # articles are dropped
])
def test_is_correct(prediction, answers, expected):
    assert router.is_correct(prediction, answers) is expected


def _results():
    # four questions: the SLM is right and confident on two, wrong and unsure on two
    return pd.DataFrame({
        "kind": ["easy", "easy", "hard", "hard"],
        "slm confidence": [5.0, 4.0, -1.0, 0.5],
        "slm correct": [True, True, False, False],
        "slm s": [0.1, 0.1, 0.1, 0.1],
        "llm correct": [False, True, True, False],
        "llm s": [2.0, 2.0, 2.0, 2.0],
    })


def test_route_adds_the_llm_time_to_the_slm_time_for_routed_questions():
    r = router.route(_results(), threshold=1.0)  # the last two go to the LLM
    assert r["share to LLM"] == 0.5
    assert r["accuracy"] == pytest.approx(3 / 4)  # SLM right twice, LLM right once of its two
    assert r["mean latency s"] == pytest.approx((0.1 + 0.1 + 2.1 + 2.1) / 4)
    assert router.route(_results(), -math.inf)["share to LLM"] == 0.0
    always_llm = router.route(_results(), math.inf)
    assert always_llm["share to LLM"] == 1.0 and always_llm["accuracy"] == 0.5


def test_choose_threshold_prefers_the_cheapest_of_the_best():
    t = router.choose_threshold(_results())
    assert router.route(_results(), t)["accuracy"] == 0.75
    assert t == 0.5  # routes only the -1.0 question (the LLM gets it right); 0.5 stays with the SLM
    assert router.route(_results(), t)["share to LLM"] == 0.25


def test_compare_has_the_two_baselines_and_per_kind_accuracy():
    frame = router.compare(_results(), 1.0)
    assert list(frame.index[:2]) == ["always SLM", "always LLM"]
    assert frame.loc["always SLM", "accuracy on easy"] == 1.0
    assert frame.loc["always LLM", "accuracy on hard"] == 0.5


def test_route_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no results"):
        router.route(_results().iloc[:0], 0.0)


def test_slm_answers_easy_questions_from_the_right_passage():
    slm = router.SLM()
    easy = router.load_questions("tune", "easy")[:4]
    results = router.answer_all(easy, slm, None, progress=False)
    assert results["retrieved"].mean() >= 0.75  # the retriever finds the passage for most
    assert {"slm answer", "slm confidence", "slm s"} <= set(results.columns)
    assert (results["slm s"] > 0).all()


def test_stratified_takes_the_same_number_from_every_split_and_kind():
    questions = router.load_questions()
    picked = router.stratified(questions, 3)
    groups = Counter((q["split"], q["kind"]) for q in picked)
    assert set(groups) == {(s, k) for s in ("tune", "test") for k in ("easy", "hard")}
    assert set(groups.values()) == {3}
    order = [questions.index(q) for q in picked]
    assert order == sorted(order), "file order is kept"
    with pytest.raises(ValueError, match="per_group must be >= 1"):
        router.stratified(questions, 0)
