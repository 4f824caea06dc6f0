"""Search a pile of passages: by meaning (sentence embeddings) or by words (BM25).

Long texts are first cut into passages of about ``max_words`` words, ending at a
sentence end where one is near, so that a passage fits an encoder's window and reads
as a whole::

    passages = austen_passages("val")                      # Passage(book, chapter, start, end, text)
    semantic = SemanticIndex([p.text for p in passages], model, tokenizer)   # MiniLM vectors
    keyword = BM25Index([p.text for p in passages])        # rank_bm25's BM25Okapi
    semantic.search("a proposal of marriage is refused", k=5)   # [Hit(index, score, text), ...]

A semantic index embeds every passage once (the slow part) and answers a query with one
embedding and one matrix product. BM25 counts shared words, weighted by how rare each
word is, so it finds exact names and rare words but not paraphrases.
"""
from __future__ import annotations

import dataclasses
import re

import torch

from lmguide import _util

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)]*$")  # a word that ends a sentence: "home.", "said!\"", "no?'"
_ABBREVIATION = re.compile(r"^(Mr|Mrs|Dr|St|Col|Capt|Rev|Esq)\.$")  # "Mr." ends no sentence
_BM25_TOKEN = re.compile(r"[a-z0-9]+")


@dataclasses.dataclass(frozen=True)
class Passage:
    """A piece of a chapter: ``text`` is ``chapter_text[start:end]`` without its outer spaces."""

    book: str
    chapter: int
    start: int
    end: int
    text: str

    @property
    def label(self) -> str:
        """A short name such as ``emma ch18 @1234``."""
        return f"{self.book} ch{self.chapter} @{self.start}"


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: the passage's position in the index, its score, its text."""

    index: int
    score: float
    text: str


def chunk_spans(text: str, max_words: int = 150) -> list[tuple[int, int]]:
    """Cut ``text`` into character spans of at most ``max_words`` words.

    The spans tile the text: the first starts at 0, each starts where the previous one
    ends, the last ends at ``len(text)`` (spaces between chunks go with the earlier chunk).
    A chunk ends after the last sentence-ending word (``.``, ``!``, ``?``) in the second
    half of its window, or after ``max_words`` words when there is none.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1 (got {max_words})")
    words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
    if not words:
        return [(0, len(text))] if text else []
    cuts = []  # index of the first word of each chunk after the first
    first = 0
    while len(words) - first > max_words:
        last = first + max_words - 1  # the window's last word
        for i in range(last, first + max_words // 2 - 1, -1):
            if _SENTENCE_END.search(words[i][2]) and not _ABBREVIATION.match(words[i][2]):
                last = i
                break
        first = last + 1
        cuts.append(first)
    starts = [0] + [words[i][0] for i in cuts]
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends))


def chunk_text(text: str, max_words: int = 150) -> list[str]:
    """The chunks of ``text`` (see :func:`chunk_spans`), each without outer spaces."""
    return [text[a:b].strip() for a, b in chunk_spans(text, max_words)]


def austen_passages(split: str = "val", max_words: int = 150, books=None) -> list[Passage]:
    """Every chapter of an Austen split cut into passages of at most ``max_words`` words."""
    from lmguide import data

    passages = []
    for book, chapter, text in data.chapters(split, books):
        for a, b in chunk_spans(text, max_words):
            if text[a:b].strip():
                passages.append(Passage(book, chapter, a, b, text[a:b].strip()))
    return passages


def _check_query(query: str, k: int, size: int) -> None:
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"the query is empty ({query!r}); search for some words, e.g. 'a ball at Netherfield'")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive whole number (got {k!r}); ask for e.g. k=5 results")
    if size == 0:
        raise ValueError("the index is empty; build it from at least one passage")


def _top_k(scores: torch.Tensor, k: int, texts: list[str]) -> list[Hit]:
    k = min(k, len(texts))
    # stable sort: equal scores keep passage order, so results are reproducible
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    return [Hit(int(i), float(scores[i]), texts[int(i)]) for i in order]


class SemanticIndex:
    """Passages embedded once with a sentence encoder; a query is answered by cosine similarity."""

    def __init__(self, texts: list[str], model, tokenizer, batch_size: int = 32, max_length: int = 256):
        from lmguide.embeddings import embed

        self.texts = list(texts)
        if not self.texts:
            raise ValueError("no passages to index; pass a non-empty list of texts")
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.vectors = embed(self.texts, model, tokenizer, batch_size=batch_size, max_length=max_length)  # (N, H), length 1

    def __len__(self) -> int:
        return len(self.texts)

    def scores(self, query: str) -> torch.Tensor:
        """Cosine similarity of ``query`` with every passage: (N,)."""
        from lmguide.embeddings import embed

        _check_query(query, 1, len(self))
        q = embed([query], self.model, self.tokenizer, max_length=self.max_length)  # (1, H), length 1
        return (self.vectors @ q[0]).float()                                          # (N,)

    def score_matrix(self, queries: list[str]) -> torch.Tensor:
        """Cosine similarity of every query with every passage: (Q, N), the queries embedded in batches."""
        from lmguide.embeddings import embed

        for query in queries:
            _check_query(query, 1, len(self))
        q = embed(list(queries), self.model, self.tokenizer, max_length=self.max_length)  # (Q, H), length 1
        return (q @ self.vectors.T).float()                                                # (Q, N)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` passages closest in meaning to ``query``, best first."""
        _check_query(query, k, len(self))
        return _top_k(self.scores(query), k, self.texts)


