"""The article's customer-service scenario, made concrete: send easy questions to an SLM, the rest to an LLM.

The SLM side is open-book extractive QA: ``minilm-l6`` finds the support passages closest to
the question and ``minilm-qa`` copies an answer span out of them. Its confidence is the margin
between the best span's score and the "no answer" score (see :mod:`lmguide.qa`); when that
margin is below a threshold the SLM abstains and the question goes to the generative model
(``smollm2-135m``), which gets the same retrieved passages in its prompt and writes an answer.

Both sides answer every question once (:func:`answer_all`); a router with any threshold is
then a choice per question, so its accuracy, mean latency and share routed follow without
re-running a model (:func:`route`), and so do the baselines "always SLM" and "always LLM".
The threshold is picked on the ``tune`` questions and reported on ``test``.

The question set (``lmguide/assets/router/``, shipped in the package) is about a made-up product,
the Quillo Q2 thermostat; its data card (README.md there) says how it was written.
"""
from __future__ import annotations

import json
import math
import time
from importlib import resources

SYSTEM_PROMPT = ("You are the support assistant for the Quillo Q2 smart thermostat. Answer the customer's "
                 "question in one short sentence, using only the documentation given.")


def _read(name: str):
    """A JSON file from ``lmguide/assets/router`` (see the data card README.md there)."""
    return json.loads(resources.files("lmguide.assets").joinpath("router", name).read_text(encoding="utf-8"))


def load_passages() -> list[dict]:
    """The support documentation: ``{"id", "title", "text"}`` per passage."""
    return _read("passages.json")


def load_questions(split: str | None = None, kind: str | None = None) -> list[dict]:
    """Questions with gold answers: ``{"id", "question", "answers", "passage", "kind", "split"}``.

    ``split`` is ``"tune"`` (for choosing the threshold), ``"test"`` (for reporting) or None (all);
    ``kind`` is ``"easy"`` (the answer is a span of one passage) or ``"hard"`` (it needs reasoning).
    """
    if split not in (None, "tune", "test"):
        raise ValueError(f"split must be 'tune', 'test' or None (got {split!r})")
    if kind not in (None, "easy", "hard"):
        raise ValueError(f"kind must be 'easy', 'hard' or None (got {kind!r})")
    return [q for q in _read("questions.json")
            if (split is None or q["split"] == split) and (kind is None or q["kind"] == kind)]


def stratified(questions: list[dict], per_group: int) -> list[dict]:
    """The first ``per_group`` questions of each (split, kind) group, in file order: a small set for a
    quick run that still has easy and hard questions to tune the threshold on and to test it on."""
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1 (got {per_group})")
    taken, out = {}, []
    for q in questions:
        group = (q["split"], q["kind"])
        if taken.get(group, 0) < per_group:
            taken[group] = taken.get(group, 0) + 1
            out.append(q)
    return out


# ---------------------------------------------------------------------------- scoring
def _words(text: str) -> list[str]:
    from lmguide.qa import normalize_answer

    return normalize_answer(text).split()


def is_correct(prediction: str, answers: list[str]) -> bool:
    """Whether ``prediction`` gives one of the gold ``answers``.

    A gold answer counts when its normalised words appear, in order and together, in the
    prediction (so a generated sentence around the right span counts), except that a bare
    "yes" or "no" must be the prediction's first word (a long answer nearly always contains a
    "no" somewhere). An empty prediction (an abstention) is never correct.
    """
    words = _words(prediction)
    if not words:
        return False
    for answer in answers:
        gold = _words(answer)
        if not gold:
            continue
        if gold in (["yes"], ["no"]):
            if words[0] == gold[0]:
                return True
        elif any(words[i:i + len(gold)] == gold for i in range(len(words) - len(gold) + 1)):
            return True
    return False


# ---------------------------------------------------------------------------- the two sides
class SLM:
    """Retrieval (``minilm-l6``) + extractive QA (``minilm-qa``); ``answer`` also returns a confidence."""

    def __init__(self, passages: list[dict] | None = None, k: int = 2, models=None):
        from lmguide import load, search

        self.passages = passages or load_passages()
        self.k = k
        (self.encoder, self.encoder_tokenizer), (self.reader, self.reader_tokenizer) = models or (
            load("minilm-l6"), load("minilm-qa"))
        self.index = search.SemanticIndex([p["text"] for p in self.passages], self.encoder, self.encoder_tokenizer)

    def retrieve(self, question: str) -> list[int]:
        """Indices of the ``k`` passages closest to the question, best first."""
        return [hit.index for hit in self.index.search(question, self.k)]

    def answer(self, question: str) -> dict:
        """``{"answer", "confidence", "passages", "seconds"}``: the best span over the retrieved passages."""
        from lmguide import qa

        start = time.perf_counter()
        hits = self.retrieve(question)
        found = qa.answer_many([(question, self.passages[i]["text"]) for i in hits], self.reader,
                               self.reader_tokenizer, null_margin=math.inf)
        best = max(range(len(hits)), key=lambda i: found[i]["score"])
        return {"answer": found[best]["answer"], "confidence": found[best]["score"] - found[best]["null_score"],
                "passages": hits, "seconds": time.perf_counter() - start}


