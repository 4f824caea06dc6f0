"""Sentence embeddings from a small encoder (MiniLM): token vectors -> one vector per text.

An encoder such as BERT or MiniLM gives one vector per token. A sentence-embedding
model adds a *pooling* step that turns those into one vector per text; for
all-MiniLM-L6-v2 the shipped ``1_Pooling/config.json`` says "mean of the token
vectors", with padding left out. Then the vectors are scaled to length 1, so that
a dot product is a cosine similarity::

    model, tokenizer = lmguide.load("minilm-l6")      # the one loader
    vectors = embed(["Emma smiled.", "Emma laughed."], model, tokenizer)   # (2, 384)
    cosine_similarity_matrix(vectors, vectors)        # (2, 2), ones on the diagonal
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

POOLING_MODES = ("mean", "cls", "max")
# the switch for each mode in a sentence-transformers 1_Pooling/config.json
_POOLING_KEYS = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
                 "max": "pooling_mode_max_tokens", "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each text, ignoring padding positions.

    Args:
        last_hidden_state: (B, T, H) token vectors from the encoder.
        attention_mask: (B, T) with 1 for real tokens and 0 for padding.
    Returns:
        (B, H) one vector per text.
    """
    if last_hidden_state.dim() != 3 or attention_mask.shape != last_hidden_state.shape[:2]:
        raise ValueError(
            f"mean_pool needs hidden states (B, T, H) and a mask (B, T) (got {tuple(last_hidden_state.shape)} "
            f"and {tuple(attention_mask.shape)}); pass outputs.last_hidden_state and the tokenizer's attention_mask"
        )
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    summed = (last_hidden_state * mask).sum(dim=1)                    # (B, H): padding contributes 0
    counts = mask.sum(dim=1).clamp(min=1e-9)                          # (B, 1): real tokens per text
    return summed / counts


def cls_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The vector of the first token ([CLS]): what BERT's classification head reads."""
    return last_hidden_state[:, 0]  # (B, H)


def max_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The largest value of each feature over the real (non-padding) tokens."""
    padding = (attention_mask == 0).unsqueeze(-1)                       # (B, T, 1)
    return last_hidden_state.masked_fill(padding, float("-inf")).amax(dim=1)  # (B, H)


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each row of ``x`` to Euclidean length 1 (rows of zeros stay zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All pairwise cosine similarities: (N, H) and (M, H) -> (N, M), values in [-1, 1]."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"cosine_similarity_matrix needs two 2-D tensors with the same width (got {tuple(a.shape)} "
            f"and {tuple(b.shape)}); embed both sides with the same model"
        )
    return l2_normalize(a.float()) @ l2_normalize(b.float()).T  # (N, M)


def read_pooling_config(model_dir: str | Path) -> dict:
    """Read a sentence-transformers ``1_Pooling/config.json``; adds ``"mode"`` ("mean", "cls" or "max")."""
    path = Path(model_dir) / "1_Pooling" / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no pooling config at {path}; pass the folder of a sentence-transformers model "
            f"(such as lmguide.zoo.path('minilm-l6'))"
        )
    config = json.loads(path.read_text())
    chosen = [mode for mode, key in _POOLING_KEYS.items() if config.get(key)]
    if len(chosen) != 1 or chosen[0] not in POOLING_MODES:
        raise ValueError(
            f"{path} turns on pooling modes {chosen or 'none'}; lmguide supports exactly one of {POOLING_MODES}"
        )
    return {**config, "mode": chosen[0]}


def pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool token vectors (B, T, H) into text vectors (B, H) with ``mode`` "mean", "cls" or "max"."""
    poolers = {"mean": mean_pool, "cls": cls_pool, "max": max_pool}
    if mode not in poolers:
        raise ValueError(f"unknown pooling mode {mode!r}; use one of {POOLING_MODES}")
    return poolers[mode](last_hidden_state, attention_mask)


@torch.no_grad()
def embed(texts: list[str], model, tokenizer, batch_size: int = 32, normalize: bool = True,
          pooling: str = "mean", max_length: int = 256) -> torch.Tensor:
    """Embed ``texts`` with an encoder: (N,) texts -> (N, H) float32 vectors.

    Texts longer than ``max_length`` tokens are cut (256 is what all-MiniLM-L6-v2 was
    trained with). The model is put in eval mode (no dropout) and no gradients are kept.
    """
    if isinstance(texts, str):
        raise TypeError(f"texts must be a list of strings (got one str {texts[:30]!r}); wrap it as [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; pass at least one string to embed")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
        hidden = model(**batch).last_hidden_state                     # (b, T, H)
        chunks.append(pool(hidden, batch["attention_mask"], pooling).float())
    vectors = torch.cat(chunks)                                         # (N, H)
    return l2_normalize(vectors) if normalize else vectors
