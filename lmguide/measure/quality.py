"""The one scorer per task: what the comparison table, the model cards and notebooks 05 and 07 call quality.

    causal-lm            bits per byte on the whole Austen test split (``eval.split_bits_per_byte``)
    question-answering   SQuAD F1 on the shipped dev set, always answering
    encoder              retrieval recall@5 of each dev question's passage

Whole-task scores are cached in the user cache, keyed by the model's files, so a slow model
(SmolLM2 reads the whole test split in minutes) is scored once per set of weights.
"""
from __future__ import annotations

import math

from lmguide import _util

TASKS = {"causal-lm": "Austen test bits/byte", "question-answering": "QA dev F1",
         "encoder": "retrieval recall@5"}
QUICK_MAX_CHARS = 8_000  # a quick table's part of the Austen test split
QUICK_PART = {"causal-lm": f"first {QUICK_MAX_CHARS:,} characters", "question-answering": "first 48 questions",
              "encoder": "first 48 dev questions, among the dev passages"}


def cache_file(kind: str, key: str):
    """Where a whole-task score of ``kind`` ("qa", "recall", ...) for ``key`` is stored."""
    from lmguide import zoo

    return zoo.cache_dir() / "bench" / f"{kind}-{_util.safe_key(key)}.json"


def austen_bits_per_byte(model, tokenizer, key: str | None = None, max_chars: int | None = None) -> dict:
    """Bits per byte on the whole Austen test split (cached under ``key``: a zoo name or any string naming
    the weights), or live on its first ``max_chars`` characters (a quick, uncached look)."""
    from lmguide import data, eval as lm_eval

    if max_chars is None:
        r = lm_eval.split_bits_per_byte(model, tokenizer, split="test", key=key)
        return {"value": r["bits_per_byte"], "bytes": r["bytes"], "cached": r.get("cached", False)}
    text = data.austen("test")[:max_chars]
    return {"value": lm_eval.bits_per_byte(model, tokenizer, text), "bytes": len(text.encode("utf-8")), "cached": False}


def qa_f1(model, tokenizer, limit: int | None = None) -> dict:
    """SQuAD F1 and exact match of an extractive QA model on the shipped dev set (or its first ``limit``
    questions), always answering (``null_margin=inf``): every dev question has an answer, as in SQuAD v1.1."""
    from lmguide import qa, qa_data

    dev = qa_data.first_questions(qa_data.load_split("dev"), limit)
    questions = list(qa_data.iter_questions(dev))
    found = qa.answer_many([(q["question"], q["context"]) for q in questions], model, tokenizer, null_margin=math.inf)
    scores = qa.squad_evaluate({q["id"]: f["answer"] for q, f in zip(questions, found)}, dev)
    return {"value": scores["f1"], "exact match": scores["exact_match"], "questions": len(questions)}


def retrieval_recall(model, tokenizer, k: int = 5, limit: int | None = None) -> dict:
    """Recall@k: for each QA dev question, is its passage among the k nearest of every QA passage (train + dev)?

    With a ``limit`` (a quick look) only the first ``limit`` dev questions are asked, among the dev
    split's passages (embedding the training passages too takes ~20 s on 2 cores).
    """
    from lmguide import qa_data, search

    dev = list(qa_data.iter_questions(qa_data.load_split("dev")))
    questions = dev[:limit]
    train = qa_data.iter_questions(qa_data.load_split("train")) if limit is None else []
    contexts = sorted({q["context"] for q in dev} | {q["context"] for q in train})
    where = {c: i for i, c in enumerate(contexts)}
    index = search.SemanticIndex(contexts, model, tokenizer)
    hits = [where[q["context"]] in [h.index for h in index.search(q["question"], k)] for q in questions]
    return {"value": sum(hits) / len(hits), "k": k, "questions": len(questions), "passages": len(contexts)}


def score(model, tokenizer, kind: str, key: str | None = None, quick: bool = False) -> dict:
    """The score on the task each kind suits: ``{"task", "value", "cached", ...}``.

    The whole task's score (whole Austen test split, every dev question) is stored in the user
    cache under ``key`` (``eval.weights_key(name)``; None: not stored) and read back on later runs.
    ``quick`` scores the same small part for every model of a kind instead (:data:`QUICK_PART`;
    live, marked "(part)"), so that a quick table compares like with like rather than mixing
    whole-task and part scores.
    """
    if kind not in TASKS:
        raise ValueError(f"no quality task for kind {kind!r}; known kinds: {', '.join(TASKS)}")
    if quick:
        part = {"causal-lm": lambda: austen_bits_per_byte(model, tokenizer, max_chars=QUICK_MAX_CHARS),
                "question-answering": lambda: qa_f1(model, tokenizer, limit=48),
                "encoder": lambda: retrieval_recall(model, tokenizer, limit=48)}[kind]()
        return {"task": TASKS[kind] + " (part)", **part, "cached": False}
    if kind == "causal-lm":  # eval keeps its own cache of whole-split figures, keyed by window rule too
        return {"task": TASKS[kind], **austen_bits_per_byte(model, tokenizer, key)}
    whole = {"question-answering": lambda: qa_f1(model, tokenizer),
             "encoder": lambda: retrieval_recall(model, tokenizer)}[kind]
    file = cache_file({"question-answering": "qa", "encoder": "recall"}[kind], key) if key else None
    return {"task": TASKS[kind], **_util.cached_json(file, whole)}


def card(name: str) -> dict | None:
    """What ``python -m lmguide.recipes.ladder`` stored in the model's card (``training.json``), when it
    measured these very files (the card names their sha256); None otherwise."""
    from lmguide import zoo

    info = _util.read_json(zoo.WEIGHTS / name / "training.json")
    if not info or info.get("file sha256") not in zoo.entry(name).files.values():
        return None
    return info


def card_score(name: str, quick: bool = False) -> dict | None:
    """The bits per byte stored in the model's card (:func:`card`), in :func:`score`'s form: on the whole test
    split, or with ``quick`` on :data:`QUICK_PART` (what a quick table scores every other model on)."""
    info = card(name)
    part = "test split part" if quick else "test split"
    if not info or part not in info:
        return None
    m = info["machine"]
    return {"task": TASKS["causal-lm"] + (" (part)" if quick else ""), "value": info[part]["bits per byte"],
            "bytes": info[part]["bytes"], "cached": f"model card ({m['cpu']}, {info['measured']})"}
