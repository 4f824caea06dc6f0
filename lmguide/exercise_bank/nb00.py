"""Exercises for 00_start_here."""
from __future__ import annotations

import math

from lmguide.exercises import ChoiceExercise, NumberExercise, register

# AustenGPT-large on the whole test split: its figure rounded, the split's size and its token count
_BPB, _BYTES, _TOKENS = 1.37, 145_208, 35_912


def _as_float(answer) -> float | None:
    """The learner's answer as a float, or None when it is not a number at all."""
    try:
        return float(str(answer).replace(",", "")) if isinstance(answer, str) else float(answer)
    except (TypeError, ValueError):
        return None


@register("nb00.perplexity")
class PerplexityFromBitsPerByte(NumberExercise):
    prompt = (f"A model needs {_BPB} bits per byte on a text of {_BYTES:,} bytes, which its tokenizer "
              f"cuts into {_TOKENS:,} tokens. What is its perplexity (per token)? "
              "Two significant figures are enough.")
    hints = (
        "Perplexity is 2 to the power of the average number of bits per *token*; you are given bits per *byte*.",
        "First turn bits per byte into bits for the whole text, then share them out over the tokens.",
    )
    solution_code = f"""
bits = {_BPB} * {_BYTES}          # bits for the whole text
bits_per_token = bits / {_TOKENS}
answer = 2 ** bits_per_token       # the same as math.exp(mean loss per token in nats)
"""
    rel_tol = 0.01
    wrong_example = round(2 ** _BPB, 2)  # 2 ** bits-per-byte: forgot that perplexity is per token

    def solve(self):
        return 2 ** (_BPB * _BYTES / _TOKENS)

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        value = _as_float(answer)
        if message is None or value is None:
            return message
        bits_per_token = _BPB * _BYTES / _TOKENS
        close = lambda x: math.isclose(value, x, rel_tol=0.02)  # noqa: E731
        if close(2 ** _BPB):
            return ("that is 2 to the bits per byte; perplexity counts per token, and each token here "
                    "covers several bytes: turn bits per byte into bits per token first.")
        if close(bits_per_token):
            return "that is the number of bits per token; perplexity is 2 to that power."
        if close(math.exp(bits_per_token)):
            return "bits are base 2: raise 2 (not e) to the number of bits per token."
        if close(2 ** (_BPB * _TOKENS / _BYTES)):
            return "bytes and tokens are swapped: a token is several bytes, so bits per token > bits per byte."
        return message


@register("nb00.which_model")
class WhichModel(ChoiceExercise):
    prompt = ("You need to find, among 10,000 support tickets, the ones most similar to a new ticket, "
              "on a laptop, in well under a second per query. Which zoo model fits best?")
    choices = {
        "A": "smollm2-135m: it is the biggest, so it understands the most",
        "B": "minilm-l6: an encoder that turns each ticket into one vector to compare",
        "C": "austen-gpt-large: it writes fluent English",
    }
    answer_letter = "B"
    why_wrong = {
        "A": "a generative LLM produces text token by token; it gives no ready-made vector to compare, "
             "and it is about six times larger than MiniLM, so every ticket costs more.",
        "C": "AustenGPT generates Austen-style text; it was never trained to place similar meanings near each other.",
    }
    hints = ("Similarity search compares vectors. Which model is built to output one vector per text?",)
    solution_code = 'answer = "B"  # embed every ticket once with minilm-l6, then compare cosine similarities'
    wrong_example = "A"
