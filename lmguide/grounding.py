"""Grounded answers: a small retriever feeding a large generator (notebook 09).

    grounded = grounding.Grounded(engine)                 # minilm-l6 over grounding.collection()
    grounded.answer("What is the capital of Australia?")  # answer, cited passages, top score, abstained, seconds
    grounding.score(answer, question)                     # right / confident on a made-up entity / abstained

The collection is notebook 08's entity facts (one short passage per real entity) and the Quillo
support manual (notebook 07's router passages), so a question can retrieve a passage that looks
close and does not answer it. The chat model gets the two closest passages, numbered, and is told
to answer in one sentence only from them, end it with the passage it used, "(passage 2)", and say "I don't know" when they do
not answer. Nothing filters by retrieval score: the model decides, and the notebook shows what a
score threshold would have done. The scorer is notebook 08's (:func:`lmguide.probes.mentions`,
:func:`lmguide.probes.abstains`), the same for closed-book and grounded answers.
"""
from __future__ import annotations

import re
import time

SYSTEM_PROMPT = ("Answer the question in one short sentence, using only the passages given, and end the sentence "
                 "with the passage you used, for example: The bridge is 40 metres long (passage 2). "
                 "If the passages do not answer the question, reply exactly: I don't know.")
MAX_NEW_TOKENS = 32
K = 2


def collection() -> list[dict]:
    """``{"id", "text", "source"}`` per passage: the real entities' facts, then the support manual."""
    from lmguide import probes, router

    facts = [{"id": q["id"], "text": q["fact"], "source": "entity fact"} for q in probes.entity_questions() if q["real"]]
    manual = [{"id": f"quillo-{p['id']}", "text": p["text"], "source": "support manual"} for p in router.load_passages()]
    return facts + manual


def cited(answer: str) -> list[int]:
    """The passage numbers an answer cites, as written: "(passage 2)" or "[2]" -> [2]."""
    return [int(n) for n in re.findall(r"(?:passage\s+|\[)(\d+)", answer, flags=re.IGNORECASE)]


class Grounded:
    """A chat model (an :class:`lmguide.engines.Engine`) answering from the ``k`` passages ``minilm-l6`` finds."""

    def __init__(self, engine, passages: list[dict] | None = None, k: int = K, encoder=None,
                 max_new_tokens: int = MAX_NEW_TOKENS):
        from lmguide import load, search

        self.engine, self.k, self.max_new_tokens = engine, k, max_new_tokens
        self.passages = passages or collection()
        model, tokenizer = encoder or load("minilm-l6")
        self.index = search.SemanticIndex([p["text"] for p in self.passages], model, tokenizer)

    def messages(self, question: str, hits) -> list[dict]:
        numbered = "\n\n".join(f"Passage {i + 1}: {self.passages[h.index]['text']}" for i, h in enumerate(hits))
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"{numbered}\n\nQuestion: {question}"}]

    def answer(self, question: str) -> dict:
        """``{"answer", "passages", "scores", "cited", "seconds"}``: the passages as ids, best first."""
        start = time.perf_counter()
        hits = self.index.search(question, self.k)
        ids = self.engine.chat_ids(self.messages(question, hits))
        tokens = self.engine.answer_ids(ids, self.max_new_tokens)
        text = self.engine.decode(tokens).strip()
        return {"answer": text, "passages": [self.passages[h.index]["id"] for h in hits],
                "scores": [h.score for h in hits], "cited": cited(text), "seconds": time.perf_counter() - start}


def score(answer: str, question: dict) -> dict:
    """Notebook 08's rule for one answer: ``right`` (a real entity's accepted answer mentioned and no refusal),
    ``confident fabrication`` (a made-up entity answered without declining) and ``abstained``."""
    from lmguide import probes

    abstained = probes.abstains(answer)
    return {"abstained": abstained,
            "right": bool(question["real"]) and not abstained and probes.mentions(answer, question["answers"]),
            "confident fabrication": not question["real"] and not abstained}


def closed_book_support(name: str, threads: int = 2) -> dict:
    """Notebook 07's support questions answered by zoo chat model ``name`` from its weights alone (no passages,
    no worked example, the router's system prompt without "using only the documentation given"), greedy, the
    reply's first line: the closed-book side of the router's stored, grounded answers (a recipe's job)."""
    from lmguide import engines, router

    engine = engines.open_default(name, threads)
    system = router.SYSTEM_PROMPT.split(", using only")[0] + "."
    answers = {}
    for q in router.load_questions():
        start = time.perf_counter()
        ids = engine.chat_ids([{"role": "system", "content": system}, {"role": "user", "content": q["question"]}])
        reply = engine.decode(engine.answer_ids(ids, router.MAX_NEW_TOKENS)).strip()
        answers[q["id"]] = {"answer": router.extract_answer(reply), "reply": reply, "seconds": time.perf_counter() - start}
    return {"engine": engine.kind, "system prompt": system, "answers": answers}


def grounded_answers(name: str, threads: int = 2) -> dict:
    """Every entity question answered grounded by zoo chat model ``name`` in its default engine (a recipe's job)."""
    from lmguide import engines, probes

    engine = engines.open_default(name, threads)
    grounded = Grounded(engine)
    answers = {q["id"]: grounded.answer(q["question"]) for q in probes.entity_questions()}
    return {"engine": engine.kind, "k": grounded.k, "max new tokens": grounded.max_new_tokens, "answers": answers}
