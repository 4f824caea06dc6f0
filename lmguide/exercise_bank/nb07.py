"""Exercises for notebook 07 (choosing between an LLM and an SLM, by measurement)."""
from __future__ import annotations

import math

from lmguide.exercises import ChoiceExercise, FunctionExercise, NumberExercise, register


@register("nb07.decode_bound")
class DecodeBound(NumberExercise):
    rel_tol = 0.01
    prompt = ("A 360 M-parameter model is stored in bf16 (2 bytes per weight). A laptop's memory moves "
              "50 GB/s (1 GB = 1e9 bytes). Each new token reads every weight once. What is the most "
              "tokens per second this laptop can decode, one sequence at a time?")
    hints = (
        "First the bytes one token must read: parameters x bytes per parameter.",
        "Tokens/s at most = bytes per second the memory moves / bytes read per token.",
    )
    solution_code = """
weight_bytes = 360e6 * 2                  # 720 MB per token
lg.hardware.decode_bound(weight_bytes, 50)   # 50e9 / 720e6
"""
    wrong_example = 138.9  # forgot that bf16 is 2 bytes: 50e9 / 360e6

    def solve(self):
        from lmguide.hardware import decode_bound

        return decode_bound(360e6 * 2, 50.0)

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if message and isinstance(answer, (int, float)) and math.isclose(float(answer), 2 * expected, rel_tol=0.02):
            return "that is twice the bound: a bf16 weight is 2 bytes, so each token reads 720 MB, not 360 MB."
        if message and isinstance(answer, (int, float)) and math.isclose(float(answer), expected / 2, rel_tol=0.02):
            return "that is half the bound: the weights are read once per token (fp32 would be 4 bytes; bf16 is 2)."
        return message


_RESULTS = [  # (SLM confidence, SLM right?, LLM right?, SLM seconds, LLM seconds)
    (6.1, True, True, 0.05, 1.9), (4.8, True, False, 0.05, 2.1), (3.0, False, True, 0.06, 1.8),
    (2.2, True, True, 0.05, 2.0), (1.1, False, False, 0.05, 2.2), (0.4, False, True, 0.06, 1.7),
    (-0.7, False, True, 0.05, 2.4), (-2.5, False, False, 0.05, 2.0),
]


def results_frame():
    """Eight questions' outcomes, in the columns lmguide.router.answer_all makes."""
    import pandas as pd

    return pd.DataFrame(_RESULTS, columns=["slm confidence", "slm correct", "llm correct", "slm s", "llm s"])


@register("nb07.route")
class Route(FunctionExercise):
    function_name = "route_accuracy"
    library_function = "lmguide.router.route(results, threshold)['accuracy']"
    prompt = ("Write route_accuracy(results, threshold): the router keeps the SLM's answer when its "
              "confidence is >= threshold and otherwise uses the LLM's. Return the share of questions "
              "answered correctly. `results` has the columns 'slm confidence', 'slm correct' and "
              "'llm correct' (see lg.exercise_bank.nb07.results_frame()). Check with q.check(route_accuracy).")
    hints = (
        "For each row: which answer is used depends only on the confidence and the threshold.",
        "keep = results['slm confidence'] >= threshold; correct = results['slm correct'].where(keep, results['llm correct'])",
    )
    solution_code = """
def route_accuracy(results, threshold):
    keep = results["slm confidence"] >= threshold
    return results["slm correct"].where(keep, results["llm correct"]).mean()
"""
    wrong_example = staticmethod(lambda results, threshold: float(results["slm correct"].mean()))

    def solve(self):
        from lmguide.router import route

        return lambda results, threshold: route(results, threshold)["accuracy"]

    def diagnose_function(self, answer, expected):
        frame = results_frame()
        for threshold in (-math.inf, 0.0, 2.0, 3.5, math.inf):
            want = expected(frame.copy(), threshold)
            try:
                got = float(answer(frame.copy(), threshold))
            except (TypeError, ValueError) as exc:
                return f"route_accuracy should return a number (a share between 0 and 1); it raised {exc}."
            if math.isclose(got, want, abs_tol=1e-9):
                continue
            if math.isclose(got, 100 * want, abs_tol=1e-6):
                return "return a share between 0 and 1, not a percentage."
            flipped = frame["llm correct"].where(frame["slm confidence"] >= threshold, frame["slm correct"]).mean()
            if math.isclose(got, float(flipped), abs_tol=1e-9):
                return (f"at threshold {threshold} you used the LLM for the confident questions and the SLM for "
                        f"the unsure ones; it is the other way round.")
            strict = frame["slm correct"].where(frame["slm confidence"] > threshold, frame["llm correct"]).mean()
            if math.isclose(got, float(strict), abs_tol=1e-9) and not math.isclose(got, want, abs_tol=1e-9):
                return "a confidence equal to the threshold keeps the SLM's answer (>=, not >)."
            return f"at threshold {threshold} the accuracy is {want:.3f}; yours gave {got:.3f}."
        return None


