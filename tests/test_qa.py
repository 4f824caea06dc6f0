import importlib.util
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from lmguide import data as lg_data
from lmguide import finetune_qa, qa, zoo


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(zoo.path("minilm-l6"))


class OracleQA(torch.nn.Module):
    """A stand-in QA model: the start logit is high on one token id, the end logit on another.

    ``null`` is the [CLS] score for both, so the no-answer rule can be steered.
    """

    def __init__(self, start_id, end_id, null=0.0, null_where_absent=None):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.start_id, self.end_id, self.null = start_id, end_id, null
        self.null_where_absent = null if null_where_absent is None else null_where_absent

    @property
    def ids(self):
        return self.start_id, self.end_id

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        start = (input_ids == self.start_id).float() * 10.0  # (B, T)
        end = (input_ids == self.end_id).float() * 10.0
        present = (input_ids == self.start_id).any(dim=1)   # (B,) windows holding the answer
        null = torch.where(present, torch.tensor(self.null), torch.tensor(self.null_where_absent))
        start[:, 0] = end[:, 0] = null
        return QuestionAnsweringModelOutput(start_logits=start, end_logits=end)


def oracle_for(tokenizer, answer, null=0.0):
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return OracleQA(ids[0], ids[-1], null)


FILLER = "She walked on through the wet lanes and said nothing at all. "
ANSWER = "Pemberley in Derbyshire"


# --- SQuAD metrics -------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, normal", [
    ("The  Bennet, Sisters!", "bennet sisters"),
    ("an apple a day", "apple day"),
    ("theatre and anthem", "theatre and anthem"),  # articles only as whole words
    ("  ", ""),
    ("Mr. Darcy's", "mr darcys"),
])
def test_normalize_answer(raw, normal):
    assert qa.normalize_answer(raw) == normal


def test_exact_match_and_f1_cases():
    assert qa.exact_match("The Bennet sisters.", "bennet sisters") == 1.0
    assert qa.exact_match("Bennet", "bennet sisters") == 0.0
    assert qa.f1_score("Bennet sisters at Longbourn", "the Bennet sisters") == pytest.approx(2 / 3)
    assert qa.f1_score("bennet bennet", "bennet") == pytest.approx(2 / 3)  # repeated words count once each
    assert qa.f1_score("Mr Darcy", "Elizabeth") == 0.0


def test_empty_answers():
    assert qa.f1_score("", "") == 1.0 and qa.exact_match("", "") == 1.0
    assert qa.f1_score("", "Darcy") == 0.0 and qa.f1_score("Darcy", "") == 0.0
    assert qa.f1_score("the", "a") == 1.0 == qa.exact_match("the", "a")  # both normalise to nothing


words = st.sampled_from(["the", "a", "Darcy", "darcy,", "Emma", "ball", "an", "rain.", "Bath", "!"])
answers = st.lists(words, max_size=6).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(answers, answers)
def test_f1_is_symmetric_bounded_and_exact_match_implies_f1_one(a, b):
    f1 = qa.f1_score(a, b)
    assert f1 == qa.f1_score(b, a)
    assert 0.0 <= f1 <= 1.0
    if qa.exact_match(a, b):
        assert f1 == 1.0
    assert qa.normalize_answer(qa.normalize_answer(a)) == qa.normalize_answer(a)


def small_dataset():
    return qa.build_squad([
        {"id": "p1", "source": "test", "context": "Emma lived at Hartfield with her father.",
         "qas": [{"question": "Where did Emma live?", "answer": "Hartfield"},
                 {"question": "Who lived with Emma?", "answer": "her father"}]},
    ])


def test_squad_evaluate_takes_the_best_gold_answer_and_reports_percent():
    data = small_dataset()
    data["data"][0]["paragraphs"][0]["qas"][1]["answers"].append({"text": "father", "answer_start": 33})
    scores = qa.squad_evaluate({"p1-0": "at Hartfield", "p1-1": "father"}, data)
    assert scores["count"] == 2
    assert scores["exact_match"] == pytest.approx(50.0)  # "father" matches the second gold answer
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1.0) / 2)