class LLM:
    """``smollm2-135m`` answering from the same retrieved passages, greedy, up to ``max_new_tokens``."""

    def __init__(self, retrieve, passages: list[dict] | None = None, max_new_tokens: int = 40, model=None):
        from lmguide import load

        self.passages = passages or load_passages()
        self.retrieve = retrieve
        self.max_new_tokens = max_new_tokens
        self.model, self.tokenizer = model or load("smollm2-135m")

    def prompt_ids(self, question: str, passage_ids: list[int]):
        docs = "\n\n".join(self.passages[i]["text"] for i in passage_ids)
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Documentation:\n{docs}\n\nQuestion: {question}"}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)["input_ids"]

    def answer(self, question: str) -> dict:
        """``{"answer", "passages", "seconds"}`` (the seconds include retrieval)."""
        from lmguide.sampling import greedy_generate

        start = time.perf_counter()
        hits = self.retrieve(question)
        ids = self.prompt_ids(question, hits)
        out = greedy_generate(self.model, ids, self.max_new_tokens, eos_token_id=self.tokenizer.eos_token_id)
        text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
        return {"answer": text, "passages": hits, "seconds": time.perf_counter() - start}


def both_sides(passages: list[dict] | None = None) -> tuple[SLM, LLM]:
    """The SLM and the LLM, sharing the SLM's retriever."""
    slm = SLM(passages)
    return slm, LLM(slm.retrieve, passages)


def answer_all(questions: list[dict], slm: SLM, llm: LLM | None, progress: bool = True):
    """Both sides answer every question once; a DataFrame with one row per question.

    Columns: id, kind, split, question, gold, slm answer, slm confidence, slm s, slm correct,
    retrieved (whether the gold passage was among the SLM's retrieved ones) and, with an
    ``llm``, llm answer, llm s, llm correct.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    ids = [p["id"] for p in slm.passages]
    rows = []
    for q in tqdm(questions, desc="router questions", disable=not progress):
        s = slm.answer(q["question"])
        row = {"id": q["id"], "kind": q["kind"], "split": q["split"], "question": q["question"],
               "gold": q["answers"][0], "slm answer": s["answer"], "slm confidence": s["confidence"],
               "slm s": s["seconds"], "slm correct": is_correct(s["answer"], q["answers"]),
               "retrieved": ids.index(q["passage"]) in s["passages"]}
        if llm is not None:
            g = llm.answer(q["question"])
            row.update({"llm answer": g["answer"], "llm s": g["seconds"],
                        "llm correct": is_correct(g["answer"], q["answers"])})
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- routing
def route(results, threshold: float) -> dict:
    """Score a router that keeps the SLM's answer when its confidence >= ``threshold``.

    A routed question costs the SLM's time *and* the LLM's (the SLM ran first and abstained).
    Returns accuracy, mean latency (s) and the share of questions sent to the LLM.
    """
    if len(results) == 0:
        raise ValueError("no results to route; answer some questions first with answer_all")
    to_llm = results["slm confidence"] < threshold
    correct = results["slm correct"].where(~to_llm, results["llm correct"])
    seconds = results["slm s"] + results["llm s"].where(to_llm, 0.0)
    return {"accuracy": float(correct.mean()), "mean latency s": float(seconds.mean()),
            "share to LLM": float(to_llm.mean())}


def choose_threshold(results, latency_weight: float = 0.0) -> float:
    """The confidence threshold that maximises accuracy - ``latency_weight`` x mean latency.

    Candidates are the observed confidences (and +inf, "always LLM"); of equally good ones the
    lowest wins (the most questions stay with the cheap SLM).
    """
    candidates = sorted(set(results["slm confidence"].tolist())) + [math.inf]
    score = lambda t: (lambda r: r["accuracy"] - latency_weight * r["mean latency s"])(route(results, t))
    best = max(score(t) for t in candidates)
    return next(t for t in candidates if score(t) >= best - 1e-12)


def compare(results, threshold: float):
    """Router vs "always SLM" and "always LLM" on the same questions: a DataFrame."""
    import pandas as pd

    rows = {"always SLM": route(results, -math.inf), "always LLM": route(results, math.inf),
            f"router (threshold {threshold:.2f})": route(results, threshold)}
    frame = pd.DataFrame(rows).T
    by_kind = {}
    for name, t in (("always SLM", -math.inf), ("always LLM", math.inf),
                    (f"router (threshold {threshold:.2f})", threshold)):
        for kind in ("easy", "hard"):
            part = results[results["kind"] == kind]
            by_kind.setdefault(f"accuracy on {kind}", {})[name] = route(part, t)["accuracy"] if len(part) else float("nan")
    return frame.join(pd.DataFrame(by_kind))