@register("nb07.pareto")
class Pareto(FunctionExercise):
    function_name = "pareto_front"
    library_function = "lmguide.measure.table.pareto_front"
    prompt = ("Write pareto_front(points): `points` maps a model name to (quality, speed), both higher-is-"
              "better. Return the names that no other model beats: a model is dominated when another is "
              "at least as good on both and strictly better on one. Check with q.check(pareto_front).")
    hints = (
        "Compare every pair: for each model, look for another that is >= on both and > on at least one.",
        "Keep a name when no other point (q2, s2) has q2 >= q and s2 >= s and (q2 > q or s2 > s).",
    )
    solution_code = """
def pareto_front(points):
    front = []
    for name, (q, s) in points.items():
        if not any(q2 >= q and s2 >= s and (q2 > q or s2 > s)
                   for other, (q2, s2) in points.items() if other != name):
            front.append(name)
    return front
"""
    wrong_example = staticmethod(lambda points: [max(points, key=lambda n: points[n][0]),
                                                 max(points, key=lambda n: points[n][1])])

    def solve(self):
        from lmguide.measure.table import pareto_front

        return pareto_front

    _CASES = (
        {"a": (0.9, 1.0), "b": (0.5, 10.0), "c": (0.4, 5.0), "d": (0.7, 6.0)},
        {"a": (0.9, 1.0), "b": (0.9, 1.0), "c": (0.2, 2.0)},             # ties dominate nobody
        {"x": (0.3, 3.0), "y": (0.6, 3.0), "z": (0.6, 1.0)},             # equal speed: better quality wins
    )

    def diagnose_function(self, answer, expected):
        for points in self._CASES:
            want = sorted(expected(dict(points)))
            got = answer(dict(points))
            if not isinstance(got, (list, tuple, set)):
                return f"return a list of names; got a {type(got).__name__}."
            got = sorted(got)
            if got == want:
                continue
            extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
            if extra:
                return f"for {points} you kept {extra}, but another model is at least as good on both axes and better on one."
            return f"for {points} you dropped {missing}, which no other model beats on both axes."
        return None


def _long_prompt_row() -> dict:
    """The 1.5 B's serving row at its longest stored prompt (its model card), which the exercise reads."""
    from lmguide.measure import quality

    return quality.card("qwen2.5-coder-1.5b")["serving"]["by prompt length"][-1]


@register("nb07.long_prompt")
class LongPrompt(NumberExercise):
    rel_tol = 0.05
    prompt = ("A user pastes a 1,500-token document into a chat with qwen2.5-coder-1.5b on the machine of its "
              "model card, and the answer is 100 tokens long. Read the serving table's stored row for the 1.5 B "
              "at its longest prompt: its time to first token gives the prompt rate (tokens read per second), and "
              "its per-token time is each later step. Estimate the seconds until the whole answer is written "
              "(the first token after reading 1,500 tokens, then 99 steps).")
    hints = (
        "Reading a prompt costs about the same per token whatever its length: tokens / (tokens per second).",
        "The first token comes when the prompt is read; each of the other 99 costs one step.",
    )
    solution_code = """
from lmguide.measure import quality
row = quality.card("qwen2.5-coder-1.5b")["serving"]["by prompt length"][-1]
rate = row["prompt tokens"] / (row["first token ms"] / 1000)     # prompt tokens read per second
1500 / rate + 99 * row["per token ms"] / 1000
"""
    wrong_example = 7.0  # the answer's steps only: the 1,500-token prompt forgotten

    def solve(self):
        row = _long_prompt_row()
        return 1500 / (row["prompt tokens"] / (row["first token ms"] / 1000)) + 99 * row["per token ms"] / 1000

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if not message or not isinstance(answer, (int, float)):
            return message
        row = _long_prompt_row()
        reading = 1500 * row["first token ms"] / 1000 / row["prompt tokens"]
        steps = 99 * row["per token ms"] / 1000
        if math.isclose(float(answer), steps, rel_tol=0.1):
            return ("that leaves out most of the wait: before the first token the model reads all 1,500 prompt "
                    "tokens, which takes longer than writing the answer.")
        if math.isclose(float(answer), reading, rel_tol=0.03):
            return "that is the time to the first token only; the other 99 tokens take one step each."
        if math.isclose(float(answer), steps + row["first token ms"] / 1000, rel_tol=0.03):
            return (f"that reads {row['prompt tokens']:,} prompt tokens, the row's prompt; this one has 1,500: "
                    "turn the row into a rate first.")
        if math.isclose(float(answer), 1000 * expected, rel_tol=0.05):
            return "the table's times are in milliseconds: give the answer in seconds."
        return message
