"""Attention, built in named steps: the function, one head, a causal head, many heads.

Each step is a runnable class (as in rasbt/LLMs-from-scratch); the last one,
:class:`MultiHeadAttention`, has GPT-2's layout, so ``from_gpt2`` can load the
weights of a ``transformers`` ``GPT2Attention`` and the tests check both agree.

Masks are boolean with **True = may attend**, the convention of
``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- step 0: the formula ------------------------------------------------------------------
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(Q K^T / sqrt(d)) V, from scratch; returns ``(output, weights)``.

    Args:
        q: (..., T_q, d) queries; k: (..., T_k, d) keys; v: (..., T_k, d_v) values.
        mask: optional bool tensor broadcastable to (..., T_q, T_k); True = may attend.
    """
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}; "
                         "convert it with mask.bool()")
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T_q, T_k) how well each query matches each key
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight on masked keys
    weights = torch.softmax(scores, dim=-1)  # (..., T_q, T_k) each row sums to 1
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: token t sees tokens 0..t, never the future."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))


def bidirectional_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Encoder (BERT-style) mask from a (B, T) 0/1 padding mask: every token sees every real token.

    Returns (B, 1, T, T) bool; the 1 broadcasts over heads. Padding keys are hidden from all
    queries; padding queries still see the real tokens (their outputs are ignored anyway,
    and an all-False row would make softmax return NaN).
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must have shape (batch, tokens), got {tuple(attention_mask.shape)}; "
                         "add a batch dimension with attention_mask[None]")
    B, T = attention_mask.shape
    keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T) which keys are real
    return keys.expand(B, 1, T, T)  # (B, 1, T, T)


# --- step 1: one head, every token sees every token -----------------------------------------
class SelfAttention(nn.Module):
    """Single-head self-attention with its own query, key and value projections."""

    def __init__(self, d_in: int, d_out: int, bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=bias)
        self.W_key = nn.Linear(d_in, d_out, bias=bias)
        self.W_value = nn.Linear(d_in, d_out, bias=bias)

    def make_mask(self, T: int, device) -> torch.Tensor | None:
        return None  # no mask: bidirectional, like an encoder without padding

    def forward(self, x, return_weights: bool = False):
        """x: (B, T, d_in) -> (B, T, d_out), plus the (B, T, T) weights if ``return_weights``."""
        q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)  # each (B, T, d_out)
        out, weights = scaled_dot_product_attention(q, k, v, self.make_mask(x.size(1), x.device))
        return (out, weights) if return_weights else out


# --- step 2: the same head, but no peeking at the future -----------------------------------
class CausalSelfAttention(SelfAttention):
    """Single-head attention where token t attends only to tokens 0..t (decoder / GPT)."""

    def make_mask(self, T: int, device) -> torch.Tensor:
        return causal_mask(T, device)  # (T, T), broadcast over the batch


# --- step 3: several heads side by side, GPT-2 layout ---------------------------------------
class MultiHeadAttention(nn.Module):
    """GPT-2's attention: one fused q/k/v projection ``c_attn`` (d -> 3d), ``n_head`` heads, ``c_proj``.

    ``c_attn`` maps d -> 3d like HF's ``Conv1D(3d, d)``; being an ``nn.Linear``, its weight is
    stored (out, in) = (3d, d), the transpose of Conv1D's (in, out) = (d, 3d).
    """

    def __init__(self, d_model: int, n_head: int, bias: bool = True, causal: bool = True):
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model must be divisible by n_head (got d_model={d_model}, n_head={n_head}); "
                             "pick n_head among the divisors of d_model")
        self.d_model, self.n_head, self.causal = d_model, n_head, causal
        self.c_attn = nn.Linear(d_model, 3 * d_model, bias=bias)  # q, k and v for all heads in one matmul
        self.c_proj = nn.Linear(d_model, d_model, bias=bias)  # mixes the heads' outputs back together

    def forward(self, x, return_weights: bool = False, fast: bool = False):
        """x: (B, T, C) -> (B, T, C), plus the (B, nh, T, T) weights if ``return_weights``.

        ``fast=True`` uses PyTorch's fused kernel instead of the scratch function (same numbers,
        but it cannot return the weights).
        """
        if fast and return_weights:
            raise ValueError("fast=True cannot return attention weights; pass fast=False to get them")
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        weights = None
        if fast:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, nh, T, hs)
        else:
            mask = causal_mask(T, x.device) if self.causal else None
            y, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, nh, T, hs), (B, nh, T, T)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) heads side by side again
        y = self.c_proj(y)
        return (y, weights) if return_weights else y

    @classmethod
    def from_gpt2(cls, gpt2_attention) -> "MultiHeadAttention":
        """A copy of a ``transformers`` ``GPT2Attention`` (e.g. ``model.transformer.h[0].attn``)."""
        attn = gpt2_attention
        if getattr(attn, "is_cross_attention", False):
            raise ValueError("from_gpt2 copies self-attention only, got a cross-attention module; "
                             "pass a block's .attn, not its .crossattention")
        if attn.scale_attn_by_inverse_layer_idx or not attn.scale_attn_weights:
            raise ValueError("from_gpt2 needs the standard 1/sqrt(head_dim) scaling (got scale_attn_weights="
                             f"{attn.scale_attn_weights}, scale_attn_by_inverse_layer_idx="
                             f"{attn.scale_attn_by_inverse_layer_idx}); use a default GPT2Config")
        mha = cls(attn.embed_dim, attn.num_heads, bias=True, causal=True)
        with torch.no_grad():
            # Conv1D stores weight as (in, out); nn.Linear wants (out, in), hence the .T
            mha.c_attn.weight.copy_(attn.c_attn.weight.T)
            mha.c_attn.bias.copy_(attn.c_attn.bias)
            mha.c_proj.weight.copy_(attn.c_proj.weight.T)
            mha.c_proj.bias.copy_(attn.c_proj.bias)
        return mha.to(device=attn.c_attn.weight.device, dtype=attn.c_attn.weight.dtype)


# --- positions: attention itself is order-blind ---------------------------------------------
def sinusoidal_positions(n_positions: int, dim: int) -> torch.Tensor:
    """(n_positions, dim) sine/cosine position codes of Vaswani et al. (2017).

    PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(pos / 10000^(2i/dim)).
    (GPT-2 instead *learns* its position table, ``wpe``.)
    """
    if dim % 2 != 0 or dim < 2:
        raise ValueError(f"dim must be a positive even number (got {dim}); sines and cosines come in pairs")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = pos * inv_freq  # (P, dim/2) slow waves in later columns
    pe = torch.zeros(n_positions, dim)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe
