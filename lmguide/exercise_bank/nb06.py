"""Exercises for notebook 06 (knowledge distillation)."""
from __future__ import annotations

import math

import torch

from lmguide.exercises import FunctionExercise, NumberExercise, register

# the teacher's next-token probabilities after "It is a truth universally ..." (made up, but plausible)
_TEACHER_P = {"acknowledged": 0.90, "known": 0.09, "denied": 0.01}


@register("nb06.soft_probability")
class SoftProbability(NumberExercise):
    prompt = ("A teacher gives the next word after 'It is a truth universally' the probabilities "
              "acknowledged 0.90, known 0.09, denied 0.01 (and nothing else). At temperature T = 2, "
              "what probability does the softened distribution give 'known'? Answer as a number in [0, 1].")
    hints = ("Softening divides the *logits* by T, not the probabilities. The log-probabilities are valid logits.",
             "softmax(log(p) / T) is proportional to p ** (1 / T): take square roots, then make them sum to 1.")
    solution_code = """
p = torch.tensor([0.90, 0.09, 0.01])
lg.distill.soften(p.log(), 2.0)[1].item()
"""
    rel_tol = 0.02  # 0.22 (two decimals) is accepted
    wrong_example = 0.09

    def solve(self):
        p = torch.tensor(list(_TEACHER_P.values()))
        return round(torch.softmax(p.log() / 2.0, -1)[1].item(), 4)

    def accepts(self, value, expected):  # 22.2 typed for 22.2%: a percentage without its sign
        return super().accepts(value, expected) or (
            1 < value <= 100 and math.isclose(value / 100, expected, rel_tol=self.rel_tol))

    def describe_miss(self, value, expected):
        close = lambda x: math.isclose(value, x, rel_tol=self.rel_tol)
        if close(0.09):
            return "0.09 is the teacher's own probability (T = 1); at T = 2 the distribution is flatter."
        if close(0.045) or close(0.09 / 2 / (0.9 / 2 + 0.09 / 2 + 0.01 / 2)):
            return "dividing the probabilities by T changes nothing once they are renormalised; divide the logits."
        if close(0.09 ** 2 / (0.9 ** 2 + 0.09 ** 2 + 0.01 ** 2)):
            return "that is T = 1/2 (a sharper distribution); T = 2 takes p ** (1/2), not p ** 2."
        if close(math.sqrt(0.09)):
            return "that is sqrt(0.09) before renormalising: divide by the sum over all three words."
        return super().describe_miss(value, expected)


@register("nb06.student_share")
class StudentShare(NumberExercise):
    prompt = ("Make a 2-layer student of austen-gpt-large with lg.distill.student_from_teacher. What "
              "percentage of the teacher's parameters does it keep? (Answer in percent, e.g. 37.5.)")
    hints = ("sum(p.numel() for p in model.parameters()) counts a model's parameters (tied weights once).",
             "The student keeps the token and position embeddings whole: only the blocks are fewer.")
    solution_code = """
student = lg.distill.student_from_teacher(teacher, 2)
count = lambda m: sum(p.numel() for p in m.parameters())
100 * count(student) / count(teacher)
"""
    rel_tol = 0.005
    wrong_example = 25.0

    def solve(self):
        from lmguide import params
        from lmguide.zoo import path

        from transformers import GPT2Config

        config = GPT2Config.from_pretrained(path("austen-gpt-large"))
        teacher = params.gpt2_param_count(config)["total"]
        config.n_layer = 2
        return round(100 * params.gpt2_param_count(config)["total"] / teacher, 2)

    def describe_miss(self, value, expected):
        if 0 < value < 1 and math.isclose(value * 100, expected, rel_tol=0.01):
            return f"that looks like a fraction ({value:g}); give it in percent ({value * 100:.1f})."
        if math.isclose(value, 25.0, rel_tol=0.01):
            return "25% is 2 of the 8 layers; the embeddings are not cut, so the share is larger."
        if value > 100:
            return f"{value:g}% is more than the teacher has; divide student by teacher, not the other way."
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
