"""The article's customer-service scenario, made concrete: send easy questions to an SLM, the rest to an LLM.

    reader = router.Reader()                                    # minilm-l6 retrieves, minilm-qa copies a span
    reader.answer("How long is the warranty?")                  # answer, confidence, passages, seconds
    writer = router.Generator(engines.open_default("qwen2.5-coder-1.5b"), reader.retrieve)
    writer.answer("I dropped it. What would have got me a free replacement?")
    router.score("The warranty lasts 24 months.", ["24 months"])   # correct, exact match, F1
    results = router.answers_frame(router.load_answers())       # every side's stored answers, one row a question
    router.compare(router.with_llm(results, "qwen2.5-coder-1.5b"), threshold)

The SLM side (the **reader**) is open-book extractive QA: ``minilm-l6`` finds the two support
passages closest to the question and ``minilm-qa`` copies an answer span out of them. Its
confidence is the margin between the best span's score and the "no answer" score (see
:mod:`lmguide.qa`). The LLM side is any chat model behind an engine (:class:`Generator`): SmolLM2-135M
in torch, the Qwen 0.5 B and 1.5 B in llama.cpp, each given the same setup, its best fair one:
the same retrieved passages, one worked example (:data:`EXAMPLE`, about an accessory the manual's
questions never ask about) in its own chat template, greedy decoding, and the answer taken from its
first line (:func:`extract_answer`). One rule scores every side (:func:`score`); no model judges.

Every side answers every question once; a router with any threshold is then a choice per
question, so its accuracy, latency and share routed follow without re-running a model
(:func:`route`), and so do the baselines "always reader" and "always <model>". The threshold is
picked on the ``tune`` questions and reported on ``test``. The generators need minutes for the
96 questions, so their answers are stored (:func:`load_answers`; ``python -m lmguide.recipes.ladder
--router`` or ``lmguide bench --extras`` makes them, naming the machine).

The question set (``lmguide/assets/router/``, shipped in the package) is about a made-up product,
the Quillo Q2 thermostat; its data card (README.md there) says how it was written and what favours whom.
"""
from __future__ import annotations

import json
import math
import re
import time
from importlib import resources
from pathlib import Path

SYSTEM_PROMPT = ("You are the support assistant for the Quillo Q2 smart thermostat. Answer the customer's "
                 "question in one short sentence, using only the documentation given. If the answer needs a "
                 "calculation or a reason, give the result first, then the reason in a few words.")
GENERATORS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")  # smallest first
MAX_NEW_TOKENS = 48  # one sentence with its reason; the longest gold answer is 6 words
EXAMPLE = {  # the worked example every generator sees first: a made-up accessory no question asks about
    "documentation": ("The Quillo Room Sensor is sold separately for 39 euros. Up to four Room Sensors can be "
                      "paired with one thermostat, in the app under Devices."),
    "question": "I have five bedrooms. Can I pair a Room Sensor in each of them?",
    "answer": "No: one thermostat pairs with at most four Room Sensors.",
}
ANSWERS_FILE = Path(__file__).resolve().parent / "assets" / "router" / "answers.json"


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


def is_correct(prediction: str, answers: list) -> bool:
    """Whether ``prediction`` gives one of the gold ``answers``.

    A gold answer counts when its normalised words appear, in order and together, in the
    prediction (so a generated sentence around the right span counts), except that a bare
    "yes" or "no" must be the prediction's first word (a long answer nearly always contains a
    "no" somewhere). A gold answer may be a list of parts that must all be there: ``["no", "500
    metres"]`` is a "no" with its reason. An empty prediction (an abstention) is never correct.
    """
    words = _words(prediction)
    if not words:
        return False

    def has(part: str) -> bool:
        gold = _words(part)
        if gold in (["yes"], ["no"]):
            return words[0] == gold[0]
        return bool(gold) and any(words[i:i + len(gold)] == gold for i in range(len(words) - len(gold) + 1))

    return any(all(map(has, answer)) if isinstance(answer, list) else has(answer) for answer in answers)


def answer_text(answer) -> str:
    """A gold answer as text, a list of parts joined by " + " (which normalisation drops): what exact match and
    F1 compare with, and what a table shows."""
    return " + ".join(answer) if isinstance(answer, list) else answer


