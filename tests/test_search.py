import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmguide import data, search


pytestmark = pytest.mark.usefixtures("one_thread")


class FakeEncoder(torch.nn.Module):
    """A stand-in encoder: each token id becomes a one-hot vector, so texts that share tokens are close."""

    def __init__(self, vocab: int = 64):
        super().__init__()
        self.vocab = vocab
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, **_):
        from transformers.modeling_outputs import BaseModelOutput

        hidden = torch.nn.functional.one_hot(input_ids % self.vocab, self.vocab).float()  # (B, T, V)
        return BaseModelOutput(last_hidden_state=hidden)


class FakeTokenizer:
    """Words -> ids by a fixed table (unknown words share id 1); pads with id 0."""

    def __init__(self):
        self.ids = {}

    def __call__(self, texts, padding=True, truncation=True, max_length=256, return_tensors="pt"):
        rows = [[2 + self.ids.setdefault(w, len(self.ids)) % 60 for w in search.bm25_tokenize(t)][:max_length] or [1]
                for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])

        class Batch(dict):
            def to(self, device):
                return self

        return Batch(input_ids=ids, attention_mask=mask)


TEXTS = [
    "Elizabeth walked to Netherfield through the muddy fields.",
    "Mr. Collins proposed marriage and was refused.",
    "The butler Baddeley was asked to hurry the tea.",
    "Sir Thomas came home from Antigua and found a theatre.",
    "Emma called on Miss Bates and heard about Jane's letter.",
    "A ball was given at Netherfield and everyone danced.",
]


# --- chunking --------------------------------------------------------------------------------
def _assert_tiles(text, spans):
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "a gap or an overlap between chunks"
    assert all(a < b for a, b in spans)


def test_chunks_cover_a_chapter_without_gaps():
    _, _, text = data.chapters("val")[0]
    spans = search.chunk_spans(text, max_words=120)
    _assert_tiles(text, spans)
    assert "".join(text[a:b] for a, b in spans) == text
    assert all(len(text[a:b].split()) <= 120 for a, b in spans)
    assert len(spans) >= len(text.split()) // 120


def test_chunks_end_at_sentence_ends_when_possible():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))  # 5 words per sentence
    chunks = search.chunk_text(text, max_words=12)
    assert all(c.endswith(".") for c in chunks)
    assert all(len(c.split()) == 10 for c in chunks)  # two whole sentences fit in 12 words


def test_abbreviations_do_not_end_a_chunk():
    text = "one two three four five six seven Mr. Collins spoke"
    assert search.chunk_text(text, max_words=9)[0].endswith("Collins")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab. !?\n"), max_size=300), st.integers(1, 20))
def test_chunk_spans_tile_any_text(text, max_words):
    spans = search.chunk_spans(text, max_words)
    if not text:
        assert spans == []
        return
    _assert_tiles(text, spans)
    assert all(len(text[a:b].split()) <= max_words for a, b in spans)


def test_chunking_rejects_bad_size():
    with pytest.raises(ValueError, match="max_words"):
        search.chunk_spans("some text", max_words=0)


def test_austen_passages_point_into_their_chapter():
    passages = search.austen_passages("val", max_words=150)
    chapters = {(b, i): t for b, i, t in data.chapters("val")}
    assert len(passages) > 100
    for p in passages[:50]:
        assert chapters[(p.book, p.chapter)][p.start:p.end].strip() == p.text
    assert passages[0].label.startswith(passages[0].book)


# --- BM25 -------------------------------------------------------------------------------------
def test_bm25_finds_an_exact_rare_word():
    index = search.BM25Index(TEXTS)
    hits = index.search("Baddeley", k=3)
    assert [h.index for h in hits] == [2]  # only one passage has the word; no zero-score filler
    assert hits[0].score > 0


def test_bm25_ranks_by_score_and_ignores_case_and_punctuation():
    index = search.BM25Index(TEXTS)
    hits = index.search("NETHERFIELD, ball!", k=5)
    assert hits[0].index == 5 and {h.index for h in hits} == {0, 5}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bm25_tokenize():
    assert search.bm25_tokenize("Mr. Darcy's 2 horses!") == ["mr", "darcy", "s", "2", "horses"]


