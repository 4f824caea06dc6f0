"""Exercises for notebook 01 (transformer architecture)."""
from __future__ import annotations

from types import SimpleNamespace

from lmguide.exercises import ChoiceExercise, NumberExercise, register
from lmguide.params import gpt2_param_count

# a small GPT-2, close to lmguide's "small" model; plain numbers so the learner can do the sum
_CONFIG = dict(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4)


@register("nb01.param_count")
class ParamCount(NumberExercise):
    prompt = (f"How many parameters has GPT2LMHeadModel(GPT2Config(**{_CONFIG}))? Work it out with "
              "the formula (embeddings + attention + MLP + layer norms), not with model.parameters().")
    hints = (
        "Token table V*d, position table P*d. Each block has c_attn (d -> 3d), c_proj (d -> d), "
        "c_fc (d -> 4d), mlp c_proj (4d -> d), each with a bias, and two layer norms.",
        "A layer norm has a scale and a shift (2*d). There is one more layer norm, ln_f, after "
        "the last block. The LM head shares the token table's weights.",
        "Per block: 4*d*d + 4*d (attention) + 8*d*d + 5*d (MLP) + 4*d (layer norms).",
    )
    solution_code = """
V, P, d, L = 4096, 256, 128, 4
attention = L * (d * 3 * d + 3 * d + d * d + d)
mlp = L * (d * 4 * d + 4 * d + 4 * d * d + d)
layer_norm = (2 * L + 1) * 2 * d
V * d + P * d + attention + mlp + layer_norm   # LM head tied: counted once
"""
    rel_tol = 0.0  # parameter counts are exact integers
    wrong_example = 1_874_688  # counted the LM head as separate weights

    def _parts(self):
        return gpt2_param_count(SimpleNamespace(**_CONFIG))

    def solve(self):
        return self._parts()["total"]

    def diagnose(self, answer, expected):
        message = super().diagnose(answer, expected)
        if message is None:
            return None
        parts, c = self._parts(), _CONFIG
        d, L, inner = c["n_embd"], c["n_layer"], 4 * c["n_embd"]
        biases = L * (3 * d + d + inner + d)
        known_slips = {
            expected + parts["token_embedding"]: "you counted the LM head separately; GPT-2 ties it to the "
                                                 "token embedding, so its weights count once.",
            expected - parts["position_embedding"]: "you left out the position embedding table (n_positions x n_embd).",
            expected - parts["layer_norm"]: "you left out the layer norms (2 per block plus ln_f, each 2 x n_embd).",
            expected - parts["layer_norm"] // 2: "each layer norm has a shift (bias) as well as a scale.",
            expected - 2 * d: "you forgot the final layer norm ln_f after the last block.",
            expected - biases: "you left out the biases of the four linear layers in each block.",
        }
        value = float(answer)
        if not value.is_integer():
            return f"a parameter count is a whole number (got {value:g})."
        if int(value) in known_slips:
            return f"{int(value):,} is not it: {known_slips[int(value)]}"
        direction = "too high" if value > expected else "too low"
        gap = abs(int(value) - expected)
        return f"{int(value):,} is {direction} by {gap:,} parameter{'s' if gap > 1 else ''}."


@register("nb01.encoder_mask")
class EncoderMask(ChoiceExercise):
    prompt = ("A BERT-style encoder reads a batch of sentences padded to the same length. "
              "Which mask does its self-attention use?")
    choices = {
        "A": "a causal mask: token t sees only tokens 0..t",
        "B": "a padding mask only: every real token sees every real token, before and after it",
        "C": "a causal mask combined with the padding mask",
        "D": "no mask at all: padding tokens are ordinary tokens",
    }
    answer_letter = "B"
    why_wrong = {
        "A": "a causal mask is for decoders that predict the next token; an encoder reads the whole "
             "sentence at once, so it may look ahead.",
        "C": "that is what a decoder uses on a padded batch; an encoder has no reason to hide the future.",
        "D": "without a mask the real tokens would mix in the padding's vectors, so the output "
             "would change with the batch's padding.",
    }
    hints = ("Is an encoder ever asked to predict a token it could already see?",
             "Compare lg.attention.causal_mask(5) with lg.attention.bidirectional_mask(mask).")
    solution_code = "lg.attention.bidirectional_mask(attention_mask)  # (B, 1, T, T), True where the key is real"
    wrong_example = "A"