def score(prediction: str, answers: list) -> dict:
    """The one scorer every side gets: ``correct`` (:func:`is_correct`: a gold answer contained, or a leading
    yes/no), with SQuAD's exact match and word F1 (best over the gold answers) beside it. EM and F1 reward
    the reader's bare spans over a generator's sentence, so they are shown, and ``correct`` decides."""
    from lmguide.qa import exact_match, f1_score

    return {"correct": is_correct(prediction, answers),
            "em": max(exact_match(prediction, answer_text(a)) for a in answers),
            "f1": max(f1_score(prediction, answer_text(a)) for a in answers)}


# ---------------------------------------------------------------------------- the sides
class Reader:
    """The SLM: retrieval (``minilm-l6``) + extractive QA (``minilm-qa``); ``answer`` also returns a confidence."""

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


def extract_answer(text: str) -> str:
    """The answer in a generator's reply: its first non-empty line, without an "Answer:" label or quotes."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(\*\*)?(answer|a)\s*:\s*(\*\*)?\s*", "", line, flags=re.IGNORECASE)
    return line.strip().strip('"').strip()


class Generator:
    """A chat model (any :class:`lmguide.engines.Engine`) answering from the retrieved passages, after the
    worked :data:`EXAMPLE`, greedy, up to ``max_new_tokens``; ``retrieve`` is the reader's retriever."""

    def __init__(self, engine, retrieve, passages: list[dict] | None = None, max_new_tokens: int = MAX_NEW_TOKENS):
        self.engine = engine
        self.passages = passages or load_passages()
        self.retrieve = retrieve
        self.max_new_tokens = max_new_tokens

    def messages(self, question: str, passage_ids: list[int]) -> list[dict]:
        """The chat: the system prompt, the worked example (a user turn and its answer), then the question."""
        docs = "\n\n".join(self.passages[i]["text"] for i in passage_ids)
        turn = "Documentation:\n{}\n\nQuestion: {}".format
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": turn(EXAMPLE["documentation"], EXAMPLE["question"])},
                {"role": "assistant", "content": EXAMPLE["answer"]},
                {"role": "user", "content": turn(docs, question)}]

    def prompt_ids(self, question: str, passage_ids: list[int]) -> list[int]:
        return self.engine.chat_ids(self.messages(question, passage_ids))

    def answer(self, question: str) -> dict:
        """``{"answer", "reply", "passages", "prompt tokens", "seconds"}`` (the seconds include retrieval)."""
        start = time.perf_counter()
        hits = self.retrieve(question)
        ids = self.prompt_ids(question, hits)
        tokens = self.engine.answer_ids(ids, self.max_new_tokens)
        reply = self.engine.decode(tokens).strip()
        return {"answer": extract_answer(reply), "reply": reply, "passages": hits, "prompt tokens": len(ids),
                "seconds": time.perf_counter() - start}


