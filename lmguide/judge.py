"""A local judge: a chat model grading other models' answers, and how far to trust it (notebook 09).

    judge = judge.Judge(engine)
    judge.grade(question, reference, answer, passage)      # "correct" / "incorrect" / "unclear"
    judge.prefer(question, reference, answer_a, answer_b, passage)   # "A" / "B" / "unclear"
    judge.cohen_kappa(verdicts, rule)                      # agreement beyond chance with the rule-based scorer

The judge sees the support passage, the question, the reference answer and the answer to grade
(reference-guided grading, the common setup), and answers one word; greedy. Its verdicts are set
against :func:`lmguide.router.score`'s, the rule every side of notebook 07's router was scored by.
Two known biases are measured, each by changing one thing: **position** (the same two answers in
both orders: how often the preferred *answer* changes) and **verbosity** (the same wrong answer
wrapped in polite filler: how often the verdict moves to "correct").
"""
from __future__ import annotations

import math
import re

GRADE_PROMPT = ("You grade the answers of a support assistant. Compare the answer with the reference answer, "
                "using the documentation. Reply with one word: correct or incorrect.")
PREFER_PROMPT = ("You compare two answers of a support assistant. Using the documentation and the reference answer, "
                 "decide which answer is better. Reply with one letter: A or B.")
PADDING = ("Thank you for reaching out, and I completely understand how important this is for your home. "
           "{answer} I hope this detailed explanation helps, and please do not hesitate to contact us again "
           "if you have any further questions about your Quillo thermostat.")
MAX_NEW_TOKENS = 4


def pad(answer: str) -> str:
    """The same answer wrapped in polite filler that adds no information (the verbosity probe)."""
    return PADDING.format(answer=answer.strip())


def parse_grade(reply: str) -> str:
    """"correct" / "incorrect" from the judge's first word ("unclear" for anything else)."""
    word = re.sub(r"[^a-z]", "", (reply.strip().split() or [""])[0].lower())
    return word if word in ("correct", "incorrect") else "unclear"


def parse_preference(reply: str) -> str:
    """"A" / "B" from the judge's reply's first letter-word ("unclear" for anything else)."""
    match = re.match(r"\W*(?:answer\s+)?([AB])\b", reply.strip(), flags=re.IGNORECASE)
    return match.group(1).upper() if match else "unclear"


class Judge:
    """A chat model behind any :class:`lmguide.engines.Engine`, asked for one-word verdicts, greedy."""

    def __init__(self, engine, max_new_tokens: int = MAX_NEW_TOKENS):
        self.engine, self.max_new_tokens = engine, max_new_tokens

    def _ask(self, system: str, user: str) -> str:
        ids = self.engine.chat_ids([{"role": "system", "content": system}, {"role": "user", "content": user}])
        tokens = self.engine.answer_ids(ids, self.max_new_tokens)
        return self.engine.decode(tokens).strip()

    def grade(self, question: str, reference: str, answer: str, passage: str) -> str:
        reply = self._ask(GRADE_PROMPT, f"Documentation:\n{passage}\n\nQuestion: {question}\nReference answer: "
                                        f"{reference}\nAnswer to grade: {answer}\n\nVerdict:")
        return parse_grade(reply)

    def prefer(self, question: str, reference: str, answer_a: str, answer_b: str, passage: str) -> str:
        reply = self._ask(PREFER_PROMPT, f"Documentation:\n{passage}\n\nQuestion: {question}\nReference answer: "
                                         f"{reference}\nAnswer A: {answer_a}\nAnswer B: {answer_b}\n\nBetter answer:")
        return parse_preference(reply)


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two raters' labels on the same items: (observed - chance agreement) / (1 - chance),
    chance from each rater's own label shares. 1 is perfect, 0 what independent raters would reach."""
    a, b = list(a), list(b)
    if len(a) != len(b) or not a:
        raise ValueError(f"need two equally long, non-empty lists of labels (got {len(a)} and {len(b)})")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    chance = sum((a.count(label) / n) * (b.count(label) / n) for label in labels)
    return 1.0 if math.isclose(chance, 1.0) else (observed - chance) / (1 - chance)


def items(stored: dict, side: str, questions: list[dict], passages: dict) -> list[dict]:
    """What the judge grades: one stored router answer of ``side`` per question, with its gold passage, the
    reference (the first gold answer) and the rule's verdict."""
    from lmguide import router

    out = []
    for q in questions:
        answer = stored["models"][side]["answers"][q["id"]]["answer"]
        out.append({"id": q["id"], "kind": q["kind"], "question": q["question"], "answer": answer,
                    "reference": router.answer_text(q["answers"][0]), "passage": passages[q["passage"]],
                    "rule": "correct" if router.score(answer, q["answers"])["correct"] else "incorrect"})
    return out


def judge_answers(name: str, threads: int = 2, graded_side: str = "qwen2.5-coder-0.5b",
                  other_side: str = "reader", pairs: int = 24, padded: int = 24) -> dict:
    """A recipe's job: zoo chat model ``name`` grades ``graded_side``'s stored answers to the router's test
    questions, prefers between two sides' answers in both orders where the rule says exactly one is right,
    and grades wrong answers again with padding."""
    from lmguide import engines, router

    engine = engines.open_default(name, threads)
    judge = Judge(engine)
    stored = router.load_answers()
    passages = {p["id"]: p["text"] for p in router.load_passages()}
    test = router.load_questions("test")
    graded = items(stored, graded_side, test, passages)
    for item in graded:
        item["judge"] = judge.grade(item["question"], item["reference"], item["answer"], item["passage"])
    other = items(stored, other_side, test, passages)
    mixed = [(x, y) for x, y in zip(graded, other) if (x["rule"] == "correct") != (y["rule"] == "correct")][:pairs]
    preferences = []
    for x, y in mixed:
        ab = judge.prefer(x["question"], x["reference"], x["answer"], y["answer"], x["passage"])
        ba = judge.prefer(x["question"], x["reference"], y["answer"], x["answer"], x["passage"])
        preferences.append({"id": x["id"], "right side": graded_side if x["rule"] == "correct" else other_side,
                            "first order": {"A": graded_side, "B": other_side}.get(ab, "unclear"),
                            "swapped order": {"A": other_side, "B": graded_side}.get(ba, "unclear")})
    wrong = [g for g in graded if g["rule"] == "incorrect"][:padded]
    verbosity = [{"id": g["id"], "plain": g["judge"],
                  "padded": judge.grade(g["question"], g["reference"], pad(g["answer"]), g["passage"])} for g in wrong]
    return {"engine": engine.kind, "graded side": graded_side, "other side": other_side, "grades": graded,
            "preferences": preferences, "verbosity": verbosity}