def test_squad_evaluate_names_missing_and_unknown_ids():
    with pytest.raises(ValueError, match=r"lack 1 of 2 question ids \(first: 'p1-1'\)"):
        qa.squad_evaluate({"p1-0": "Hartfield"}, small_dataset())
    with pytest.raises(ValueError, match=r"not in the dataset \(first: 'zz'\)"):
        qa.squad_evaluate({"p1-0": "x", "p1-1": "y", "zz": "z"}, small_dataset())


# --- best_span ----------------------------------------------------------------------------------
def test_best_span_never_ends_before_it_starts():
    start = torch.tensor([0.0, 0.0, 0.0, 9.0, 0.0])
    end = torch.tensor([0.0, 8.0, 0.0, 0.0, 1.0])  # end argmax (1) is before start argmax (3)
    s, e, score = qa.best_span(start, end, [True] * 5)
    assert (s, e) == (3, 4) and score == pytest.approx(10.0)


def test_best_span_stays_inside_the_context():
    start = torch.tensor([20.0, 15.0, 1.0, 0.0, 0.0])
    end = torch.tensor([20.0, 15.0, 0.0, 2.0, 0.0])
    mask = [False, False, True, True, True]  # [CLS] and the question are not context
    assert qa.best_span(start, end, mask)[:2] == (2, 3)


def test_best_span_respects_max_answer_len():
    start = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    end = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 6.0])  # the best pair overall spans 6 tokens
    mask = [True] * 6
    assert qa.best_span(start, end, mask, max_answer_len=6)[:2] == (0, 5)
    assert qa.best_span(start, end, mask, max_answer_len=3)[:2] == (0, 2)


def test_top_n_falls_back_to_a_full_search_when_no_shortlisted_pair_is_legal():
    start = torch.tensor([0.0, 1.0, 0.0, 9.0])
    end = torch.tensor([0.0, 2.0, 8.0, 0.0])  # top-1 start 3, top-1 end 2: illegal together
    assert qa.best_span(start, end, [True] * 4, top_n=1) == qa.best_span(start, end, [True] * 4, top_n=None)
    assert qa.best_span(start, end, [True] * 4, top_n=1)[:2] == (1, 2)


def test_best_span_input_checks():
    with pytest.raises(ValueError, match="context_mask has no True position"):
        qa.best_span([1.0, 2.0], [1.0, 2.0], [False, False])
    with pytest.raises(ValueError, match="one length"):
        qa.best_span([1.0, 2.0], [1.0], [True, True])
    with pytest.raises(ValueError, match=r"max_answer_len must be >= 1 \(got 0\)"):
        qa.best_span([1.0], [1.0], [True], max_answer_len=0)
    with pytest.raises(ValueError, match="inf or nan"):
        qa.best_span([float("nan"), 1.0], [1.0, 1.0], [True, True])


finite = st.floats(-50, 50, allow_nan=False, width=32)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), length=st.integers(1, 12), max_len=st.integers(1, 5),
       top_n=st.sampled_from([None, 1, 2, 5, 20]))
def test_best_span_is_always_legal_and_exhaustive_search_is_optimal(data, length, max_len, top_n):
    start = data.draw(st.lists(finite, min_size=length, max_size=length))
    end = data.draw(st.lists(finite, min_size=length, max_size=length))
    mask = data.draw(st.lists(st.booleans(), min_size=length, max_size=length))
    assume(any(mask))
    s, e, score = qa.best_span(start, end, mask, max_answer_len=max_len, top_n=top_n)
    assert mask[s] and mask[e] and s <= e and e - s + 1 <= max_len
    legal = [(i, j) for i, j in itertools.product(range(length), repeat=2)
             if mask[i] and mask[j] and i <= j < i + max_len]
    best = max(torch.tensor(start[i], dtype=torch.float32) + torch.tensor(end[j], dtype=torch.float32)
               for i, j in legal)
    assert score <= float(best) + 1e-4
    if top_n is None:
        assert score == pytest.approx(float(best), abs=1e-4)