def answer_all(questions: list[dict], reader: Reader, generators: dict | None = None, progress: bool = True):
    """The reader and each of ``generators`` (name -> :class:`Generator`) answer every question once; a
    DataFrame with one row per question.

    Columns: id, kind, split, question, gold, retrieved (whether the gold passage was among those
    retrieved), the reader's ``slm answer``, ``slm confidence``, ``slm s``, ``slm correct``, ``slm em``,
    ``slm f1``, and for each generator ``<name> answer``, ``<name> s``, ``<name> correct`` and so on.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    ids = [p["id"] for p in reader.passages]
    rows = []
    for q in tqdm(questions, desc="router questions", disable=not progress):
        s = reader.answer(q["question"])
        row = {"id": q["id"], "kind": q["kind"], "split": q["split"], "question": q["question"],
               "gold": answer_text(q["answers"][0]), "retrieved": ids.index(q["passage"]) in s["passages"],
               "slm answer": s["answer"], "slm confidence": s["confidence"], "slm s": s["seconds"],
               **{f"slm {k}": v for k, v in score(s["answer"], q["answers"]).items()}}
        for name, generator in (generators or {}).items():
            g = generator.answer(q["question"])
            row.update({f"{name} answer": g["answer"], f"{name} s": g["seconds"],
                        **{f"{name} {k}": v for k, v in score(g["answer"], q["answers"]).items()}})
        rows.append(row)
    return pd.DataFrame(rows)


def side_answers(name: str, threads: int = 2, questions: list[dict] | None = None, progress=None) -> dict:
    """Every question answered by one side, as stored: ``"reader"`` (with its confidence) or a zoo chat model
    in its default engine (on ``threads`` threads), each answer with its seconds; run it in a fresh process."""
    from lmguide import engines

    questions = questions if questions is not None else load_questions()
    reader = Reader()
    if name == "reader":
        side, info = reader, {"engine": "torch", "passages retrieved": reader.k}
    else:
        engine = engines.open_default(name, threads)
        side = Generator(engine, reader.retrieve)
        info = {"engine": engine.kind, "precision": getattr(engine, "precision", None) or "float32",
                "max new tokens": side.max_new_tokens}
    answers = {}
    for i, q in enumerate(questions):
        a = side.answer(q["question"])
        answers[q["id"]] = {k: a[k] for k in ("answer", "reply", "confidence", "passages", "prompt tokens", "seconds")
                            if k in a}
        if progress:
            progress(i + 1, len(questions), q["id"], a)
    return {**info, "answers": answers}


def load_answers(file: str | Path = ANSWERS_FILE) -> dict | None:
    """The stored answers of every side (machine, date, command, and per side its answers); None before
    ``python -m lmguide.recipes.ladder --router`` has run."""
    file = Path(file)
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def answers_frame(stored: dict, questions: list[dict] | None = None):
    """The stored answers as :func:`answer_all`'s DataFrame (scored now, by :func:`score`): the reader's
    columns start with ``slm``, each generator's with its name."""
    import pandas as pd

    ids = [p["id"] for p in load_passages()]
    sides = stored["models"]
    if "reader" not in sides:
        raise ValueError("the stored answers have no reader side; run python -m lmguide.recipes.ladder --router")
    rows = []
    for q in questions if questions is not None else load_questions():
        r = sides["reader"]["answers"].get(q["id"])
        if r is None:
            raise ValueError(f"question {q['id']!r} has no stored answer; the question set changed after the "
                             "answers were stored: run python -m lmguide.recipes.ladder --router again")
        row = {"id": q["id"], "kind": q["kind"], "split": q["split"], "question": q["question"],
               "gold": answer_text(q["answers"][0]), "retrieved": ids.index(q["passage"]) in r["passages"],
               "slm answer": r["answer"], "slm confidence": r["confidence"], "slm s": r["seconds"],
               **{f"slm {k}": v for k, v in score(r["answer"], q["answers"]).items()}}
        for name, side in sides.items():
            if name != "reader" and q["id"] in side["answers"]:
                g = side["answers"][q["id"]]
                row.update({f"{name} answer": g["answer"], f"{name} s": g["seconds"],
                            **{f"{name} {k}": v for k, v in score(g["answer"], q["answers"]).items()}})
        rows.append(row)
    return pd.DataFrame(rows)


def with_llm(results, name: str):
    """``results`` with generator ``name``'s columns also named ``llm ...``: the LLM side of :func:`route`."""
    if f"{name} correct" not in results:
        raise ValueError(f"no answers of {name!r} in the results; the generators there are "
                         f"{', '.join(generators_in(results)) or 'none'}")
    out = results.copy()
    for what in ("answer", "s", "correct", "em", "f1"):
        out[f"llm {what}"] = results[f"{name} {what}"]
    return out


def generators_in(results) -> list[str]:
    """The generators whose answers ``results`` holds, in :data:`GENERATORS` order, then any others."""
    names = [c[:-len(" correct")] for c in results.columns if c.endswith(" correct") and c not in ("slm correct", "llm correct")]
    return sorted(names, key=lambda n: (GENERATORS.index(n) if n in GENERATORS else len(GENERATORS), n))


# ---------------------------------------------------------------------------- routing
def routed(results, threshold: float):
    """Per question, what a router that keeps the SLM's answer when its confidence >= ``threshold`` gets:
    ``(correct, seconds, to_llm)``, three Series. A routed question costs the SLM's time *and* the LLM's
    (the SLM ran first and abstained)."""
    if len(results) == 0:
        raise ValueError("no results to route; answer some questions first with answer_all")
    to_llm = results["slm confidence"] < threshold
    correct = results["slm correct"].where(~to_llm, results["llm correct"]).astype(bool)
    seconds = results["slm s"] + results["llm s"].where(to_llm, 0.0)
    return correct, seconds, to_llm


def route(results, threshold: float) -> dict:
    """Score a router that keeps the SLM's answer when its confidence >= ``threshold``: accuracy, mean and
    95th-percentile latency (s) and the share of questions sent to the LLM."""
    import numpy as np

    correct, seconds, to_llm = routed(results, threshold)
    return {"accuracy": float(correct.mean()), "mean latency s": float(seconds.mean()),
            "p95 latency s": float(np.percentile(seconds, 95)), "share to LLM": float(to_llm.mean())}


