"""The QA data as files: SQuAD v1.1-format JSON built from hand-written records (plumbing).

    qa_data.load_split("dev")                     # the shipped dev set (a SQuAD dict)
    for q in qa_data.iter_questions(dataset): ...  # one flat dict per question
    qa_data.build_squad(records)                  # what scripts/build_qa_data.py writes

The lesson code that reads these files (span decoding, SQuAD metrics, training labels) is in
``lmguide.qa``.
"""
from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "assets" / "qa"


def iter_questions(dataset: dict):
    """Yield one dict per question of a SQuAD dict: id, title, question, context, answers, answer_starts."""
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield {"id": qa["id"], "title": article.get("title", ""), "question": qa["question"],
                       "context": paragraph["context"], "answers": [a["text"] for a in qa["answers"]],
                       "answer_starts": [a["answer_start"] for a in qa["answers"]]}


def first_questions(dataset: dict, n: int | None) -> dict:
    """A copy of a SQuAD dict keeping only its first ``n`` questions (all when ``n`` is None)."""
    if n is None:
        return dataset
    kept, data = 0, []
    for article in dataset["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][:max(0, n - kept)]
            kept += len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            data.append({**article, "paragraphs": paragraphs})
    return {**dataset, "data": data}


def unanswerable(dataset: dict, fraction: float, seed: int = 1234) -> dict:
    """Questions asked of the wrong passage, with no answer (as in SQuAD 2), to train the null score.

    A ``fraction`` of the questions (picked with ``seed``) is paired with a passage from
    another title that does not contain the answer text; its ``answers`` list is empty, so
    ``lmguide.qa.prepare_train_features`` labels it [CLS]. Without these, [CLS] is never a target when
    every passage fits in one window, and the no-answer rule in ``lmguide.qa`` has nothing to read.
    """
    rng = random.Random(seed)
    questions = list(iter_questions(dataset))
    passages = list(dict.fromkeys((q["title"], q["context"]) for q in questions))  # unique, in order
    paragraphs = []
    for q in rng.sample(questions, round(fraction * len(questions))):
        others = [c for title, c in passages if title != q["title"] and q["answers"][0] not in c]
        if others:
            paragraphs.append({"context": rng.choice(others), "qas": [
                {"id": f"{q['id']}-unanswerable", "question": q["question"], "answers": []}]})
    return {"version": "1.1-unanswerable", "data": [{"title": "unanswerable", "paragraphs": paragraphs}]}


def _positions(text: str, part: str) -> list[int]:
    """Every index where ``part`` starts in ``text`` (overlaps included)."""
    found, i = [], text.find(part)
    while i != -1:
        found.append(i)
        i = text.find(part, i + 1)
    return found


def build_squad(records: list[dict]) -> dict:
    """Turn hand-written records into a SQuAD v1.1 dict (one article per ``source``).

    A record is ``{"id", "source", "context", "qas": [{"question", "answer", "occurrence"?}]}``;
    ``answer`` must be copied exactly from the context and ``occurrence`` (from 0) says which
    copy is meant. Question ids are ``"{record id}-{question index}"``.
    """
    articles: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for n, record in enumerate(records):
        label = f"record {record.get('id', f'#{n}')!r}"
        for key in ("id", "source", "context", "qas"):
            if key not in record:
                raise ValueError(f"{label} has no {key!r} field; every record needs id, source, context and qas")
        if record["id"] in seen:
            raise ValueError(f"{label} appears twice; give every record its own id")
        seen.add(record["id"])
        context = record["context"]
        if not isinstance(context, str) or not context.strip():
            raise ValueError(f"{label} has an empty context; paste the passage into 'context'")
        if not record["qas"]:
            raise ValueError(f"{label} has no questions; add at least one to 'qas' or drop the record")
        qas = []
        for q, item in enumerate(record["qas"]):
            where = f"{label} question {q}"
            question, answer = item.get("question", ""), item.get("answer", "")
            occurrence = item.get("occurrence", 0)
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f"{where} has an empty question; write the question in 'question'")
            if not isinstance(answer, str) or not answer or answer != answer.strip():
                raise ValueError(f"{where}: answer {answer!r} is empty or has spaces at its ends; "
                                 f"copy the answer text exactly, without surrounding spaces")
            starts = _positions(context, answer)
            if not starts:
                raise ValueError(f"{where}: answer {answer!r} is not in its context; copy it exactly "
                                 f"from the context (same spelling, case and punctuation)")
            if not isinstance(occurrence, int) or not 0 <= occurrence < len(starts):
                raise ValueError(f"{where}: occurrence={occurrence!r} but {answer!r} occurs {len(starts)} "
                                 f"time(s) in the context; use 0 to {len(starts) - 1} (counted from 0)")
            qas.append({"id": f"{record['id']}-{q}", "question": question,
                        "answers": [{"text": answer, "answer_start": starts[occurrence]}]})
        articles.setdefault(record["source"], []).append({"context": context, "qas": qas})
    return {"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}
                                       for title, paragraphs in articles.items()]}


def check_squad(dataset: dict) -> dict:
    """Raise a ValueError naming the first question whose answer is not at its answer_start."""
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise ValueError("a SQuAD dataset is a dict with a 'data' list; build one with build_squad(records)")
    ids = set()
    for q in iter_questions(dataset):
        if q["id"] in ids:
            raise ValueError(f"question id {q['id']!r} appears twice; ids must be unique")
        ids.add(q["id"])
        for text, start in zip(q["answers"], q["answer_starts"]):
            if q["context"][start:start + len(text)] != text:
                raise ValueError(f"question {q['id']!r}: answer {text!r} is not at answer_start={start}; "
                                 f"rebuild the file with scripts/build_qa_data.py")
    return dataset


def load_squad(path: str | Path) -> dict:
    """Read and check a SQuAD v1.1 JSON file."""
    return check_squad(json.loads(Path(path).read_text(encoding="utf-8")))


def load_split(split: str) -> dict:
    """The shipped QA data: ``"train"`` or ``"dev"`` (built by scripts/build_qa_data.py)."""
    if split not in ("train", "dev"):
        raise ValueError(f"unknown QA split {split!r}; use 'train' or 'dev'")
    raw = resources.files("lmguide.assets").joinpath("qa", f"{split}.json").read_text(encoding="utf-8")
    return check_squad(json.loads(raw))