# --- answer_question: windows, offsets, no-answer ---------------------------------------------------
@pytest.mark.parametrize("repeats_before", [0, 7, 19, 40])
def test_answer_is_found_in_any_window_of_a_long_context(tokenizer, repeats_before):
    context = FILLER * repeats_before + f"Darcy lives at {ANSWER}. " + FILLER * 25
    n_tokens = len(tokenizer(context)["input_ids"])
    assert n_tokens > 4 * 64  # many windows of 64 tokens
    result = qa.answer_question("Where does Darcy live?", context, oracle_for(tokenizer, ANSWER), tokenizer,
                                max_length=64, stride=16)
    assert result["answer"] == ANSWER
    assert context[result["start"]:result["end"]] == ANSWER
    assert result["start"] == context.index(ANSWER)
    assert result["score"] > result["null_score"]


def test_no_answer_when_the_null_score_wins_by_the_margin(tokenizer):
    context = f"Darcy lives at {ANSWER}. " + FILLER * 3
    question = "Who is the king of France?"
    confident_null = oracle_for(tokenizer, ANSWER, null=30.0)
    result = qa.answer_question(question, context, confident_null, tokenizer)
    assert result["answer"] == "" and result["null_score"] == pytest.approx(60.0)
    assert context[result["start"]:result["end"]] == ANSWER  # the best span is still reported
    assert qa.answer_question(question, context, confident_null, tokenizer, null_margin=41.0)["answer"] == ANSWER
    assert qa.answer_question(question, context, confident_null, tokenizer,
                              null_margin=math.inf)["answer"] == ANSWER
    # nothing in the context scores: every span is 0, the null 2 x 5 = 10 wins
    nothing = qa.answer_question(question, FILLER * 3, oracle_for(tokenizer, ANSWER, null=5.0), tokenizer)
    assert nothing["answer"] == "" and nothing["score"] == 0.0


def test_one_window_holding_the_answer_is_enough(tokenizer):
    # like a trained model: windows without the answer put a high score on [CLS]
    model = OracleQA(*oracle_for(tokenizer, ANSWER).ids, null=0.0, null_where_absent=30.0)
    context = FILLER * 20 + f"Darcy lives at {ANSWER}. " + FILLER * 20
    result = qa.answer_question("Where does Darcy live?", context, model, tokenizer, max_length=64, stride=16)
    assert result["answer"] == ANSWER and result["null_score"] == 0.0


def test_input_checks_are_one_clear_sentence(tokenizer):
    model = oracle_for(tokenizer, ANSWER)
    with pytest.raises(ValueError, match="the question is empty"):
        qa.answer_question("   ", "Some context.", model, tokenizer)
    with pytest.raises(ValueError, match="the context is empty"):
        qa.answer_question("Who?", "", model, tokenizer)
    long_question = "Why " + "really " * 60 + "?"
    with pytest.raises(ValueError, match=r"not more than stride=128; shorten the question"):
        qa.answer_question(long_question, FILLER * 30, model, tokenizer, max_length=128, stride=128)


def test_a_random_tiny_bert_gives_well_formed_answers_in_batches(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37)
    model = BertForQuestionAnswering(config)
    pairs = [("Who lives at Pemberley?", FILLER * 30 + f"Darcy lives at {ANSWER}."),
             ("What did she say?", "Nothing."),
             ("Where?", FILLER * 2)]
    batched = qa.answer_many(pairs, model, tokenizer, max_length=96, stride=32, null_margin=math.inf)
    for (question, context), result in zip(pairs, batched):
        assert set(result) == {"answer", "start", "end", "score", "null_score"}
        assert 0 <= result["start"] < result["end"] <= len(context)
        assert result["answer"] == context[result["start"]:result["end"]]
        one = qa.answer_question(question, context, model, tokenizer, max_length=96, stride=32,
                                 null_margin=math.inf)
        assert (one["start"], one["end"]) == (result["start"], result["end"])
        assert one["score"] == pytest.approx(result["score"], abs=1e-4)
    assert not model.training
    assert qa.answer_many([], model, tokenizer) == []


