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


# --- any model: count by part, from the parameter names ------------------------------------------
PARTS = ("embeddings", "attention", "mlp", "norms", "other")


def part_of(name: str) -> str:
    """Which part of a transformer a parameter belongs to, judged from its name.

    Works for GPT-2 (``wte``, ``attn``, ``mlp``, ``ln_1``), Llama/SmolLM2 (``embed_tokens``,
    ``self_attn``, ``mlp``, ``input_layernorm``) and BERT/MiniLM (``embeddings``, ``attention``,
    ``intermediate`` and ``output.dense`` for the MLP, ``LayerNorm``).
    """
    lowered = name.lower()
    if "norm" in lowered or ".ln_" in lowered or lowered.startswith("ln_"):
        return "norms"  # checked first: BERT keeps LayerNorms inside its embedding and attention modules
    if "embed" in lowered or ".wte." in lowered or ".wpe." in lowered:
        return "embeddings"
    if "attn" in lowered or "attention" in lowered:
        return "attention"
    if ".mlp." in lowered or ".intermediate." in lowered or ".output.dense." in lowered:
        return "mlp"  # BERT's MLP is intermediate (d -> 4d) + output.dense (4d -> d)
    return "other"  # e.g. BERT's pooler, an untied LM head


def count_by_part(model) -> dict[str, int]:
    """Parameters of ``model`` per part (embeddings, attention, mlp, norms, other).

    ``named_parameters()`` lists a tied weight once (under the embedding's name), so a tied LM
    head is not counted twice; the values add up to ``sum(p.numel() for p in model.parameters())``.
    """
    counts = dict.fromkeys(PARTS, 0)
    for name, p in model.named_parameters():
        counts[part_of(name)] += p.numel()
    return counts
