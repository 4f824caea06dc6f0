"""Exercises for notebook 09 (small and large models working together)."""
from __future__ import annotations

import math

from lmguide.exercises import NumberExercise, register

VERIFY_MS = {2: 90, 3: 88, 5: 100, 7: 130, 9: 155}  # one target call reading n tokens (k proposals + 1)
KS = (1, 2, 4, 6, 8)


def _speedups(acceptance=0.7, draft_ms=7.0, target_ms=65.0):
    from lmguide.speculative import predicted_speedup

    return {k: predicted_speedup(acceptance, k, draft_ms / 1000, VERIFY_MS[k + 1] / 1000, target_ms / 1000) for k in KS}


@register("nb09.best_k")
class BestK(NumberExercise):
    exact = True
    prompt = ("On a machine where verifying is cheap, a draft's step costs 7 ms and the target's 65 ms. One target call that reads n tokens costs "
              f"{', '.join(f'{v} ms for n = {n}' for n, v in VERIFY_MS.items())} (verifying k proposals reads "
              "k + 1 tokens). Each drafted token is accepted with probability 0.7. Which k of "
              f"{', '.join(map(str, KS))} gives the largest predicted speed-up over plain decoding?")
    hints = (
        "For each k: tokens a round adds on average, divided by what the round costs, compared with one token "
        "per target step.",
        "lg.speculative.predicted_speedup(a, k, draft_s, verify_s, target_s) takes seconds; loop over the five k.",
    )
    solution_code = """
speedups = {k: lg.speculative.predicted_speedup(0.7, k, 0.007, verify_ms[k + 1] / 1000, 0.065) for k in (1, 2, 4, 6, 8)}
max(speedups, key=speedups.get)
"""
    wrong_example = 8  # the most tokens per round, but its round costs too much

    def solve(self):
        speedups = _speedups()
        return max(speedups, key=speedups.get)

    def describe_miss(self, value, expected):
        if value == max(KS):
            return ("k = 8 adds the most tokens per round, but its verify call and 8 draft steps cost more than the "
                    "extra tokens bring: compare tokens per round divided by the round's cost.")
        if value in KS:
            return f"k = {float(value):g} predicts {_speedups()[int(value)]:.3f}x; another k predicts more."
        return f"{super().describe_miss(value, expected)} Pick one of {', '.join(map(str, KS))}."


DRAFT_MS, VERIFY5_MS, TARGET_MS = 39, 157, 67  # the Qwen pair in lmguide/assets/together/speculative.json, rounded


@register("nb09.break_even")
class BreakEven(NumberExercise):
    rel_tol = 0.005
    prompt = ("The Qwen 0.5 B drafts for the 1.5 B with k = 4. Notebook 09's stored sweep measured here: a draft step "
              f"{DRAFT_MS} ms, one target call reading 5 tokens {VERIFY5_MS} ms, the target's own step {TARGET_MS} ms. "
              "What acceptance probability a per drafted token makes the predicted speed-up exactly 1 (break even)? "
              "Give a between 0 and 1.")
    hints = (
        "Break even: the tokens a round adds on average equal what the round costs, counted in target steps.",
        "Tokens per round is 1 + a + a^2 + ... + a^k and rises with a: search for the a where it meets the cost "
        "(bisection, or a fine grid).",
    )
    solution_code = """
cost_in_steps = (4 * 39 + 157) / 67      # the round's cost, in target steps
low, high = 0.0, 1.0
for _ in range(60):
    mid = (low + high) / 2
    low, high = (mid, high) if lg.speculative.expected_tokens_per_round(mid, 4) < cost_in_steps else (low, mid)
low
"""
    wrong_example = 0.5

    def solve(self):
        from lmguide.speculative import expected_tokens_per_round

        cost, low, high = (4 * DRAFT_MS + VERIFY5_MS) / TARGET_MS, 0.0, 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if expected_tokens_per_round(mid, 4) < cost else (low, mid)
        return low

    def describe_miss(self, value, expected):
        if not 0 <= value <= 1:
            return f"{float(value):g} is not a probability: give a between 0 and 1 (not a percentage)."
        if math.isclose(value, (4 * DRAFT_MS + VERIFY5_MS) / TARGET_MS / 5, rel_tol=0.01):
            return ("that divides the cost by k + 1 tokens, as if every round kept all of them; tokens per round is "
                    "1 + a + ... + a^4, not a x 5.")
        return super().describe_miss(value, expected)


@register("nb09.kappa")
class Kappa(NumberExercise):
    rel_tol = 0.01
    prompt = ("A judge and the rule grade the same 60 answers. They agree on 50. The judge says \"correct\" to 40 "
              "answers, the rule to 35. What is Cohen's kappa between them?")
    hints = (
        "Kappa = (observed agreement - chance agreement) / (1 - chance agreement).",
        "Chance agreement: both say correct by chance (the two shares multiplied) plus both say incorrect by chance.",
    )
    solution_code = """
observed = 50 / 60
chance = (40 / 60) * (35 / 60) + (20 / 60) * (25 / 60)
(observed - chance) / (1 - chance)
"""
    wrong_example = 50 / 60  # the raw agreement, chance not removed

    def solve(self):
        observed, chance = 50 / 60, (40 / 60) * (35 / 60) + (20 / 60) * (25 / 60)
        return (observed - chance) / (1 - chance)

    def describe_miss(self, value, expected):
        if math.isclose(value, 50 / 60, rel_tol=0.01):
            return "that is the raw agreement; kappa removes the agreement two raters would reach by chance."
        if math.isclose(value, (50 / 60 - 40 / 60 * 35 / 60) / (1 - 40 / 60 * 35 / 60), rel_tol=0.01):
            return "chance agreement has two parts: both say correct, and both say incorrect; you counted only one."
        return super().describe_miss(value, expected)
