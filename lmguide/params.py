"""Count GPT-2's parameters with a closed formula, part by part.

The formula is the lesson: it shows where a model's size lives (embeddings vs
attention vs MLP) and why width ``n_embd`` matters quadratically. The tests
check it against ``sum(p.numel() for p in model.parameters())``.
"""
from __future__ import annotations


def gpt2_param_count(config) -> dict[str, int]:
    """Parameter count of a ``GPT2LMHeadModel`` built from ``config``, broken down by part.

    Args:
        config: a ``GPT2Config`` or anything with ``vocab_size``, ``n_positions``, ``n_embd``,
            ``n_layer`` (and optionally ``n_inner``, ``tie_word_embeddings``).

    Returns a dict with ``token_embedding``, ``position_embedding``, ``attention``, ``mlp``,
    ``layer_norm``, ``lm_head`` (0 when tied to the token embedding, GPT-2's default),
    ``non_embedding`` (everything but the two embedding tables) and ``total``.
    """
    if getattr(config, "add_cross_attention", False):
        raise ValueError("add_cross_attention=True adds encoder-decoder layers this formula does not count; "
                         "use a decoder-only GPT2Config")
    V, P = config.vocab_size, config.n_positions
    d, L = config.n_embd, config.n_layer
    inner = getattr(config, "n_inner", None) or 4 * d  # MLP hidden width, 4x by default

    token_embedding = V * d  # wte: one d-vector per token id
    position_embedding = P * d  # wpe: one learned d-vector per position
    # per block: c_attn d -> 3d (q, k, v) and c_proj d -> d, each a weight matrix plus a bias
    attention = L * ((d * 3 * d + 3 * d) + (d * d + d))
    # per block: c_fc d -> inner, c_proj inner -> d
    mlp = L * ((d * inner + inner) + (inner * d + d))
    # ln_1 and ln_2 in every block, plus ln_f at the end; each has a scale and a shift of size d
    layer_norm = (2 * L + 1) * 2 * d
    # the LM head reuses wte's weights when tied, so it adds nothing (parameters() counts it once)
    lm_head = 0 if getattr(config, "tie_word_embeddings", True) else V * d

    non_embedding = attention + mlp + layer_norm + lm_head
    return {
        "token_embedding": token_embedding,
        "position_embedding": position_embedding,
        "attention": attention,
        "mlp": mlp,
        "layer_norm": layer_norm,
        "lm_head": lm_head,
        "non_embedding": non_embedding,
        "total": token_embedding + position_embedding + non_embedding,
    }