# --- semantic search ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_index():
    return search.SemanticIndex(TEXTS, FakeEncoder(), FakeTokenizer())


def test_semantic_search_returns_k_results_sorted(fake_index):
    hits = fake_index.search("Netherfield ball danced", k=4)
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].index == 5
    assert all(h.text == TEXTS[h.index] for h in hits)


def test_semantic_search_k_larger_than_index(fake_index):
    assert len(fake_index.search("tea", k=50)) == len(TEXTS)


def test_semantic_vectors_have_length_one(fake_index):
    assert fake_index.vectors.shape[0] == len(TEXTS)
    torch.testing.assert_close(fake_index.vectors.norm(dim=1), torch.ones(len(TEXTS)))


def test_passage_rank(fake_index):
    scores = fake_index.scores("Baddeley tea butler")
    assert search.passage_rank(scores, 2) == 1
    assert search.passage_rank(torch.tensor([0.5, 0.5, 0.9]), 1) == 3  # ties keep passage order


@pytest.mark.parametrize("query, k, match", [("", 5, "query is empty"), ("   ", 5, "query is empty"),
                                             ("tea", 0, "k must be"), ("tea", 2.5, "k must be")])
def test_bad_queries_get_one_sentence(fake_index, query, k, match):
    for index in (fake_index, search.BM25Index(TEXTS)):
        with pytest.raises(ValueError, match=match):
            index.search(query, k=k)


def test_empty_index_is_refused():
    with pytest.raises(ValueError, match="no passages"):
        search.BM25Index([])


def test_format_hits():
    index = search.BM25Index(TEXTS)
    text = search.format_hits(index.search("Baddeley"), labels=[f"text {i}" for i in range(len(TEXTS))], width=20)
    assert text.startswith("  1.") and "text 2" in text and text.endswith("...")
    assert "no passage" in search.format_hits([])


def test_semantic_search_with_minilm_prefers_meaning():
    """The real encoder: a paraphrase with no shared content word finds its sentence."""
    from lmguide import zoo

    model, tokenizer = zoo.load("minilm-l6")
    index = search.SemanticIndex(TEXTS, model, tokenizer)
    query = "a man asked her to marry him but she said no"
    assert index.search(query, k=1)[0].index == 1
    assert 1 not in [h.index for h in search.BM25Index(TEXTS).search(query, k=3)]  # no shared word