def choose_threshold(results, latency_weight: float = 0.0) -> float:
    """The confidence threshold that maximises accuracy - ``latency_weight`` x mean latency.

    Candidates are the observed confidences (and +inf, "always LLM"); of equally good ones the
    lowest wins (the most questions stay with the cheap SLM).
    """
    candidates = sorted(set(results["slm confidence"].tolist())) + [math.inf]
    score = lambda t: (lambda r: r["accuracy"] - latency_weight * r["mean latency s"])(route(results, t))
    best = max(score(t) for t in candidates)
    return next(t for t in candidates if score(t) >= best - 1e-12)


def systems(results, thresholds: dict | None = None) -> dict:
    """Each system's per-question outcome on ``results``: ``name -> (correct, seconds, share to LLM)``.

    "always reader", "always <generator>" for every generator in ``results``, and for each
    ``generator -> threshold`` in ``thresholds`` the router "reader -> <generator>".
    """
    import pandas as pd

    out = {"always reader": (results["slm correct"].astype(bool), results["slm s"], 0.0)}
    for name in generators_in(results):
        out[f"always {name}"] = (results[f"{name} correct"].astype(bool), results[f"{name} s"], 1.0)
    for name, threshold in (thresholds or {}).items():
        correct, seconds, to_llm = routed(with_llm(results, name), threshold)
        out[f"reader -> {name}"] = (correct, seconds, float(to_llm.mean()))
    assert all(isinstance(c, pd.Series) and len(c) == len(results) for c, _, _ in out.values())
    return out


def compare(results, thresholds: dict | None = None):
    """Every system of :func:`systems` on the same questions, one row each: accuracy with its 95% Wilson
    interval, accuracy on easy and hard questions, mean exact match and F1 of the answers used, mean and
    p95 latency, share routed to a generator."""
    import numpy as np
    import pandas as pd

    from lmguide.code_tasks import wilson_interval

    rows = {}
    for name, (correct, seconds, share) in systems(results, thresholds).items():
        low, high = wilson_interval(int(correct.sum()), len(correct))
        used = name.split(" -> ")[-1].removeprefix("always ")  # whose EM/F1 (a router: the answer it kept)
        if " -> " in name:
            keep = results["slm confidence"] >= thresholds[used]
            em, f1 = (results["slm em"].where(keep, results[f"{used} em"]), results["slm f1"].where(keep, results[f"{used} f1"]))
        else:
            prefix = "slm" if used == "reader" else used
            em, f1 = results[f"{prefix} em"], results[f"{prefix} f1"]
        rows[name] = {"questions": len(correct), "accuracy": float(correct.mean()), "95% low": low, "95% high": high,
                      **{f"accuracy on {k}": float(correct[results["kind"] == k].mean()) if (results["kind"] == k).any()
                         else float("nan") for k in ("easy", "hard")},
                      "exact match": float(em.mean()), "F1": float(f1.mean()),
                      "mean latency s": float(seconds.mean()), "p95 latency s": float(np.percentile(seconds, 95)),
                      "share to LLM": share}
    return pd.DataFrame(rows).T


def paired_differences(results, pairs, thresholds: dict | None = None, seed: int = 0):
    """For each ``(a, b)`` of system names (:func:`systems`): accuracy of a minus accuracy of b on the same
    questions, a 95% bootstrap interval of that paired difference (questions resampled, seeded), the
    questions only one of them got right, and the exact sign test's p-value (:func:`lmguide.code_tasks.sign_test`)."""
    import pandas as pd

    from lmguide.code_tasks import sign_test
    from lmguide.probes import bootstrap_interval

    outcome = systems(results, thresholds)
    rows = []
    for a, b in pairs:
        if a not in outcome or b not in outcome:
            missing = a if a not in outcome else b
            raise ValueError(f"no system named {missing!r}; the systems are {', '.join(outcome)}")
        ca, cb = outcome[a][0].to_numpy(), outcome[b][0].to_numpy()
        diff = ca.astype(float) - cb.astype(float)
        low, high = bootstrap_interval(diff, seed=seed)  # questions resampled, the pairs kept together
        test = sign_test(ca, cb)
        rows.append({"a": a, "b": b, "a - b": float(diff.mean()), "95% low": low,
                     "95% high": high, "only a right": test["only the first passed"],
                     "only b right": test["only the second passed"], "sign test p": test["p"]})
    return pd.DataFrame(rows)