# --- building the data -------------------------------------------------------------------------------
RECORDS = [
    {"id": "a1", "source": "austen", "context": "Emma met Harriet; later Emma met Mr Knightley.",
     "qas": [{"question": "Who met Harriet?", "answer": "Emma"},
             {"question": "Who met Mr Knightley?", "answer": "Emma", "occurrence": 1}]},
    {"id": "t1", "source": "team", "context": "The lead writes the zoo module.",
     "qas": [{"question": "Who writes the zoo module?", "answer": "The lead"}]},
]


def test_build_squad_computes_answer_start_from_occurrence():
    data = qa.build_squad(RECORDS)
    assert data["version"] == "1.1"
    assert [a["title"] for a in data["data"]] == ["austen", "team"]
    questions = list(qa.iter_questions(data))
    assert [q["id"] for q in questions] == ["a1-0", "a1-1", "t1-0"]
    assert questions[0]["answer_starts"] == [0]
    assert questions[1]["answer_starts"] == [RECORDS[0]["context"].index("Emma met Mr")]
    assert qa.check_squad(data) is data


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
        qa.build_squad(with_change(change))


def test_check_squad_and_load_squad(tmp_path):
    data = qa.build_squad(RECORDS)
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data))
    assert qa.load_squad(path) == data
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    with pytest.raises(ValueError, match=r"question 'a1-0': answer 'Emma' is not at answer_start=3"):
        qa.check_squad(data)


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(["Emma", "Bath", "rain", "ball", "tea"]), min_size=1, max_size=12),
       data=st.data())
def test_answer_start_always_points_at_the_answer(words, data):
    context = " ".join(words)
    answer = data.draw(st.sampled_from(words))
    count = len(qa._positions(context, answer))
    occurrence = data.draw(st.integers(0, count - 1))
    record = {"id": "x", "source": "s", "context": context,
              "qas": [{"question": "Which?", "answer": answer, "occurrence": occurrence}]}
    (q,) = qa.iter_questions(qa.build_squad([record]))
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


# --- training features -------------------------------------------------------------------------------
def test_train_features_label_the_answer_tokens_or_cls(tokenizer):
    context = FILLER * 12 + f"Darcy lives at {ANSWER}. " + FILLER * 12
    data = qa.build_squad([{"id": "r", "source": "s", "context": context,
                            "qas": [{"question": "Where does Darcy live?", "answer": ANSWER}]}])
    features = finetune_qa.prepare_train_features(data, tokenizer, max_length=64, stride=16)
    windows = len(features["input_ids"])
    assert windows > 3 and features["input_ids"].shape == (windows, 64)
    labelled = 0
    for w in range(windows):
        s, e = int(features["start_positions"][w]), int(features["end_positions"][w])
        if s == 0:
            assert e == 0  # the answer is not wholly in this window: point at [CLS]
            continue
        labelled += 1
        span = tokenizer.decode(features["input_ids"][w, s:e + 1])
        assert span == ANSWER.lower()
    assert labelled >= 1
    assert finetune_qa.first_questions(small_dataset(), 1)["data"][0]["paragraphs"][0]["qas"][0]["id"] == "p1-0"
    assert len(list(qa.iter_questions(finetune_qa.first_questions(small_dataset(), 1)))) == 1


def test_a_few_training_steps_lower_the_loss_on_a_tiny_model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=37, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = BertForQuestionAnswering(config)
    features = finetune_qa.prepare_train_features(small_dataset(), tokenizer, max_length=32, stride=8)
    history = finetune_qa.train(model, features, epochs=15, batch_size=2, lr=3e-3, progress=False)
    assert len(history) == 15 and all(math.isfinite(x) for x in history)
    assert history[-1] < history[0]
    assert not model.training

    seen = []  # after_epoch runs once per epoch, in eval mode, with that epoch's mean loss
    again = finetune_qa.train(model, features, epochs=3, batch_size=2, lr=1e-3, progress=False,
                              after_epoch=lambda epoch, loss: seen.append((epoch, loss, model.training)))
    assert seen == [(i + 1, again[i], False) for i in range(3)] and not model.training


