"""Exercises for notebook 02 (how an LLM generates text)."""
from __future__ import annotations

import torch

from lmguide.exercises import FunctionExercise, NumberExercise, register
from lmguide.sampling import top_p_filter

# fixed logits for checking a learner's min-p: distinct values, the best ones scattered
_LOGITS = torch.tensor([2.0, -1.0, 3.5, 0.5, 3.0, -2.0, 1.0, 0.0, 2.5, -0.5])
_MIN_PS = (0.05, 0.2, 0.5, 0.9)


def min_p_reference(logits, min_p):
    """Keep the tokens whose probability is at least ``min_p`` times the top token's; -inf the rest."""
    probs = torch.softmax(logits, dim=-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, float("-inf"))


def _absolute_min_p(logits, min_p):
    probs = torch.softmax(logits, dim=-1)  # forgets to scale by the top probability: a wrong answer
    return logits.masked_fill(probs < min_p, float("-inf"))


@register("nb02.min_p")
class MinP(FunctionExercise):
    function_name = "min_p"
    library_function = "transformers' MinPLogitsWarper (generate(..., min_p=...))"
    prompt = ("Write min_p(logits, min_p) for a 1-D tensor of logits: keep every token whose probability "
              "is at least min_p times the probability of the most likely token, unchanged, and set the "
              "others to float('-inf'). (Min-p sampling: a cut that follows the model's confidence, "
              "like top-p, but set relative to the favourite.) Check it with q.check(min_p).")
    hints = (
        "Turn the logits into probabilities with torch.softmax first; the threshold is a probability.",
        "The threshold is min_p * probs.max(), not min_p itself; logits.masked_fill(mask, float('-inf')) "
        "removes the tokens below it.",
    )
    solution_code = """
def min_p(logits, min_p):
    probs = torch.softmax(logits, dim=-1)
    threshold = min_p * probs.max()
    return logits.masked_fill(probs < threshold, float("-inf"))
"""
    wrong_example = staticmethod(_absolute_min_p)

    def solve(self):
        return min_p_reference

    def diagnose_function(self, answer, expected):
        probs = torch.softmax(_LOGITS, dim=-1)
        for p in _MIN_PS:
            want = expected(_LOGITS.clone(), p)
            got = answer(_LOGITS.clone(), p)
            if not isinstance(got, torch.Tensor) or got.shape != _LOGITS.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"min_p should return a tensor shaped like the logits {tuple(_LOGITS.shape)}; got {shape}."
            kept, should = torch.isfinite(got), torch.isfinite(want)
            if bool(kept.all()) and not bool(should.all()):
                removed = got[~should]
                if bool((got >= 0).all()) and abs(float(got.sum()) - 1) < 1e-4:
                    return "you returned probabilities; return the filtered logits (softmax comes later)."
                if bool((removed == removed[0]).all()) and float(removed[0]) != float(_LOGITS[~should][0]):
                    return (f"you set the removed logits to {float(removed[0]):g}; use float('-inf') so "
                            "softmax gives them probability 0.")
                return f"with min_p={p} nothing was removed; expected {int(should.sum())} of 10 tokens kept."
            if torch.equal(kept, probs >= p) and not torch.equal(kept, should):
                return (f"with min_p={p} you kept the tokens whose probability is at least {p}; the cut is "
                        f"relative: min_p times the top token's probability ({float(probs.max()):.3f}).")
            if torch.equal(kept, _LOGITS >= p * _LOGITS.max()) and not torch.equal(kept, should):
                return "you compared the logits; the rule is about probabilities: apply softmax first."
            if not torch.equal(kept, should):
                return (f"with min_p={p} you kept {int(kept.sum())} tokens (ids {kept.nonzero().flatten().tolist()}); "
                        f"expected {int(should.sum())}.")
            if not torch.equal(got[kept], _LOGITS[kept]):
                return "the kept logits must keep their values: filter, don't rescale or softmax them."
            if not bool((got[~kept] == float("-inf")).all()):
                return "removed tokens must be set to float('-inf') so softmax gives them probability 0."
        return None


_CACHE_PROMPT, _CACHE_NEW = 10, 100


@register("nb02.no_cache_positions")
class NoCachePositions(NumberExercise):
    prompt = (f"Greedy decoding WITHOUT the KV cache, as in section 2.1: each step runs the model over "
              f"every token so far and appends one. The prompt is {_CACHE_PROMPT} tokens and you ask for "
              f"{_CACHE_NEW} new ones. How many token positions does the model process in all, summed "
              f"over the steps? (With the cache it is {_CACHE_PROMPT} for the prompt, then 1 per later "
              f"step: {_CACHE_PROMPT + _CACHE_NEW - 1}.)")
    hints = (
        "Step 1 reads the prompt alone; every later step reads one token more than the one before.",
        "The last new token is produced by the last step and never read back. Add up an arithmetic series.",
    )
    solution_code = f"""
answer = sum({_CACHE_PROMPT} + step for step in range({_CACHE_NEW}))   # {_CACHE_PROMPT}, {_CACHE_PROMPT + 1}, ..., {_CACHE_PROMPT + _CACHE_NEW - 1}
"""
    rel_tol = 0.0
    exact = True  # a count
    wrong_example = _CACHE_PROMPT + _CACHE_NEW - 1  # the with-cache figure

    def solve(self):
        return sum(_CACHE_PROMPT + step for step in range(_CACHE_NEW))

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        try:
            value = float(answer)
        except (TypeError, ValueError):
            return message
        if message is None:
            return None
        n, t = _CACHE_NEW, _CACHE_PROMPT
        if value in (t + n - 1, t + n):
            return "that is the count with the cache; without it every step re-reads all the tokens so far."
        if value == sum(t + step for step in range(1, n + 1)):
            return "one step too far along: the first step reads only the prompt, and the last new token is never read."
        if value == sum(t + step for step in range(n + 1)):
            return "one step too many: the last new token is produced, never fed back in."
        if value == n * (t + n):
            return "not every step reads the full final length: step 1 reads the prompt, each later step one more."
        if value == n * (n + 1) / 2 or value == n * n / 2:
            return "that leaves out the prompt, which every step reads again."
        return message


# token probabilities for the nucleus question, already sorted
_PROBS = (0.5, 0.2, 0.15, 0.1, 0.05)
_P = 0.8


@register("nb02.top_p_count")
class TopPCount(NumberExercise):
    prompt = (f"The next-token probabilities are {_PROBS} and you sample with top_p={_P}. "
              "How many tokens can still be sampled?")
    hints = ("Add the probabilities from the largest down and stop as soon as the total reaches top_p.",
             "Write down the running totals from the largest probability down; the first total that "
             "reaches top_p tells you how many tokens are in the nucleus.")
    solution_code = f"""
logits = torch.tensor({_PROBS}).log()
torch.isfinite(lg.sampling.top_p_filter(logits, {_P})).sum()
"""
    rel_tol = 0.0
    exact = True  # a count
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
             "The output of generate holds max_length tokens in all, and the prompt is among them.")
    solution_code = f"""
output = model.generate(input_ids, attention_mask=mask, max_length={_MAX_LENGTH})
output.shape[1] - input_ids.shape[1]   # {_MAX_LENGTH} - {_PROMPT_TOKENS}; use max_new_tokens to ask for new ones
"""
    rel_tol = 0.0
    exact = True  # a count
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
