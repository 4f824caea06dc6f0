"""Exercises for notebook 01 (transformer architecture)."""
from __future__ import annotations

from types import SimpleNamespace

from lmguide.exercises import FunctionExercise, NumberExercise, register
from lmguide.grading import parse_number
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
    exact = True  # a parameter count is a whole number: 1.35 million is not an answer
    unit = "parameter"
    wrong_example = 1_874_688  # counted the LM head as separate weights

    def _parts(self):
        return gpt2_param_count(SimpleNamespace(**_CONFIG))

    def solve(self):
        return self._parts()["total"]

    def diagnose(self, answer, expected):
        value = parse_number(answer)
        if value == expected:
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
        if float(value).is_integer() and int(value) in known_slips:
            return f"{int(value):,} is not it: {known_slips[int(value)]}"
        return self.describe_miss(value, expected)


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
    # the default tolerance, plus rounding: 0.86 and 0.863 are fine, 0.87 (or 0.867, the position table counted) is not
    wrong_example = 0.35  # austen-gpt-small's share with its own 4,096-token vocabulary, roughly

    def _parts(self):
        return gpt2_param_count(SimpleNamespace(**_BIG_VOCAB))

    def solve(self):
        parts = self._parts()
        return parts["token_embedding"] / parts["total"]

    def diagnose(self, answer, expected):
        answer = parse_number(answer)
        parts = self._parts()
        with_positions = (parts["token_embedding"] + parts["position_embedding"]) / parts["total"]
        # the position table adds only 0.5%: a slip to name before the tolerance would hide it
        if abs(answer - with_positions) < min(abs(answer - expected), 0.001):
            return "that includes the position table; the question asks for the token table alone."
        message = super().diagnose(answer, expected)
        if message is None:
            return None
        if 1 < answer <= 100 and abs(answer / 100 - expected) <= 0.005 * expected:
            return f"{answer:g} looks like a percentage; give it as a fraction ({answer / 100:.3f})."
        if abs(answer - parts["token_embedding"] / parts["non_embedding"]) <= 0.01 * expected:
            return "you divided by the non-embedding parameters; divide by the total, embeddings included."
        return message


def _local_mask_reference(T, window):
    import torch

    i = torch.arange(T)
    return (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)  # (T, T): key s <= t, t - s < window


def _local_mask_ignores_window(T, window):
    import torch

    return torch.tril(torch.ones(T, T, dtype=torch.bool))  # the plain causal mask: a wrong answer for the tests


@register("nb01.local_mask")
class LocalCausalMask(FunctionExercise):
    function_name = "local_causal_mask"
    library_function = "lmguide.attention.causal_mask (the window=None case)"
    prompt = ("Sliding-window attention (Mistral, Gemma 2) lets query t see only the last `window` tokens: "
              "itself and the window - 1 before it. Write local_causal_mask(T, window): a (T, T) bool tensor, "
              "True where query t may attend to key s. Check it with q.check(local_causal_mask).")
    hints = (
        "Start from the causal mask of section 3 (key s <= query t), then also require that s is close to t.",
        "With i = torch.arange(T), i[:, None] is the query's position and i[None, :] the key's: compare "
        "their difference with window. Count the keys in one row to check you kept exactly `window`.",
    )
    solution_code = """
def local_causal_mask(T, window):
    i = torch.arange(T)
    query, key = i[:, None], i[None, :]            # (T, 1) and (1, T): broadcast to (T, T)
    return (key <= query) & (query - key < window)  # the past, and at most window - 1 steps back
"""
    wrong_example = staticmethod(_local_mask_ignores_window)
    cases = ((1, 1), (5, 2), (6, 3), (4, 10))  # (T, window); the last: a window longer than the text

    def solve(self):
        return _local_mask_reference

    def diagnose_function(self, answer, expected):
        import torch

        for T, window in self.cases:
            got, want = answer(T, window), expected(T, window)
            call = f"local_causal_mask({T}, {window})"
            if got is None:
                return "your function returned None; return the (T, T) mask tensor."
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != (T, T):
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"{call} should be a ({T}, {T}) tensor; got {shape}."
            if got.dtype != torch.bool:
                return f"return a bool tensor (True = may attend), not {got.dtype}."
            if torch.equal(got, want):
                continue
            causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
            if torch.equal(got, causal):
                return (f"{call} is the plain causal mask: query {T - 1} still sees all {T} keys; "
                        f"with window={window} it may see only {window}.")
            if torch.equal(got, expected(T, window + 1)):
                return f"in {call} a query sees window + 1 = {window + 1} keys (itself and {window} before it); keep {window}."
            if window > 1 and torch.equal(got, expected(T, window - 1)):
                return f"in {call} a query sees only window - 1 = {window - 1} keys; it should see {window}, itself included."
            if torch.equal(got, want.T):
                return f"{call} is the transpose of the right mask: it lets queries see the future instead of the past."
            if torch.equal(got, want & ~torch.eye(T, dtype=torch.bool)):
                return f"in {call} the diagonal is False, so a token cannot see itself; include the diagonal."
            if bool((got & ~causal).any()):
                return f"{call} lets some queries see later keys; a decoder's mask never looks ahead."
            wrong = (got != want).nonzero()[0].tolist()
            return (f"{call} is wrong at {int((got != want).sum())} of {T * T} entries, the first at "
                    f"query {wrong[0]}, key {wrong[1]}.")
        return None


