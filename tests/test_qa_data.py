"""lmguide.qa_data: building, checking and loading the SQuAD-format QA files, and the shipped data."""
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from lmguide import data as lg_data
from lmguide import qa, qa_data, zoo


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(zoo.path("minilm-l6"))


# --- building the data -------------------------------------------------------------------------------
RECORDS = [
    {"id": "a1", "source": "austen", "context": "Emma met Harriet; later Emma met Mr Knightley.",
     "qas": [{"question": "Who met Harriet?", "answer": "Emma"},
             {"question": "Who met Mr Knightley?", "answer": "Emma", "occurrence": 1}]},
    {"id": "t1", "source": "team", "context": "The lead writes the zoo module.",
     "qas": [{"question": "Who writes the zoo module?", "answer": "The lead"}]},
]


def test_first_questions_keeps_the_first_n_in_order():
    data = qa_data.build_squad(RECORDS)
    everything = [q["id"] for q in qa_data.iter_questions(data)]
    assert len(everything) >= 3
    assert [q["id"] for q in qa_data.iter_questions(qa_data.first_questions(data, 2))] == everything[:2]
    assert qa_data.first_questions(data, None) is data


def test_build_squad_computes_answer_start_from_occurrence():
    data = qa_data.build_squad(RECORDS)
    assert data["version"] == "1.1"
    assert [a["title"] for a in data["data"]] == ["austen", "team"]
    questions = list(qa_data.iter_questions(data))
    assert [q["id"] for q in questions] == ["a1-0", "a1-1", "t1-0"]
    assert questions[0]["answer_starts"] == [0]
    assert questions[1]["answer_starts"] == [RECORDS[0]["context"].index("Emma met Mr")]
    assert qa_data.check_squad(data) is data


def with_change(change):
    records = json.loads(json.dumps(RECORDS))
    change(records)
    return records


@pytest.mark.parametrize("change, message", [
    (lambda r: r[0]["qas"][0].update(answer="Emma Woodhouse"), r"record 'a1' question 0: answer 'Emma Woodhouse' is not in its context"),
    (lambda r: r[0]["qas"][1].update(occurrence=2), r"record 'a1' question 1: occurrence=2 but 'Emma' occurs 2 time\(s\)"),
    (lambda r: r[1].pop("context"), r"record 't1' has no 'context' field"),
    (lambda r: r[1].update(id="a1"), r"record 'a1' appears twice"),
    (lambda r: r[1]["qas"][0].update(question=" "), r"record 't1' question 0 has an empty question"),
    (lambda r: r[1]["qas"][0].update(answer="The lead "), r"answer 'The lead ' is empty or has spaces at its ends"),
    (lambda r: r[1].update(qas=[]), r"record 't1' has no questions"),
    (lambda r: r[1].update(context=""), r"record 't1' has an empty context"),
])
def test_build_squad_errors_name_the_record(change, message):
    with pytest.raises(ValueError, match=message):
        qa_data.build_squad(with_change(change))


def test_check_squad_and_load_squad(tmp_path):
    data = qa_data.build_squad(RECORDS)
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data))
    assert qa_data.load_squad(path) == data
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    with pytest.raises(ValueError, match=r"question 'a1-0': answer 'Emma' is not at answer_start=3"):
        qa_data.check_squad(data)


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(["Emma", "Bath", "rain", "ball", "tea"]), min_size=1, max_size=12),
       data=st.data())
def test_answer_start_always_points_at_the_answer(words, data):
    context = " ".join(words)
    answer = data.draw(st.sampled_from(words))
    count = len(qa_data._positions(context, answer))
    occurrence = data.draw(st.integers(0, count - 1))
    record = {"id": "x", "source": "s", "context": context,
              "qas": [{"question": "Which?", "answer": answer, "occurrence": occurrence}]}
    (q,) = qa_data.iter_questions(qa_data.build_squad([record]))
    start = q["answer_starts"][0]
    assert context[start:start + len(answer)] == answer
    assert context[:start].count(answer) == occurrence


