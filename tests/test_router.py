"""The router's question set, its scoring rule and its routing arithmetic; the SLM side on real models."""
import math
from collections import Counter

import pandas as pd
import pytest

import lmguide as lg
from lmguide import router


def test_question_set_is_big_enough_and_every_question_points_at_a_passage():
    passages = {p["id"]: p["text"] for p in router.load_passages()}
    questions = router.load_questions()
    assert len(questions) >= 60
    assert len({q["id"] for q in questions}) == len(questions)
    kinds = {(q["kind"], q["split"]) for q in questions}
    assert kinds == {("easy", "tune"), ("easy", "test"), ("hard", "tune"), ("hard", "test")}
    for q in questions:
        parts = [p for a in q["answers"] for p in (a if isinstance(a, list) else [a])]
        assert q["passage"] in passages and parts and all(p.strip() == p and p for p in parts)
        if q["kind"] == "easy":  # an easy answer is copied from its passage: extractive QA can find it
            assert q["answers"][0] in passages[q["passage"]], q["id"]
        else:
            assert q.get("why hard"), f"{q['id']}: say why it is hard"
            # a bare yes or no is right half the time by chance: a hard answer needs its reason too
            assert not any(a in ("yes", "no") for a in q["answers"]), q["id"]
    hard_test = router.load_questions("test", "hard")
    assert len(hard_test) >= 30, "enough hard questions to report on"


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


@pytest.mark.parametrize("prediction, expected", [
    ("No: it only pairs within 500 metres.", True),
    ("No.", False),                                   # the reason is missing
    ("Yes, because the radius is 500 metres.", False),  # the reason, with the wrong verdict
    ("It is 500 metres, so no.", False),              # the verdict must come first
])
def test_a_gold_answer_in_parts_needs_every_part(prediction, expected):
    assert router.is_correct(prediction, [["no", "500 metres"]]) is expected


def test_score_puts_exact_match_and_f1_beside_the_rule():
    sentence = router.score("The warranty lasts 24 months.", ["24 months", "two years"])
    assert sentence["correct"] and sentence["em"] == 0.0 and 0 < sentence["f1"] < 1
    span = router.score("24 Months", ["24 months"])
    assert span == {"correct": True, "em": 1.0, "f1": 1.0}
    assert router.score("No: 500 metres", [["no", "500 metres"]])["em"] == 1.0  # parts joined for EM


@pytest.mark.parametrize("reply, answer", [
    ("Answer: 24 months\nThe warranty...", "24 months"),
    ("\n  **Answer:** three  \n", "three"),
    ('"No: it is not covered."', "No: it is not covered."),
    ("", ""),
])
def test_extract_answer_takes_the_first_line_without_its_label(reply, answer):
    assert router.extract_answer(reply) == answer


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


def _two_generators():
    # the reader's columns and two generators' (the names are made up), as answers_frame makes them
    frame = _results().drop(columns=["llm correct", "llm s"])
    frame["slm em"], frame["slm f1"] = frame["slm correct"].astype(float), frame["slm correct"].astype(float)
    for name, right, seconds in (("tiny", [False, True, True, False], 2.0), ("big", [True, True, True, True], 5.0)):
        frame[f"{name} correct"], frame[f"{name} s"] = right, seconds
        frame[f"{name} answer"] = ["x"] * 4
        frame[f"{name} em"], frame[f"{name} f1"] = 0.0, pd.Series(right, dtype=float) / 2
    return frame


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


def test_route_reports_the_95th_percentile_latency():
    r = router.route(_results(), threshold=1.0)  # latencies 0.1, 0.1, 2.1, 2.1
    assert r["p95 latency s"] == pytest.approx(2.1) and r["p95 latency s"] > r["mean latency s"]


def test_compare_has_every_baseline_and_router_with_intervals():
    frame = router.compare(_two_generators(), {"big": 1.0})
    assert list(frame.index) == ["always reader", "always big", "always tiny", "reader -> big"]  # unknown names: a-z
    assert frame.loc["always reader", "accuracy on easy"] == 1.0 and frame.loc["always reader", "accuracy on hard"] == 0.0
    assert frame.loc["always big", "accuracy"] == 1.0 and frame.loc["always tiny", "accuracy"] == 0.5
    assert (frame["95% low"] <= frame["accuracy"]).all() and (frame["accuracy"] <= frame["95% high"]).all()
    routed = frame.loc["reader -> big"]
    assert routed["share to LLM"] == 0.5 and routed["accuracy"] == 1.0
    assert routed["mean latency s"] == pytest.approx((0.1 + 0.1 + 5.1 + 5.1) / 4)
    # the router's F1 is the reader's where it kept the reader's answer, the generator's elsewhere
    assert routed["F1"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)


