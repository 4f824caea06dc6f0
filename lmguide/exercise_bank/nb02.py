"""Exercises for notebook 02 (how an LLM generates text)."""
from __future__ import annotations

import torch

from lmguide.exercises import ChoiceExercise, FunctionExercise, NumberExercise, register
from lmguide.sampling import top_k_filter, top_p_filter

# fixed logits for checking a learner's top-k: distinct values, the best ones scattered
_LOGITS = torch.tensor([2.0, -1.0, 3.5, 0.5, 3.0, -2.0, 1.0, 0.0, 2.5, -0.5])


def _keep_all(logits, k):
    return logits.clone()  # forgets to filter: a wrong answer for the tests


@register("nb02.top_k")
class TopK(FunctionExercise):
    function_name = "top_k"
    library_function = "lmguide.sampling.top_k_filter"
    prompt = ("Write top_k(logits, k) for a 1-D tensor of logits: keep the k largest values unchanged "
              "and set every other entry to float('-inf'). Check it with q.check(top_k).")
    hints = (
        "torch.topk(logits, k) gives the k largest values and their indices.",
        "Start from torch.full_like(logits, float('-inf')) and put the kept values back at their indices.",
    )
    solution_code = """
def top_k(logits, k):
    values, indices = torch.topk(logits, k)
    out = torch.full_like(logits, float("-inf"))
    out[indices] = values
    return out
"""
    wrong_example = staticmethod(_keep_all)

    def solve(self):
        return top_k_filter

    def diagnose_function(self, answer, expected):
        for k in (1, 3, 5):
            want = expected(_LOGITS.clone(), k)
            got = answer(_LOGITS.clone(), k)
            if not isinstance(got, torch.Tensor) or got.shape != _LOGITS.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"top_k should return a tensor shaped like the logits {tuple(_LOGITS.shape)}; got {shape}."
            if bool((got >= 0).all()) and abs(float(got.sum()) - 1) < 1e-4:
                return "you returned probabilities; return the filtered logits (softmax comes later, when sampling)."
            kept = torch.isfinite(got)
            removed = got[~torch.isfinite(want)]  # what the learner put where -inf belongs
            if bool(kept.all()) and bool((removed == removed[0]).all()):
                return (f"you set the removed logits to {float(removed[0]):g}; use float('-inf') so softmax "
                        "gives them probability 0.")
            if int(kept.sum()) != k:
                return f"your top-k kept {int(kept.sum())} tokens; expected {k} (with k={k})."
            if not torch.equal(kept, torch.isfinite(want)):
                return (f"with k={k} you kept the right number of tokens but not the largest logits "
                        f"(kept ids {kept.nonzero().flatten().tolist()}).")
            if not torch.equal(got[kept], _LOGITS[kept]):
                return "the kept logits must keep their values: filter, don't rescale or softmax them."
            if not bool((got[~kept] == float("-inf")).all()):
                return "removed tokens must be set to float('-inf') so softmax gives them probability 0."
        return None


@register("nb02.temperature_zero")
class TemperatureZero(ChoiceExercise):
    prompt = "You sample with softmax(logits / T). What happens to the distribution as T -> 0?"
    choices = {
        "A": "it becomes uniform: every token is equally likely",
        "B": "all the probability goes to the highest-logit token, so sampling becomes greedy decoding",
        "C": "nothing: softmax does not care how the logits are scaled",
        "D": "rare tokens become more likely, so the text gets more creative",
    }
    answer_letter = "B"
    why_wrong = {
        "A": "that is T -> infinity: dividing by a huge T squashes every logit towards 0.",
        "C": "softmax ignores *adding* a constant to the logits, not multiplying them.",
        "D": "that is what a high temperature does; a low one makes the favourite even more likely.",
    }
    hints = ("Dividing by a small T multiplies the gaps between logits by a large number.",
             "Try torch.softmax(torch.tensor([2.0, 1.0, 0.0]) / 0.01, dim=0).")
    solution_code = "torch.softmax(logits / 1e-3, dim=-1)  # ~ one-hot at logits.argmax()"
    wrong_example = "C"


# token probabilities for the nucleus question, already sorted
_PROBS = (0.5, 0.2, 0.15, 0.1, 0.05)
_P = 0.8


@register("nb02.top_p_count")
class TopPCount(NumberExercise):
    prompt = (f"The next-token probabilities are {_PROBS} and you sample with top_p={_P}. "
              "How many tokens can still be sampled?")
    hints = ("Add the probabilities from the largest down and stop as soon as the total reaches top_p.",
             "0.5 + 0.2 = 0.7 is not yet 0.8.")
    solution_code = f"""
logits = torch.tensor({_PROBS}).log()
torch.isfinite(lg.sampling.top_p_filter(logits, {_P})).sum()
"""
    rel_tol = 0.0
    wrong_example = 2

    def solve(self):
        logits = torch.tensor(_PROBS).log()
        return int(torch.isfinite(top_p_filter(logits, _P)).sum())

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if message is None or message.startswith("expected a number"):
            return message
        value = float(answer)
        if value.is_integer() and 1 <= value <= len(_PROBS):
            n = int(value)
            mass = sum(_PROBS[:n])
            if n < expected:
                return f"the top {n} tokens hold only {mass:.2f}, less than top_p={_P}: keep adding tokens."
            return (f"you kept too many: the top {expected} already hold {sum(_PROBS[:expected]):.2f} >= {_P}, "
                    "and top-p keeps the smallest such set.")
        return message


_PROMPT_TOKENS, _MAX_LENGTH = 12, 50


@register("nb02.max_length")
class MaxLength(NumberExercise):
    prompt = (f"Your prompt is {_PROMPT_TOKENS} tokens long and you call "
              f"model.generate(input_ids, max_length={_MAX_LENGTH}). The model never emits EOS. "
              "How many NEW tokens do you get?")
    hints = ("max_length is the length of the whole output sequence, prompt included.",
             f"The output holds {_MAX_LENGTH} tokens; {_PROMPT_TOKENS} of them are the prompt.")
    solution_code = f"""
output = model.generate(input_ids, attention_mask=mask, max_length={_MAX_LENGTH})
output.shape[1] - input_ids.shape[1]   # {_MAX_LENGTH} - {_PROMPT_TOKENS}; use max_new_tokens to ask for new ones
"""
    rel_tol = 0.0
    wrong_example = _MAX_LENGTH

    def solve(self):
        return _MAX_LENGTH - _PROMPT_TOKENS

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if message is None or message.startswith("expected a number"):
            return message
        if float(answer) == _MAX_LENGTH:
            return (f"max_length counts the prompt too: the output is {_MAX_LENGTH} tokens in all. "
                    f"Only max_new_tokens={_MAX_LENGTH} would give {_MAX_LENGTH} new ones.")
        if float(answer) == _MAX_LENGTH + _PROMPT_TOKENS:
            return f"that is the output length with max_new_tokens={_MAX_LENGTH}; max_length includes the prompt."
        return message
