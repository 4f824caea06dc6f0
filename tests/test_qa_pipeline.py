"""The question-answering pipeline lmguide registers for transformers 5."""
import math
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, pipeline

from lmguide import qa, qa_pipeline, zoo

pytestmark = pytest.mark.usefixtures("one_thread")

CONTEXT = ("The next day opened a new scene at Longbourn. Mr. Collins made his declaration in form. "
           "Soon after breakfast he asked Mrs. Bennet for a private audience with her daughter Elizabeth.")
QUESTIONS = ["Who made a declaration?", "Where did the scene open?", "Whom did he ask?", "When did he ask?"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A small random BERT QA model, saved in float16 as minilm-qa is, with MiniLM's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(zoo.path("minilm-l6"))
    torch.manual_seed(7)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    model = BertForQuestionAnswering(config).eval()
    folder = tmp_path_factory.mktemp("tiny-qa")
    with zoo.progress_bars(False):
        model.half().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reader(tiny_dir):
    qa_pipeline.register()
    model, tokenizer = zoo.load(tiny_dir)  # the one loader: float32, whatever the file's dtype
    return pipeline("question-answering", model=model, tokenizer=tokenizer)


def test_plain_transformers_5_has_no_question_answering_task(tiny_dir):
    # in a fresh process (registering is process-wide): this is why lmguide registers one
    code = ("import sys\nfrom transformers import pipeline\n"
            "try:\n    pipeline('question-answering', model=sys.argv[1])\nexcept KeyError as e:\n"
            "    print('KeyError', 'question-answering' in str(e))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_dir)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "KeyError True", out.stderr[-500:]


def test_register_twice_keeps_one_task(reader):
    qa_pipeline.register()
    from transformers.pipelines import PIPELINE_REGISTRY
    assert PIPELINE_REGISTRY.supported_tasks["question-answering"]["impl"] is qa_pipeline.ExtractiveQAPipeline
    assert isinstance(reader, qa_pipeline.ExtractiveQAPipeline)


def test_answer_is_the_context_slice_and_a_probability(reader):
    for question in QUESTIONS:
        r = reader(question=question, context=CONTEXT)
        assert set(r) == {"score", "start", "end", "answer"}
        assert 0 < r["score"] <= 1 and 0 <= r["start"] < r["end"] <= len(CONTEXT)
        assert r["answer"] == CONTEXT[r["start"]:r["end"]]


def test_agrees_with_lmguide_qa_on_one_window(reader, tiny_dir):
    model, tokenizer = zoo.load(tiny_dir)
    ours = qa.answer_many([(q, CONTEXT) for q in QUESTIONS], model, tokenizer, max_answer_len=15,
                          null_margin=math.inf, top_n=None)
    theirs = reader(question=QUESTIONS, context=[CONTEXT] * len(QUESTIONS), max_answer_len=15)
    assert [(r["start"], r["end"]) for r in theirs] == [(r["start"], r["end"]) for r in ours]


def test_call_forms_give_the_same_answer(reader):
    by_keyword = reader(question=QUESTIONS[0], context=CONTEXT)
    assert reader({"question": QUESTIONS[0], "context": CONTEXT}) == by_keyword
    assert reader([{"question": QUESTIONS[0], "context": CONTEXT}]) == [by_keyword]


def test_top_k_is_sorted_distinct_and_starts_with_the_best(reader):
    best = reader(question=QUESTIONS[1], context=CONTEXT)
    top = reader(question=QUESTIONS[1], context=CONTEXT, top_k=5)
    assert len(top) == 5 and top[0] == best
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)
    assert len({(r["start"], r["end"]) for r in top}) == 5


def test_max_answer_len_bounds_the_span(reader, tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    for question in QUESTIONS:
        r = reader(question=question, context=CONTEXT, max_answer_len=2)
        assert len(tokenizer(r["answer"], add_special_tokens=False)["input_ids"]) <= 2


def test_impossible_answer_only_when_allowed(reader):
    r = reader(question=QUESTIONS[0], context=CONTEXT, handle_impossible_answer=True, top_k=50)
    assert any(a["answer"] == "" and a["start"] == a["end"] == 0 for a in r)
    r = reader(question=QUESTIONS[0], context=CONTEXT, top_k=50)
    assert all(a["answer"] for a in r)


def test_long_context_is_read_in_windows(reader):
    needle = "The butler was called Baddeley."
    context = "She walked on through the wet lanes and said nothing. " * 80 + needle
    r = reader(question="What was the butler called?", context=context, max_seq_len=128, doc_stride=32)
    assert r["answer"] == context[r["start"]:r["end"]] and r["answer"]
    # every window adds its candidates, so some spans lie beyond the first window (~500 characters)
    top = reader(question="What was the butler called?", context=context, max_seq_len=128, doc_stride=32, top_k=200)
    assert max(a["end"] for a in top) > 1000


@pytest.mark.parametrize("kwargs, message", [
    ({"question": "", "context": CONTEXT}, "the question is empty"),
    ({"question": "Who?", "context": "   "}, "the context is empty"),
    ({"question": ["Who?"], "context": CONTEXT}, "two lists of the same length"),
    ({"question": "Who?", "context": CONTEXT, "top_k": 0}, "top_k must be a whole number >= 1"),
    ({"question": "Who? " * 300, "context": CONTEXT}, "shorten the question"),
])
def test_bad_input_gets_one_sentence(reader, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        reader(**kwargs)
    assert "\n" not in str(err.value)


def test_bad_input_forms(reader):
    with pytest.raises(ValueError, match="keys 'question' and 'context'"):
        reader({"q": "Who?", "context": CONTEXT})
    with pytest.raises(ValueError, match="nothing to answer"):
        reader()
    with pytest.raises(TypeError, match="unknown option"):
        reader(question="Who?", context=CONTEXT, temperature=0.5)
