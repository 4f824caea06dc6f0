"""Exercises for notebook 08: responsible use, measured (memorization, hallucination, bias)."""
from __future__ import annotations

import itertools
import random

from lmguide.exercises import ChoiceExercise, FunctionExercise, NumberExercise, register


@register("nb08.chance_any")
class ChanceAny(NumberExercise):
    rel_tol = 0.005
    prompt = ("You plant 6 control canaries the model never sees and rank each among 256 candidates (itself "
              "included); each rank is equally likely to be any of 1..256, independently. What is the probability "
              "that at least one of the six controls reaches an exposure of 6 bits or more by chance alone?")
    hints = (
        "First one control: which ranks give log2(256) - log2(rank) >= 6, and how likely is that?",
        "'At least one of six' is 1 minus 'none of the six'; the six are independent.",
    )
    solution_code = """
one = (256 / 2 ** 6) / 256          # ranks 1..4 of 256 give exposure >= 6 bits: 2 ** -6
1 - (1 - one) ** 6                  # at least one of six independent controls
"""
    wrong_example = 2.0 ** -6  # one control's chance, not six controls'

    def solve(self):
        return 1 - (1 - 2.0 ** -6) ** 6

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if message is None or isinstance(answer, str):
            return message
        value = float(answer)
        if value > 1 or value < 0:
            return f"{value:g} is not a probability; it must lie between 0 and 1."
        if abs(value - 2.0 ** -6) < 1e-4:
            return "that is one control's chance; the question asks for at least one of six."
        if abs(value - 6 * 2.0 ** -6) < 1e-4:
            return ("6 x 2^-6 adds the six chances, which counts twice the cases where two controls both reach 6 bits: "
                    "use 1 - (chance that none does).")
        if abs(value - 2.0 ** -36) < 1e-9 or abs(value - (2.0 ** -6) ** 6) < 1e-9:
            return "that is the chance that all six reach 6 bits; the question asks for at least one."
        return message


def _brute_force_lcs(a, b) -> int:
    best = 0
    for i, j in itertools.product(range(len(a)), range(len(b))):
        k = 0
        while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
            k += 1
        best = max(best, k)
    return best


def _lcs_cases():
    cases = [
        ([1, 2, 3, 4, 5], [9, 2, 3, 4, 8]),          # a run of 3 in the middle
        ([1, 2, 3, 4], [1, 2, 3, 4]),                # identical: the whole length
        ([1, 9, 2, 9, 3], [1, 2, 3]),                # common subsequence 3, but contiguous runs of 1
        ([5, 6, 7], [1, 2, 3]),                      # nothing shared
        ([1, 2, 7, 7, 7, 7], [3, 1, 2, 7, 7, 7, 7]), # not at the same offset
        ([], [1, 2]),
    ]
    rng = random.Random(8)
    cases += [([rng.randrange(4) for _ in range(12)], [rng.randrange(4) for _ in range(10)]) for _ in range(20)]
    return cases


@register("nb08.lcs")
class LongestCommonSubstring(FunctionExercise):
    function_name = "longest_common_substring"
    library_function = "lmguide.probes.longest_common_substring"
    prompt = ("Write longest_common_substring(a, b): the length of the longest run of consecutive tokens that "
              "appears in both lists (anywhere in each). Check it with q.check(longest_common_substring).")
    hints = (
        "A run can start at a different position in each list; 'same position' matching is not enough.",
        "Dynamic programming: run[i][j] = run[i-1][j-1] + 1 when a[i] == b[j], else 0; the answer is the largest run.",
    )
    solution_code = """
def longest_common_substring(a, b):
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best
"""
    wrong_example = staticmethod(lambda a, b: next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
                                                   min(len(a), len(b))))  # the common prefix only

    def solve(self):
        from lmguide.probes import longest_common_substring

        return longest_common_substring

    def diagnose_function(self, answer, expected):
        for a, b in _lcs_cases():
            want = expected(a, b)
            assert want == _brute_force_lcs(a, b)  # the library agrees with the brute force on every case
            got = answer(list(a), list(b))
            if got != want:
                if a == [1, 9, 2, 9, 3] and got == 3:
                    return "for [1, 9, 2, 9, 3] and [1, 2, 3] you returned 3: that is a subsequence with gaps; a substring is contiguous (answer 1)."
                return f"for a={a} and b={b} your function returned {got!r}; the longest shared run is {want}."
        return None


