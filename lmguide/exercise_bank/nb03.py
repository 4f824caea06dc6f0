"""Exercises for notebook 03: SLM embeddings and extractive QA."""
from __future__ import annotations

import re

import torch

from lmguide.exercises import Exercise, FunctionExercise, NumberExercise, register
from lmguide.grading import AnswerError


def _padded_batch():
    """Two texts, the second padded: hidden states (2, 4, 3) and mask (2, 4).

    Text 2's first feature is negative on its real tokens, so a max that merely zeroes the
    padding picks the padding's 0 instead of the real -2.
    """
    hidden = torch.tensor([
        [[1.0, 2.0, 3.0], [3.0, -2.0, 1.0], [2.0, 2.0, 2.0], [0.0, 4.0, -8.0]],
        [[-4.0, 0.0, 2.0], [-2.0, 2.0, 0.5], [9.0, 9.0, 9.0], [9.0, 9.0, 9.0]],  # last two: padding
    ])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    return hidden, mask


@register("nb03.max_pool")
class MaxPool(FunctionExercise):
    function_name = "max_pool"
    library_function = "lmguide.embeddings.max_pool"
    prompt = ("Section 1 pooled with a masked mean. Some sentence encoders pool with a max instead: each feature "
              "takes its largest value over the text's tokens. Write max_pool(hidden, mask): (B, T, H) -> (B, H), "
              "where padding (mask 0) must never win. Check it with q.check(max_pool).")
    hints = (
        "hidden.amax(dim=1) takes the max over the tokens; the padding tokens' vectors are still in there.",
        "Multiplying by the mask sets padding to 0, and 0 beats a negative feature. What value can never be the max?",
    )
    solution_code = """
def max_pool(hidden, mask):
    padding = (mask == 0).unsqueeze(-1)                          # (B, T, 1): True on padding
    return hidden.masked_fill(padding, float("-inf")).amax(dim=1)  # (B, H): padding can never win
"""
    wrong_example = staticmethod(lambda hidden, mask: hidden.amax(dim=1))  # the padding's 9s win

    def solve(self):
        from lmguide.embeddings import max_pool

        return max_pool

    def solution(self) -> None:
        print("Solution:\n" + self.solution_code.strip())
        hidden, mask = _padded_batch()
        print(f"Answer: {self.solve()(hidden, mask).tolist()} (the example batch; text 2 has two padding tokens)")

    def diagnose_function(self, answer, expected):
        hidden, mask = _padded_batch()
        got = answer(hidden.clone(), mask.clone())
        want = expected(hidden, mask)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return (f"for hidden (2, 4, 3) and mask (2, 4) your function returned {shape}; "
                    "expected (2, 3), one vector per text.")
        got = got.float()
        if torch.allclose(got, want, atol=1e-5):
            return None
        if torch.allclose(got, hidden.amax(dim=1), atol=1e-5):
            return "the padding wins: text 2's max is 9 everywhere, the value of its padding tokens; leave them out."
        if torch.allclose(got, (hidden * mask[..., None]).amax(dim=1), atol=1e-5):
            return ("you zeroed the padding, but for text 2's first feature (-4 and -2 on its real tokens) "
                    "the padding's 0 is still the max; give padding a value that can never win.")
        from lmguide.embeddings import mean_pool

        if torch.allclose(got, mean_pool(hidden, mask), atol=1e-5):
            return "that is the masked mean of section 1; this exercise asks for the max of each feature."
        if torch.allclose(got, hidden.amin(dim=1), atol=1e-5) or torch.allclose(
                got, hidden.masked_fill(mask[..., None] == 0, float("inf")).amin(dim=1), atol=1e-5):
            return "that is the minimum; take the largest value of each feature."
        return f"text 1 should pool to one max per feature over its 4 tokens; you got {got[0].tolist()}."