def bm25_tokenize(text: str) -> list[str]:
    """Lowercase words and numbers, punctuation dropped: "Mr. Darcy's" -> ["mr", "darcy", "s"]."""
    return _BM25_TOKEN.findall(text.lower())


class BM25Index:
    """Keyword search with Okapi BM25 (``rank_bm25.BM25Okapi``) over :func:`bm25_tokenize` words."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75):
        from rank_bm25 import BM25Okapi

        self.texts = list(texts)
        if not self.texts:
            raise ValueError("no passages to index; pass a non-empty list of texts")
        self.bm25 = BM25Okapi([bm25_tokenize(t) for t in self.texts], k1=k1, b=b)

    def __len__(self) -> int:
        return len(self.texts)

    def scores(self, query: str) -> torch.Tensor:
        """BM25 score of every passage for ``query``: (N,); 0 when no query word occurs."""
        _check_query(query, 1, len(self))
        return torch.as_tensor(self.bm25.get_scores(bm25_tokenize(query)), dtype=torch.float64)

    def score_matrix(self, queries: list[str]) -> torch.Tensor:
        """BM25 score of every passage for every query: (Q, N)."""
        return torch.stack([self.scores(query) for query in queries])

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` passages with the highest BM25 score for ``query``, best first.

        Passages that share no word with the query (score 0) are never returned, so
        fewer than ``k`` hits come back when fewer passages match.
        """
        _check_query(query, k, len(self))
        return [hit for hit in _top_k(self.scores(query), k, self.texts) if hit.score > 0]


def passage_rank(scores: torch.Tensor, index: int) -> int:
    """The 1-based rank passage ``index`` gets under ``scores`` (ties broken by passage order)."""
    order = torch.sort(torch.as_tensor(scores), descending=True, stable=True).indices
    return int((order == index).nonzero()[0, 0]) + 1


def format_hits(hits: list[Hit], labels: list[str] | None = None, width: int = 70) -> str:
    """Search results as aligned text: rank, score, label (when given) and the passage's start."""
    if not hits:
        return "  (no passage matches)"
    lines = []
    for rank, hit in enumerate(hits, 1):
        label = f"{labels[hit.index]:<24s} " if labels is not None else f"#{hit.index:<4d} "
        text = " ".join(hit.text.split())
        text = text if len(text) <= width else text[:width - 3] + "..."
        lines.append(f"  {rank}. {hit.score:6.3f}  {label}{text}")
    return "\n".join(lines)