def test_build_script_refuses_a_dev_passage_seen_in_training():
    script = Path(__file__).resolve().parents[1] / "scripts" / "build_qa_data.py"
    spec = importlib.util.spec_from_file_location("build_qa_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train = [{"id": "t", "context": "Emma met Harriet.\nLater   they walked."}]
    module.check_dev_is_unseen(train, [{"id": "d", "context": "A new passage."}])
    with pytest.raises(ValueError, match="dev record 'd' shares its passage with train record 't'"):
        module.check_dev_is_unseen(train, [{"id": "d", "context": "later they walked."}])


def test_unanswerable_questions_get_another_titles_passage_and_a_cls_label(tokenizer):
    data = qa_data.build_squad(RECORDS + [
        {"id": "t2", "source": "team", "context": "Tests run on one thread.",
         "qas": [{"question": "How many threads?", "answer": "one thread"}]}])
    negatives = qa_data.unanswerable(data, fraction=1.0, seed=0)
    questions = {q["id"]: q for q in qa_data.iter_questions(data)}
    asked = list(qa_data.iter_questions(negatives))
    assert len(asked) == 4
    for q in asked:
        original = questions[q["id"].removesuffix("-unanswerable")]
        assert q["answers"] == [] and q["question"] == original["question"]
        assert q["title"] == "unanswerable" and original["answers"][0] not in q["context"]
        assert q["context"] != original["context"]
    features = qa.prepare_train_features(negatives, tokenizer, max_length=64, stride=16)
    assert features["start_positions"].eq(0).all() and features["end_positions"].eq(0).all()
    assert qa_data.unanswerable(data, fraction=0.5, seed=0) == qa_data.unanswerable(data, 0.5, seed=0)


def test_shipped_qa_data_is_valid_and_dev_passages_are_unseen():
    train, dev = qa_data.load_split("train"), qa_data.load_split("dev")  # check_squad runs on load
    train_contexts = {q["context"] for q in qa_data.iter_questions(train)}
    dev_questions = list(qa_data.iter_questions(dev))
    assert len(dev_questions) > 50 and len(train_contexts) > 20
    assert not {q["context"] for q in dev_questions} & train_contexts
    with pytest.raises(ValueError, match="unknown QA split 'test'"):
        qa_data.load_split("test")


SOURCES = Path(__file__).resolve().parents[1] / "data" / "qa_source"


def _source_records(pattern: str) -> list[dict]:
    return [r for f in sorted(SOURCES.glob(pattern)) for r in json.loads(f.read_text(encoding="utf-8"))]


def test_shipped_qa_data_is_what_the_sources_build():
    # the package ships lmguide/assets/qa/*.json; a source edited without re-running
    # scripts/build_qa_data.py would silently train and score on stale data
    assert qa_data.build_squad(_source_records("train_*.json")) == qa_data.load_split("train")
    assert qa_data.build_squad(_source_records("dev.json")) == qa_data.load_split("dev")
    assert sum(1 for _ in qa_data.iter_questions(qa_data.load_split("train"))) >= 1500
    assert sum(1 for _ in qa_data.iter_questions(qa_data.load_split("dev"))) >= 200


def test_austen_qa_passages_come_from_their_own_corpus_split():
    # training passages from `train` chapters, dev passages from `val`: the AustenGPT models and
    # the QA reader are then never scored on text they were trained on
    text = {(book, index): (split, chapter) for split in ("train", "val", "test")
            for book, index, chapter in lg_data.chapters(split)}
    for pattern, split in (("train_*.json", "train"), ("dev.json", "val")):
        austen = [r for r in _source_records(pattern) if r["source"].startswith("austen:")]
        assert austen
        for record in austen:
            _, book, chapter = record["source"].split(":")
            where = text[(book, int(chapter.removeprefix("chapter ")))]
            assert where[0] == split and record["context"] in where[1], record["id"]