@register("nb03.f1")
class SquadF1(NumberExercise):
    prompt = ("Gold answer: 'the Bennet sisters'. The model predicts 'Bennet sisters at Longbourn'. "
              "What is the SQuAD F1 score (a number between 0 and 1)?")
    hints = (
        "Normalise both first: lowercase, drop punctuation and the words a/an/the. Then count shared words.",
        "Gold words: bennet, sisters (2). Predicted: bennet, sisters, at, longbourn (4). "
        "Precision = shared/predicted, recall = shared/gold, F1 = 2PR/(P+R).",
    )
    solution_code = """
from lmguide.qa import f1_score
f1_score("Bennet sisters at Longbourn", "the Bennet sisters")   # P = 2/4, R = 2/2
"""
    wrong_example = 0.571  # 'the' kept in the gold answer: P = 2/4, R = 2/3

    def solve(self):
        from lmguide.qa import f1_score

        return f1_score("Bennet sisters at Longbourn", "the Bennet sisters")

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if message is None:
            return None
        known = {0.0: "0 is the exact-match score; F1 gives credit for the shared words 'bennet' and 'sisters'.",
                 0.5: "0.5 is the precision alone (2 of 4 predicted words are right); F1 also uses recall.",
                 1.0: "1.0 is the recall alone (both gold words were found); F1 also uses precision.",
                 0.571: "that keeps 'the' in the gold answer; SQuAD normalisation drops a/an/the first."}
        for value, why in known.items():
            if abs(float(answer) - value) < 2e-3:
                return why
        return message


@register("nb03.joint_span")
class JointSpan(Exercise):
    prompt = ("Tokens: 0 [CLS], 1-3 the question, 4 [SEP], 5-9 the context, 10 [SEP]. "
              "start = [5, 0, 9, 0, 0, 0, 3, 0, 1, 1, 0], end = [5, 0, 0, 8, 0, 4, 0, 1, 2, 3, 0]. "
              "Which (start, end) pair would lmguide.qa.best_span choose (max_answer_len=3)?")
    hints = (
        "Separate argmaxes give start 2, end 3: question tokens. Within the context alone they give start 6, "
        "end 5: an end before its start. So score pairs, not positions.",
        "Try every pair with 5 <= start <= end <= 9 and end - start + 1 <= 3; keep the largest start[s] + end[e].",
    )
    solution_code = """
from lmguide.qa import best_span
start = [5, 0, 9, 0, 0, 0, 3, 0, 1, 1, 0]
end   = [5, 0, 0, 8, 0, 4, 0, 1, 2, 3, 0]
context = [5 <= i <= 9 for i in range(11)]
best_span(start, end, context, max_answer_len=3)[:2]
"""
    wrong_example = (2, 3)  # the separate argmaxes: a span inside the question

    start = [5, 0, 9, 0, 0, 0, 3, 0, 1, 1, 0]
    end = [5, 0, 0, 8, 0, 4, 0, 1, 2, 3, 0]

    def solve(self):
        from lmguide.qa import best_span

        context = [5 <= i <= 9 for i in range(len(self.start))]
        return best_span(self.start, self.end, context, max_answer_len=3)[:2]

    def parse(self, answer):
        text = answer
        if isinstance(answer, str):  # "(6, 8)", "6,8", "6 8"
            text = re.findall(r"-?\d+", answer)
        try:
            s, e = (int(x) for x in text)
        except (TypeError, ValueError):
            raise AnswerError(f"answer with a pair of token positions, (start, end), two whole numbers "
                              f"(got {answer!r}).") from None
        return s, e

    def diagnose(self, answer, expected):
        s, e = answer
        if (s, e) == tuple(expected):
            return None
        if not (5 <= s <= 9 and 5 <= e <= 9):
            return f"({s}, {e}) uses tokens outside the context (5..9); an answer is copied from the context only."
        if e < s:
            return f"({s}, {e}) ends before it starts; the decoder only scores pairs with start <= end."
        if e - s + 1 > 3:
            return f"({s}, {e}) is {e - s + 1} tokens long; max_answer_len=3 allows at most 3."
        return (f"({s}, {e}) is legal but scores {self.start[s] + self.end[e]}; another legal pair scores "
                f"{self.start[expected[0]] + self.end[expected[1]]}.")