def retrieve_then_read(question: str, index, qa_model, qa_tokenizer, k: int = 3, **qa_options) -> dict:
    """Open-book QA: find the ``k`` passages closest to ``question``, let an extractive reader
    answer from each, keep the span with the highest start + end score.

    Returns ``{"answer", "score", "passage"}`` (``passage``: the index of the passage the
    answer was copied from) plus ``"hits"``, the retrieved passages. ``qa_options`` go to
    :func:`lmguide.qa.answer_many` (default here: ``null_margin=inf``, always answer).
    """
    import math

    from lmguide import qa

    hits = index.search(question, k)
    if not hits:
        raise ValueError(f"no passage matches {question!r}; try other words or a semantic index")
    qa_options.setdefault("null_margin", math.inf)
    answers = qa.answer_many([(question, h.text) for h in hits], qa_model, qa_tokenizer, **qa_options)
    best = max(range(len(hits)), key=lambda i: answers[i]["score"])  # first of equal scores wins
    return {"answer": answers[best]["answer"], "score": answers[best]["score"],
            "passage": hits[best].index, "hits": hits}


# ----------------------------------------------------------------- measuring retrieval
@dataclasses.dataclass(frozen=True)
class RetrievalSet:
    """Passages to search and questions to search them with; ``relevant[i]`` are the indices of
    the passages that hold question ``i``'s gold answer."""

    passages: list[Passage]
    questions: list[str]
    relevant: list[list[int]]
    kinds: list[str]  # per question: the first part of its SQuAD title ("austen", "team")


def retrieval_set(dataset: dict, split: str = "val", max_words: int = 150) -> RetrievalSet:
    """A retrieval benchmark from a SQuAD-format set whose Austen contexts are excerpts of ``split``.

    The collection is every chapter of the Austen ``split`` cut as :func:`austen_passages` cuts
    it, plus every other context of ``dataset`` cut by the same rule. A question's relevant
    passages are those that overlap its first gold answer where it stands in the text (so an
    answer cut by a passage border counts in both halves). Austen contexts are located in their
    chapter by exact text; one that is not found raises ``ValueError``.
    """
    from lmguide import data
    from lmguide.qa_data import iter_questions

    chapters = {(book, chapter): text for book, chapter, text in data.chapters(split)}
    passages = austen_passages(split, max_words)
    by_chapter: dict[tuple[str, int], list[int]] = {}
    for i, p in enumerate(passages):
        by_chapter.setdefault((p.book, p.chapter), []).append(i)
    other: dict[str, tuple[str, int]] = {}  # a non-Austen context -> its key in by_chapter
    questions, relevant, kinds = [], [], []
    for q in iter_questions(dataset):
        context, answer, start = q["context"], q["answers"][0], q["answer_starts"][0]
        kind = q["title"].split(":")[0]
        located = [key for key, text in chapters.items() if context in text] if kind == "austen" else []
        if kind == "austen":
            if not located:
                raise ValueError(f"the context of question {q['id']!r} is not in the {split!r} chapters; "
                                 f"build the set from the split its Austen passages come from")
            key = located[0]
            offset = chapters[key].index(context)
        else:
            if context not in other:
                key = (q["title"], len(other))
                other[context] = key
                by_chapter[key] = []
                for a, b in chunk_spans(context, max_words):
                    if context[a:b].strip():
                        by_chapter[key].append(len(passages))
                        passages.append(Passage(q["title"], key[1], a, b, context[a:b].strip()))
            key, offset = other[context], 0
        first, last = offset + start, offset + start + len(answer)
        hits = [i for i in by_chapter[key] if passages[i].start < last and first < passages[i].end]
        questions.append(q["question"])
        relevant.append(hits)
        kinds.append(kind)
    return RetrievalSet(passages, questions, relevant, kinds)