# SmolLM2-135M's attention, as its config gives it (tests/test_exercises_nb01.py checks these numbers)
_SMOL = dict(n_layer=30, d_model=576, n_head=9, head_dim=64, n_kv_head=3)


def _llama_attention(n_layer, d_model, n_head, head_dim, n_kv_head):
    """Parameters of a Llama attention stack: q and o are (d, n_head*hd), k and v (d, n_kv_head*hd); no biases."""
    return n_layer * (2 * d_model * n_head * head_dim + 2 * d_model * n_kv_head * head_dim)


@register("nb01.attention_without_gqa")
class AttentionWithoutGQA(NumberExercise):
    prompt = ("SmolLM2-135M has 30 layers of width 576, 9 query heads of 64 dimensions, and only 3 key/value heads "
              "(grouped-query attention); its attention projections q, k, v and o have no biases. How many "
              "attention parameters would its 30 layers hold with 9 key/value heads, i.e. plain multi-head "
              "attention? Section 6 counted the model as it is.")
    hints = (
        "q_proj and o_proj map 576 to 9 x 64 = 576 dimensions either way; k_proj and v_proj map 576 to "
        "(number of key/value heads) x 64. Only those two change.",
        "Count one layer's four projection matrices with 9 key/value heads, then multiply by the number of layers.",
    )
    solution_code = """
layers, d, heads, head_dim = 30, 576, 9, 64
per_layer = 4 * d * (heads * head_dim)   # q, k, v, o: all four are 576 x 576 without GQA
layers * per_layer
"""
    exact = True
    unit = "parameter"
    wrong_example = _llama_attention(**_SMOL)  # SmolLM2 as it is, with 3 key/value heads

    def solve(self):
        return _llama_attention(**{**_SMOL, "n_kv_head": _SMOL["n_head"]})

    def diagnose(self, answer, expected):
        value = parse_number(answer)
        if value == expected:
            return None
        as_is = _llama_attention(**_SMOL)
        layers, d = _SMOL["n_layer"], _SMOL["d_model"]
        known_slips = {
            as_is: "that is SmolLM2's attention as it is, with 3 key/value heads; the question gives it 9.",
            expected // layers: "that is one layer; SmolLM2 has 30.",
            as_is // layers: "that is one layer of SmolLM2 as it is; the question asks for 30 layers with 9 key/value heads.",
            expected - as_is: "that is how many parameters grouped-query attention saves; the question asks for the total.",
            expected + layers * 4 * d: "Llama's attention projections have no biases; count the weight matrices only.",
        }
        if float(value).is_integer() and int(value) in known_slips:
            return f"{int(value):,} is not it: {known_slips[int(value)]}"
        return self.describe_miss(value, expected)
