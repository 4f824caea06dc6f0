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
from lmguide import qa, qa_data, zoo


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
    return qa_data.build_squad([
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


# --- training features -------------------------------------------------------------------------------
def test_train_features_label_the_answer_tokens_or_cls(tokenizer):
    context = FILLER * 12 + f"Darcy lives at {ANSWER}. " + FILLER * 12
    data = qa_data.build_squad([{"id": "r", "source": "s", "context": context,
                            "qas": [{"question": "Where does Darcy live?", "answer": ANSWER}]}])
    features = qa.prepare_train_features(data, tokenizer, max_length=64, stride=16)
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