def test_retrieve_then_read_copies_the_answer_from_the_best_passage(fake_index):
    """A stand-in reader that points at the word 'Antigua': the answer comes from the passage holding it."""
    from transformers import AutoTokenizer
    from transformers.modeling_outputs import QuestionAnsweringModelOutput

    from lmguide import zoo

    qa_tokenizer = AutoTokenizer.from_pretrained(zoo.path("minilm-l6"))
    target = qa_tokenizer("antigua", add_special_tokens=False)["input_ids"]

    class Reader(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            hit = (input_ids == target[0]).float() * 10.0  # (B, T): high on the answer's tokens
            return QuestionAnsweringModelOutput(start_logits=hit, end_logits=hit.clone())

    result = search.retrieve_then_read("Sir Thomas came home from where?", fake_index, Reader(), qa_tokenizer, k=3)
    assert result["answer"] == "Antigua" and result["passage"] == 3
    assert len(result["hits"]) == 3 and result["hits"][0].index == 3
    assert "Antigua" in TEXTS[result["passage"]]  # the passage index points into the index's texts


# --- measuring retrieval -------------------------------------------------------------------------
def test_recall_at_k_counts_questions_found_within_k():
    assert search.recall_at_k([1, 2, 5, 11], ks=(1, 2, 5, 10)) == {1: 0.25, 2: 0.5, 5: 0.75, 10: 0.75}
    with pytest.raises(ValueError, match="no ranks"):
        search.recall_at_k([])


def test_ranks_of_relevant_takes_the_best_ranked_relevant_passage(fake_index):
    questions = ["Baddeley tea butler", "Netherfield ball danced", "Antigua theatre"]
    relevant = [[2], [0, 5], [4]]  # the third: deliberately a passage that does not answer it
    for index in (fake_index, search.BM25Index(TEXTS)):
        ranks = search.ranks_of_relevant(index, questions, relevant)
        assert ranks[:2] == [1, 1]
        expected = [search.passage_rank(index.scores(q), r[0]) for q, r in zip(questions, relevant)]
        assert ranks[2] == expected[2] > 1
    with pytest.raises(ValueError, match="no relevant passage"):
        search.ranks_of_relevant(fake_index, ["tea"], [[]])
    with pytest.raises(ValueError, match="one list per question"):
        search.ranks_of_relevant(fake_index, ["tea", "ball"], [[1]])


def test_score_matrix_equals_one_query_at_a_time(fake_index):
    queries = ["Baddeley tea", "Netherfield ball", "Antigua"]
    for index in (fake_index, search.BM25Index(TEXTS)):
        matrix = index.score_matrix(queries)
        assert matrix.shape == (3, len(TEXTS))
        for row, q in zip(matrix, queries):
            torch.testing.assert_close(row.double(), index.scores(q).double(), atol=1e-6, rtol=0)


def _squad(records):
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": context, "qas": [{"id": f"{title}-{i}", "question": q, "answers": [{"text": a, "answer_start": s}]}
                                     for i, (q, a, s) in enumerate(qas)]}]} for title, context, qas in records]}


def test_retrieval_set_points_each_question_at_the_passage_holding_its_answer():
    book, chapter, text = data.chapters("val")[0]
    excerpt = text[2000:3500]
    word = excerpt.split()[40]
    general = " ".join(f"Sentence {i} says nothing much." for i in range(60)) + " The answer is zebra."
    dataset = _squad([(f"austen:{book}:chapter {chapter}", excerpt, [("Where?", word, excerpt.index(word))]),
                      ("team:test", general, [("Which animal?", "zebra", general.index("zebra"))])])
    rs = search.retrieval_set(dataset, split="val", max_words=150)
    assert rs.kinds == ["austen", "team"] and rs.questions == ["Where?", "Which animal?"]
    austen_count = len(search.austen_passages("val", max_words=150))
    assert len(rs.passages) > austen_count  # the general text is cut and added after the chapters
    (austen_hit,), (general_hit,) = rs.relevant
    p = rs.passages[austen_hit]
    at = text.index(excerpt) + excerpt.index(word)
    assert (p.book, p.chapter) == (book, chapter) and p.start <= at < p.end and word in p.text
    assert general_hit >= austen_count and "zebra" in rs.passages[general_hit].text
    missing = _squad([("austen:emma:chapter 0", "This sentence is in no chapter of Austen.", [("?", "no", 22)])])
    with pytest.raises(ValueError, match="not in the 'val' chapters"):
        search.retrieval_set(missing)


def test_chat_answers_are_cached_and_read_back(tmp_path, monkeypatch):
    from lmguide import zoo

    monkeypatch.setattr(zoo, "cache_dir", lambda: tmp_path)
    calls = []
    monkeypatch.setattr(search, "ask_chat_model", lambda q, p, m, t, n: calls.append(q) or f"answer to {q}")
    model = torch.nn.Linear(2, 2)
    pairs = [("Who?", "A passage."), ("Where?", "Another.")]
    first = search.chat_answers(pairs, model, None, key="fake")
    second = search.chat_answers(pairs, model, None, key="fake")
    assert first["answers"] == second["answers"] == ["answer to Who?", "answer to Where?"]
    assert (first["cached"], second["cached"]) == (False, True) and calls == ["Who?", "Where?"]
    with torch.no_grad():
        model.weight += 1  # other weights: another cache entry
    assert not search.chat_answers(pairs, model, None, key="fake")["cached"]
    assert search.chat_cache_file("fake", model, pairs, 16) != search.chat_cache_file("fake", model, pairs, 8)