def test_epoch_table_lists_every_scored_epoch():
    curve = [{"epoch": 1, "loss": 3.5, "dev_exact_match": 40.0, "dev_f1": 55.25},
             {"epoch": 2, "loss": 1.25, "dev_exact_match": 50.5, "dev_f1": 66.0}]
    table = finetune_qa.epoch_table(curve)
    assert "| 1 | 3.500 | 40.0 | 55.2 |" in table and "| 2 | 1.250 | 50.5 | 66.0 |" in table
    assert finetune_qa.epoch_table([]) == ""


def test_unanswerable_questions_get_another_titles_passage_and_a_cls_label(tokenizer):
    data = qa.build_squad(RECORDS + [
        {"id": "t2", "source": "team", "context": "Tests run on one thread.",
         "qas": [{"question": "How many threads?", "answer": "one thread"}]}])
    negatives = finetune_qa.unanswerable(data, fraction=1.0, seed=0)
    questions = {q["id"]: q for q in qa.iter_questions(data)}
    asked = list(qa.iter_questions(negatives))
    assert len(asked) == 4
    for q in asked:
        original = questions[q["id"].removesuffix("-unanswerable")]
        assert q["answers"] == [] and q["question"] == original["question"]
        assert q["title"] == "unanswerable" and original["answers"][0] not in q["context"]
        assert q["context"] != original["context"]
    features = finetune_qa.prepare_train_features(negatives, tokenizer, max_length=64, stride=16)
    assert features["start_positions"].eq(0).all() and features["end_positions"].eq(0).all()
    assert finetune_qa.unanswerable(data, fraction=0.5, seed=0) == finetune_qa.unanswerable(data, 0.5, seed=0)


def test_shipped_qa_data_is_valid_and_dev_passages_are_unseen():
    train, dev = qa.load_split("train"), qa.load_split("dev")  # check_squad runs on load
    train_contexts = {q["context"] for q in qa.iter_questions(train)}
    dev_questions = list(qa.iter_questions(dev))
    assert len(dev_questions) > 50 and len(train_contexts) > 20
    assert not {q["context"] for q in dev_questions} & train_contexts
    with pytest.raises(ValueError, match="unknown QA split 'test'"):
        qa.load_split("test")


SOURCES = Path(__file__).resolve().parents[1] / "data" / "qa_source"


def _source_records(pattern: str) -> list[dict]:
    return [r for f in sorted(SOURCES.glob(pattern)) for r in json.loads(f.read_text(encoding="utf-8"))]


def test_shipped_qa_data_is_what_the_sources_build():
    # the package ships lmguide/assets/qa/*.json; a source edited without re-running
    # scripts/build_qa_data.py would silently train and score on stale data
    assert qa.build_squad(_source_records("train_*.json")) == qa.load_split("train")
    assert qa.build_squad(_source_records("dev.json")) == qa.load_split("dev")
    assert sum(1 for _ in qa.iter_questions(qa.load_split("train"))) >= 1500
    assert sum(1 for _ in qa.iter_questions(qa.load_split("dev"))) >= 200


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


def test_minilm_qa_card_names_the_shipped_data():
    # the card's scores and training time belong to the data it names; data edited without
    # retraining (python -m lmguide.finetune_qa) would leave them describing another set
    info = json.loads((zoo.WEIGHTS / "minilm-qa" / "training.json").read_text(encoding="utf-8"))
    for split in ("train", "dev"):
        assert info[f"{split}_sha256"] == zoo.sha256(finetune_qa.DATA_DIR / f"{split}.json"), split
    assert info["train_questions"] == sum(1 for _ in qa.iter_questions(qa.load_split("train")))
