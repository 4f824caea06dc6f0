"""Exercises for notebook 06 (knowledge distillation)."""
from __future__ import annotations

import math

import torch

from lmguide.exercises import FunctionExercise, NumberExercise, register

# the teacher's next-token probabilities after "It is a truth universally ..." (made up, but plausible)
_TEACHER_P = {"acknowledged": 0.90, "known": 0.09, "denied": 0.01}


@register("nb06.temperature_for")
class TemperatureFor(NumberExercise):
    prompt = ("A teacher gives the next word after 'It is a truth universally' the probabilities "
              "acknowledged 0.90, known 0.09, denied 0.01 (and nothing else). At what temperature T does the "
              "softened distribution give 'known' a probability of 0.25? (Two significant figures or more.)")
    hints = ("Softening divides the logits by T; log-probabilities are valid logits. Raising T flattens the "
             "distribution, so 'known' rises from 0.09 towards 1/3.",
             "Write known(T) with lg.distill.soften and search: try a few T, then halve the interval.")
    solution_code = """
known = lambda T: lg.distill.soften(torch.tensor([0.90, 0.09, 0.01]).log(), T)[1].item()
low, high = 1.0, 10.0                      # known(1) = 0.09 < 0.25 < known(10)
for _ in range(50):
    mid = (low + high) / 2
    low, high = (mid, high) if known(mid) < 0.25 else (low, mid)
low
"""
    rel_tol = 0.01
    wrong_example = 0.09 / 0.25 * 2  # a proportion, not a softmax

    def solve(self):
        p = torch.tensor(list(_TEACHER_P.values()))
        low, high = 1.0, 10.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if torch.softmax(p.log() / mid, -1)[1].item() < 0.25 else (low, mid)
        return low

    def describe_miss(self, value, expected):
        if math.isclose(value, 1 / expected, rel_tol=0.02):
            return "that is 1/T; softening divides the logits by T, so p ** (1/T) is what the softmax sees."
        if value <= 1:
            return (f"at T = {value:g} the distribution is as sharp as the teacher's or sharper: 'known' stays at or "
                    "below 0.09. Higher T flattens it.")
        return super().describe_miss(value, expected)


@register("nb06.layers_for_half")
class LayersForHalf(NumberExercise):
    exact = True
    unit = "layer"
    prompt = ("Students of austen-gpt-large made by lg.distill.student_from_teacher keep the whole embeddings and "
              "fewer blocks. What is the largest number of blocks a student can keep while holding at most half "
              "of the teacher's parameters?")
    hints = ("sum(p.numel() for p in model.parameters()) counts a model's parameters (tied weights once).",
             "The embeddings are kept whole, so each block is a fixed share: try students of 1, 2, 3 ... blocks.")
    solution_code = """
count = lambda m: sum(p.numel() for p in m.parameters())
shares = {n: count(lg.distill.student_from_teacher(teacher, n)) / count(teacher) for n in range(1, 8)}
max(n for n, share in shares.items() if share <= 0.5)
"""
    wrong_example = 4  # half of the 8 blocks, forgetting the embeddings

    def solve(self):
        from transformers import GPT2Config

        from lmguide import params
        from lmguide.zoo import path

        config = GPT2Config.from_pretrained(path("austen-gpt-large"))
        teacher, layers = params.gpt2_param_count(config)["total"], config.n_layer
        best = 0
        for n in range(1, layers):
            config.n_layer = n
            if params.gpt2_param_count(config)["total"] <= teacher / 2:
                best = n
        return best

    def describe_miss(self, value, expected):
        if value == 4:
            return "4 of 8 blocks is half the blocks, but the embeddings are kept whole, so 4 blocks hold more than half."
        return super().describe_miss(value, expected)


def _forgets_t_squared(student_logits, teacher_logits, k, temperature=2.0):
    from lmguide.distill import topk_soft_loss

    return topk_soft_loss(student_logits, teacher_logits, k, temperature) / temperature ** 2


@register("nb06.topk_soft_loss")
class TopKSoftLoss(FunctionExercise):
    function_name = "topk_soft_loss"
    library_function = "lmguide.distill.topk_soft_loss"
    prompt = ("Storing a teacher's whole 4,096-way distribution for every training token is big; runs that cache "
              "teacher outputs keep only its top k logits. Write topk_soft_loss(student_logits, teacher_logits, k, "
              "temperature=2.0): the soft loss (KL times T^2, averaged over positions) against the teacher's k most "
              "likely tokens only, its probabilities renormalised among those k; the student's log-probabilities "
              "are still over the whole vocabulary. Check it with q.check(topk_soft_loss).")
    hints = ("teacher_logits.topk(k, dim=-1) gives the k largest logits and their token ids.",
             "Teacher: log_softmax of the k kept logits / T. Student: log_softmax over all logits / T, then "
             ".gather(-1, ids) to pick the same k tokens. KL = sum p * (log p - log q), mean over positions, * T^2.")
    solution_code = """
def topk_soft_loss(student_logits, teacher_logits, k, temperature=2.0):
    top, ids = teacher_logits.topk(k, dim=-1)
    log_p = torch.log_softmax(top / temperature, dim=-1)
    log_q = torch.log_softmax(student_logits / temperature, dim=-1).gather(-1, ids)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature ** 2
"""
    wrong_example = staticmethod(_forgets_t_squared)

    def solve(self):
        from lmguide.distill import topk_soft_loss

        return topk_soft_loss

    def diagnose_function(self, answer, expected):
        g = torch.Generator().manual_seed(6)
        s, t = torch.randn(3, 5, 40, generator=g) * 2, torch.randn(3, 5, 40, generator=g) * 2
        for k, temperature in ((40, 2.0), (5, 2.0), (1, 1.0), (8, 4.0)):
            want = expected(s, t, k, temperature).item()
            try:
                got = answer(s.clone(), t.clone(), k, temperature)
            except Exception as exc:
                return f"with k={k}, T={temperature} your function raised {type(exc).__name__}: {exc}."
            if not isinstance(got, torch.Tensor) or got.numel() != 1:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"return one number (a 0-d tensor): the mean over positions; got {shape}."
            got = got.item()
            if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
                continue
            if math.isclose(got * temperature ** 2, want, rel_tol=1e-4):
                return f"with T={temperature} your loss is {temperature ** 2:g}x too small: multiply by T**2."
            if math.isclose(got, want * 15, rel_tol=1e-4):
                return "you summed over the 15 positions; take the mean, so the loss does not grow with the batch."
            return (f"with k={k}, T={temperature} you gave {got:.4f}; expected {want:.4f}"
                    + (" (k = the whole vocabulary must equal lg.distill.soft_loss)" if k == 40 else "") + ".")
        return None