def ranks_of_relevant(index, questions: list[str], relevant: list[list[int]]) -> list[int]:
    """For each question, the best (smallest) 1-based rank ``index`` gives one of its relevant passages."""
    if len(questions) != len(relevant):
        raise ValueError(f"{len(questions)} questions but {len(relevant)} lists of relevant passages; "
                         "give one list per question")
    for question, wanted in zip(questions, relevant):
        if not wanted:
            raise ValueError(f"no relevant passage for {question!r}; every question needs at least one")
    scores = index.score_matrix(questions)  # (Q, N)
    ranks = []
    for row, wanted in zip(scores, relevant):
        order = torch.sort(row, descending=True, stable=True).indices  # ties broken by passage order
        position = torch.isin(order, torch.as_tensor(wanted)).nonzero()  # ranks (from 0) of the relevant ones
        ranks.append(int(position[0, 0]) + 1)
    return ranks


def recall_at_k(ranks: list[int], ks=(1, 3, 5, 10)) -> dict[int, float]:
    """Recall@k: the share of questions whose answer passage is among the top k, for each k."""
    if not ranks:
        raise ValueError("no ranks given; measure at least one question")
    return {k: sum(r <= k for r in ranks) / len(ranks) for k in ks}


# ------------------------------------------------------------ asking a chat LLM instead
CHAT_PROMPT = "{passage}\n\nQuestion: {question}\nAnswer with a short phrase copied from the text above."


def chat_prompt(question: str, passage: str, tokenizer) -> str:
    """The open-book prompt for a chat model: the passage, the question, a request for a short
    answer, wrapped in the model's own chat template (as the chat model was trained to read it)."""
    messages = [{"role": "user", "content": CHAT_PROMPT.format(passage=passage, question=question)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def ask_chat_model(question: str, passage: str, model, tokenizer, max_new_tokens: int = 16) -> str:
    """A chat LLM's greedy answer to ``question`` about ``passage`` (at most ``max_new_tokens`` tokens)."""
    from lmguide.sampling import generate_text

    prompt = chat_prompt(question, passage, tokenizer)
    return generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, strategy="greedy").strip()


def weights_digest(model) -> str:
    """16 hex digits that change when the model's weights change (a strided sample of
    every parameter, hashed): a cache key that does not depend on where the files came from."""
    import hashlib

    digest = hashlib.sha256(type(model).__name__.encode())
    for name, p in model.named_parameters():
        sample = p.detach().flatten()[:: max(1, p.numel() // 512)].float().cpu().numpy()
        digest.update(name.encode() + sample.tobytes())
    return digest.hexdigest()[:16]


def chat_cache_file(key: str, model, pairs: list[tuple[str, str]], max_new_tokens: int):
    """Where :func:`chat_answers` keeps the answers for this model, prompt, length and questions."""
    import hashlib
    import json

    from lmguide import zoo

    pairs = [list(p) for p in pairs]
    rule = hashlib.sha256(json.dumps([key, weights_digest(model), CHAT_PROMPT, max_new_tokens,
                                      pairs]).encode()).hexdigest()[:16]
    return zoo.cache_dir() / "answers" / f"{_util.safe_key(key)}-{rule}.json"


def chat_answers(pairs: list[tuple[str, str]], model, tokenizer, key: str | None = None,
                 max_new_tokens: int = 16) -> dict:
    """:func:`ask_chat_model` on every (question, passage) pair, cached in the user cache.

    Returns ``{"answers", "seconds", "cached"}``: ``seconds`` is each answer's generation time
    when it was made (the first is a warm-up run and includes one-off costs). With a ``key``
    (a name for the model, e.g. its zoo name; the weights' own digest is added) the
    answers are stored and read back next time: a 135 M LLM takes a second or more per answer
    on a laptop CPU.
    """
    import time

    def answer_all():
        answers, seconds = [], []
        for question, passage in pairs:
            began = time.perf_counter()
            answers.append(ask_chat_model(question, passage, model, tokenizer, max_new_tokens))
            seconds.append(time.perf_counter() - began)
        return {"answers": answers, "seconds": seconds}

    cache_file = chat_cache_file(key, model, pairs, max_new_tokens) if key is not None else None
    return _util.cached_json(cache_file, answer_all)