def _auc_cases():
    cases = [
        ([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]),        # perfect: 1.0
        ([0.1, 0.3, 0.8, 0.9], [1, 1, 0, 0]),        # reversed: 0.0
        ([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]),        # all tied: 0.5
        ([0.7, 0.5, 0.5, 0.2, 0.9], [1, 1, 0, 0, 0]),  # one tie across the classes
    ]
    rng = random.Random(3)
    for _ in range(10):
        labels = [1, 0] + [rng.randrange(2) for _ in range(10)]
        cases.append(([rng.randrange(5) / 4 for _ in labels], labels))  # few distinct values: many ties
    return cases


@register("nb08.auc")
class PairwiseAUC(FunctionExercise):
    function_name = "auc"
    library_function = "lmguide.probes.roc_auc"
    prompt = ("Write auc(scores, labels): the probability that a random positive (label 1) scores above a random "
              "negative (label 0), a tie counting one half. Check it with q.check(auc).")
    hints = (
        "Loop over every (positive, negative) pair: count 1 when the positive is higher, 0.5 when they are equal.",
        "Divide the count by (number of positives) x (number of negatives). Ties matter: scores here repeat often.",
    )
    solution_code = """
def auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))
"""
    wrong_example = staticmethod(lambda scores, labels: sum(
        p > n for p, yp in zip(scores, labels) if yp == 1 for n, yn in zip(scores, labels) if yn == 0)
        / (sum(labels) * (len(labels) - sum(labels))))  # ties count 0

    def solve(self):
        from lmguide.probes import roc_auc

        return roc_auc

    def diagnose_function(self, answer, expected):
        for scores, labels in _auc_cases():
            want = expected(scores, labels)
            got = answer(list(scores), list(labels))
            if isinstance(got, bool) or not isinstance(got, (int, float)) and not hasattr(got, "item"):
                return f"auc should return a number; for scores={scores} it returned a {type(got).__name__}."
            if abs(float(got) - want) > 1e-9:
                if scores == [0.5, 0.5, 0.5, 0.5]:
                    return f"when every score is tied you returned {float(got):g}; ties count one half, so the AUC is 0.5."
                if abs(float(got) - (1 - want)) < 1e-9:
                    return "your AUC is 1 minus the right one: count pairs where the *positive* (label 1) scores higher."
                return f"for scores={scores}, labels={labels} you returned {float(got):g}; expected {want:g}."
        return None


@register("nb08.probe_claim")
class ProbeClaim(ChoiceExercise):
    prompt = ("A log-prob probe gives 'nurse' a he-minus-she gap of -2.0 nats, 95% bootstrap interval [-2.4, -1.6] "
              "over 6 templates. Rephrased templates give -0.6 [-1.3, +0.1]. Which conclusion do these numbers carry?")
    choices = {
        "A": "The model will write 'she' for nurses about 7 times as often as 'he' (e^2) in what it generates.",
        "B": "On the first templates the model prefers ' she' after 'nurse'; the size of that preference depends "
             "on the wording, so it is a property of model and templates together.",
        "C": "The rephrased templates show there is no bias, since their interval contains 0.",
        "D": "The model is biased against nurses.",
    }
    answer_letter = "B"
    why_wrong = {
        "A": "the probe scores one next token after six fixed prefixes; text the model generates elsewhere may differ, "
             "and the rephrased set already gives a different size.",
        "C": "an interval containing 0 means this set cannot tell the sign, not that the preference is absent; "
             "the first set clearly measured one.",
        "D": "the probe compares two pronouns after the same occupation; it says nothing about attitudes to the occupation.",
    }
    hints = ("Ask what was measured: one next-token probability, on two fixed sets of prefixes.",)
    wrong_example = "A"