def test_generators_are_found_smallest_first_and_with_llm_names_one():
    frame = _two_generators().rename(columns=lambda c: c.replace("tiny", "qwen2.5-coder-1.5b").replace("big", "smollm2-135m"))
    assert router.generators_in(frame) == ["smollm2-135m", "qwen2.5-coder-1.5b"]
    assert (router.with_llm(frame, "smollm2-135m")["llm correct"] == frame["smollm2-135m correct"]).all()
    with pytest.raises(ValueError, match="no answers of 'gpt'"):
        router.with_llm(frame, "gpt")


def test_paired_differences_can_tell_and_can_fail_to_tell():
    frame = pd.concat([_two_generators()] * 5, ignore_index=True)  # 20 questions
    diffs = router.paired_differences(frame, [("always big", "always tiny"), ("always tiny", "always reader")]).set_index("a")
    big = diffs.loc["always big"]
    assert big["a - b"] == pytest.approx(0.5) and big["only a right"] == 10 and big["only b right"] == 0
    assert big["sign test p"] < 0.01 and 0 < big["95% low"] <= 0.5 <= big["95% high"]
    tiny = diffs.loc["always tiny"]  # right on different questions, as often: no difference
    assert tiny["a - b"] == 0 and tiny["sign test p"] == 1.0 and tiny["95% low"] < 0 < tiny["95% high"]
    with pytest.raises(ValueError, match="no system named 'always gpt'"):
        router.paired_differences(frame, [("always gpt", "always big")])


def test_route_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no results"):
        router.route(_results().iloc[:0], 0.0)


def test_reader_answers_easy_questions_from_the_right_passage():
    reader = router.Reader()
    easy = router.load_questions("tune", "easy")[:4]
    results = router.answer_all(easy, reader, None, progress=False)
    assert results["retrieved"].mean() >= 0.75  # the retriever finds the passage for most
    assert {"slm answer", "slm confidence", "slm s", "slm em", "slm f1"} <= set(results.columns)
    assert (results["slm s"] > 0).all() and results["slm correct"].mean() >= 0.5


def test_a_generator_gets_the_system_prompt_the_worked_example_and_the_retrieved_passages():
    reader = router.Reader()
    generator = router.Generator(lg.engines.open_engine("smollm2-135m"), reader.retrieve, max_new_tokens=4)
    question = router.load_questions("tune", "easy")[0]
    hits = reader.retrieve(question["question"])
    turns = generator.messages(question["question"], hits)
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[2]["content"] == router.EXAMPLE["answer"] and question["question"] in turns[3]["content"]
    assert reader.passages[hits[0]]["text"] in turns[3]["content"]
    a = generator.answer(question["question"])
    assert a["prompt tokens"] == len(generator.prompt_ids(question["question"], hits)) and a["seconds"] > 0
    assert a["answer"] == router.extract_answer(a["reply"])


def test_stored_answers_cover_every_question_and_score_by_the_rule():
    stored = router.load_answers()
    if stored is None:
        pytest.skip("no stored router answers (python -m lmguide.recipes.ladder --router)")
    assert set(stored["models"]) == {"reader", *router.GENERATORS} and stored["machine"]["cpu"]
    frame = router.answers_frame(stored)
    assert len(frame) == len(router.load_questions()) and router.generators_in(frame) == list(router.GENERATORS)
    for name in router.GENERATORS:
        assert (frame[f"{name} s"] > 0).all()
        row = frame.iloc[0]
        assert row[f"{name} correct"] == router.is_correct(row[f"{name} answer"], router.load_questions()[0]["answers"])
    assert frame["slm correct"][frame["kind"] == "easy"].mean() > 0.5  # the reader's own kind of question


def test_stored_answers_from_an_older_question_set_say_so():
    stored = {"models": {"reader": {"answers": {}}}}
    with pytest.raises(ValueError, match="has no stored answer.*--router"):
        router.answers_frame(stored)
    with pytest.raises(ValueError, match="no reader side"):
        router.answers_frame({"models": {}})


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
