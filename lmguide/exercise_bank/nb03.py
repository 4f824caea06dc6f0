"""Exercises for notebook 03: SLM embeddings and extractive QA."""
from __future__ import annotations

import torch

from lmguide.exercises import Exercise, FunctionExercise, NumberExercise, register


def _padded_batch():
    """Two texts, the second padded: hidden states (2, 4, 3) and mask (2, 4)."""
    hidden = torch.tensor([
        [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 2.0, 2.0], [0.0, 4.0, 8.0]],
        [[4.0, 0.0, 2.0], [2.0, 2.0, 0.0], [9.0, 9.0, 9.0], [9.0, 9.0, 9.0]],  # last two: padding
    ])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    return hidden, mask


@register("nb03.mean_pool")
class MeanPool(FunctionExercise):
    function_name = "mean_pool"
    prompt = ("Write mean_pool(hidden, mask): average each text's token vectors (B, T, H) -> (B, H), "
              "leaving out padding (mask 0). Check it with q.check(mean_pool).")
    hints = (
        "Padding tokens still have vectors; they must not count. Multiply them by 0 first.",
        "mask[..., None] has shape (B, T, 1): multiply, sum over T (dim=1), then divide by mask.sum(1, keepdim=True).",
    )
    solution_code = """
def mean_pool(hidden, mask):
    mask = mask.unsqueeze(-1).to(hidden.dtype)       # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
"""
    wrong_example = staticmethod(lambda hidden, mask: hidden.mean(dim=1))  # averages the padding too

    def solve(self):
        from lmguide.embeddings import mean_pool

        return mean_pool

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
            return f"for hidden (2, 4, 3) and mask (2, 4) your function returned {shape}; expected (2, 3), one vector per text."
        if torch.allclose(got.float(), want, atol=1e-5):
            return None
        if torch.allclose(got.float(), hidden.mean(dim=1), atol=1e-5):
            return "your pooling averages the padding too: text 2 gets the 9s of its two padding tokens; multiply by the mask first."
        if torch.allclose(got.float(), (hidden * mask[..., None]).sum(1) / hidden.shape[1], atol=1e-5):
            return "you zeroed the padding but divided by all 4 positions; divide by the number of real tokens, mask.sum(1)."
        return f"text 2 should pool to {want[1].tolist()} (the mean of its two real tokens); you got {got[1].tolist()}."


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
        if message is None or isinstance(answer, str):
            return message
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

    def diagnose(self, answer, expected):
        try:
            s, e = (int(x) for x in answer)
        except (TypeError, ValueError):
            return f"answer with a pair of token positions such as (6, 8) (got {answer!r})."
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
