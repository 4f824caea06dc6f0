"""Exercises for notebook 01 (transformer architecture)."""
from __future__ import annotations

from types import SimpleNamespace

from lmguide.exercises import ChoiceExercise, FunctionExercise, NumberExercise, register
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


# austen-gpt-small's shape with GPT-2's vocabulary instead of its own 4,096 tokens
_BIG_VOCAB = dict(vocab_size=50257, n_positions=256, n_embd=160, n_layer=4, n_head=5)


@register("nb01.embedding_share")
class EmbeddingShare(NumberExercise):
    prompt = (f"Give austen-gpt-small (4 layers, width 160, context 256) GPT-2's 50,257-token vocabulary: "
              f"GPT2Config(**{_BIG_VOCAB}). What fraction of its parameters is the token embedding "
              "table? Answer as a fraction between 0 and 1.")
    hints = (
        "The token table has vocab_size x n_embd parameters; divide by the model's total.",
        "lmguide.params.gpt2_param_count(config) gives both: parts['token_embedding'] / parts['total'].",
    )
    solution_code = """
from types import SimpleNamespace
from lmguide.params import gpt2_param_count
parts = gpt2_param_count(SimpleNamespace(vocab_size=50257, n_positions=256, n_embd=160, n_layer=4))
parts["token_embedding"] / parts["total"]
"""
    rel_tol = 0.005  # 0.86 and 0.863 are both fine
    wrong_example = 0.35  # austen-gpt-small's share with its own 4,096-token vocabulary, roughly

    def _parts(self):
        return gpt2_param_count(SimpleNamespace(**_BIG_VOCAB))

    def solve(self):
        parts = self._parts()
        return parts["token_embedding"] / parts["total"]

    def diagnose(self, answer, expected):
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            return super().diagnose(answer, expected)
        parts = self._parts()
        with_positions = (parts["token_embedding"] + parts["position_embedding"]) / parts["total"]
        # the position table adds only 0.5%: a slip to name before the tolerance would hide it
        if abs(answer - with_positions) < min(abs(answer - expected), 0.001):
            return "that includes the position table; the question asks for the token table alone."
        message = super().diagnose(answer, expected)
        if message is None:
            return None
        if 1 < answer <= 100 and abs(answer / 100 - expected) <= self.rel_tol * expected:
            return f"{answer:g} looks like a percentage; give it as a fraction ({answer / 100:.3f})."
        if abs(answer - parts["token_embedding"] / parts["non_embedding"]) <= 0.01 * expected:
            return "you divided by the non-embedding parameters; divide by the total, embeddings included."
        return message


def _causal_mask_reference(T):
    import torch

    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def _causal_mask_transposed(T):
    import torch

    return torch.triu(torch.ones(T, T, dtype=torch.bool))  # the future instead of the past: wrong


@register("nb01.causal_mask")
class CausalMask(FunctionExercise):
    function_name = "causal_mask"
    library_function = "lmguide.attention.causal_mask"
    prompt = ("Write causal_mask(T): a (T, T) bool tensor where entry [t, s] is True when query t may "
              "attend to key s, i.e. when s <= t. Check it with q.check(causal_mask).")
    hints = (
        "Row t is the query; it may look at keys 0..t: itself and the past, never the future.",
        "torch.tril keeps the lower triangle, diagonal included: torch.tril(torch.ones(T, T, dtype=torch.bool)).",
    )
    solution_code = """
def causal_mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))
"""
    wrong_example = staticmethod(_causal_mask_transposed)

    def solve(self):
        return _causal_mask_reference

    def diagnose_function(self, answer, expected):
        import torch

        for T in (1, 4, 7):
            got, want = answer(T), expected(T)
            if got is None:
                return "your function returned None; return the (T, T) mask tensor."
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != (T, T):
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"causal_mask({T}) should be a ({T}, {T}) tensor; got {shape}."
            if got.dtype != torch.bool:
                return (f"return a bool tensor (True = may attend), not {got.dtype}; "
                        "scaled_dot_product_attention reads float masks as numbers to add.")
            if torch.equal(got, want):
                continue
            if torch.equal(got, want.T):
                return "your mask lets each token see the future and not the past: it is the transpose (use tril)."
            if torch.equal(got, want & ~torch.eye(T, dtype=torch.bool)):
                return "the diagonal is False, so a token cannot see itself; include the diagonal."
            if bool(got.all()):
                return "everything is True: that is an encoder's (bidirectional) mask, not a causal one."
            return f"causal_mask({T}) is wrong at {int((got != want).sum())} of {T * T} entries."
        return None
