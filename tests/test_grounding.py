"""Grounded answers: the collection, citations, notebook 08's scorer, a real retrieval, and the stored runs."""
import pytest

from lmguide import engines, grounding, probes, router
from lmguide.recipes import together


def test_the_collection_holds_every_real_fact_and_the_manual():
    passages = grounding.collection()
    ids = [p["id"] for p in passages]
    assert len(ids) == len(set(ids))
    real = [q for q in probes.entity_questions() if q["real"]]
    assert {q["id"] for q in real} <= set(ids) and sum(p["source"] == "support manual" for p in passages) == 12


@pytest.mark.parametrize("answer, expected", [
    ("Canberra is the capital (passage 1).", [1]), ("See [2] and Passage 1", [2, 1]), ("I don't know.", []),
])
def test_cited_reads_the_passage_numbers(answer, expected):
    assert grounding.cited(answer) == expected


def test_score_is_notebook_08s_rule():
    real = next(q for q in probes.entity_questions() if q["id"] == "capital-australia")
    fake = next(q for q in probes.entity_questions() if q["id"] == "capital-veltrania")
    assert grounding.score("Canberra (passage 1).", real) == {"abstained": False, "right": True, "confident fabrication": False}
    assert grounding.score("I don't know.", real)["abstained"] and not grounding.score("I don't know.", real)["right"]
    assert grounding.score("Veltro is its capital.", fake)["confident fabrication"]
    assert not grounding.score("I don't know.", fake)["confident fabrication"]


def test_a_grounded_answer_reads_the_retrieved_fact():
    grounded = grounding.Grounded(engines.open_engine("smollm2-135m"), max_new_tokens=12)
    question = "What is the capital of Australia?"
    a = grounded.answer(question)
    assert a["passages"][0] == "capital-australia" and a["scores"][0] > a["scores"][1]
    turns = grounded.messages(question, grounded.index.search(question, 2))
    assert turns[0]["content"] == grounding.SYSTEM_PROMPT and "Passage 1: Canberra" in turns[1]["content"]
    assert a["seconds"] > 0 and a["cited"] == grounding.cited(a["answer"])


def test_stored_grounded_runs_cover_every_question():
    if not together.GROUNDED_FILE.is_file():
        pytest.skip("no stored grounded answers (python -m lmguide.recipes.together --grounded)")
    stored = together.load("grounded")
    entity_ids = {q["id"] for q in probes.entity_questions()}
    for name in together.GROUNDED_MODELS:
        assert set(stored["models"][name]["answers"]) == entity_ids
    support = stored.get("support closed-book")
    if support:
        for name in together.GROUNDED_MODELS:
            assert set(support["models"][name]["answers"]) == {q["id"] for q in router.load_questions()}
