"""Scratch attention vs PyTorch's kernel and vs transformers' GPT2Attention, on tiny random configs."""
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide.attention import (CausalSelfAttention, MultiHeadAttention, SelfAttention, bidirectional_mask,
                               causal_mask, scaled_dot_product_attention, sinusoidal_positions)

torch.set_num_threads(1)


def tiny_gpt2(**overrides):
    # bos/eos inside the tiny vocabulary, else transformers warns at construction
    kwargs = dict(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100,
                  bos_token_id=0, eos_token_id=0, pad_token_id=0)
    kwargs.update(overrides)
    torch.manual_seed(123)
    return GPT2LMHeadModel(GPT2Config(**kwargs)).eval()


def qkv(B=2, nh=3, T=7, hs=8):
    g = torch.Generator().manual_seed(123)
    return [torch.randn(B, nh, T, hs, generator=g) for _ in range(3)]  # each (B, nh, T, hs)


# --- the formula -------------------------------------------------------------------------------
def test_scratch_attention_matches_torch_without_mask():
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7))


def test_scratch_attention_matches_torch_with_causal_mask():
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(7))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    above_diagonal = ~causal_mask(7)
    assert (weights[..., above_diagonal] == 0).all()  # no weight on future tokens


def test_scratch_attention_matches_torch_with_padding_mask():
    q, k, v = qkv(B=2, T=5)
    pad = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    mask = bidirectional_mask(pad)  # (B, 1, T, T)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert (weights[1, :, :, 3:] == 0).all()  # nobody attends to the padding of row 1
    assert (weights[0] > 0).all()  # row 0 has no padding: every token sees every token


def test_masks_shapes_and_meaning():
    assert causal_mask(4).tolist() == [[True, False, False, False], [True, True, False, False],
                                      [True, True, True, False], [True, True, True, True]]
    mask = bidirectional_mask(torch.tensor([[1, 1, 0]]))
    assert mask.shape == (1, 1, 3, 3) and mask.dtype == torch.bool
    assert mask[0, 0].tolist() == [[True, True, False]] * 3


def test_non_bool_mask_is_rejected_with_the_fix():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="mask must be a bool tensor.*mask.bool"):
        scaled_dot_product_attention(q, k, v, causal_mask(7).float())


def test_bidirectional_mask_needs_a_batch_dimension():
    with pytest.raises(ValueError, match=r"shape \(batch, tokens\)"):
        bidirectional_mask(torch.ones(5))


# --- the named steps ---------------------------------------------------------------------------
def test_self_attention_sees_the_future_and_causal_does_not():
    torch.manual_seed(123)
    x = torch.randn(1, 6, 16)
    x_changed = x.clone()
    x_changed[:, -1] += 1.0  # change only the last token
    for cls, first_five_unchanged in ((SelfAttention, False), (CausalSelfAttention, True)):
        torch.manual_seed(123)
        layer = cls(16, 8)
        out, weights = layer(x, return_weights=True)
        assert out.shape == (1, 6, 8) and weights.shape == (1, 6, 6)
        same = torch.allclose(layer(x_changed)[:, :5], out[:, :5])
        assert same == first_five_unchanged


def test_multihead_fast_path_equals_scratch_path():
    torch.manual_seed(123)
    mha = MultiHeadAttention(32, 4)
    x = torch.randn(2, 9, 32)
    slow, weights = mha(x, return_weights=True)
    torch.testing.assert_close(mha(x, fast=True), slow)
    assert weights.shape == (2, 4, 9, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 9))


def test_multihead_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible by n_head.*d_model=30, n_head=4"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="pass fast=False"):
        MultiHeadAttention(32, 4)(torch.randn(1, 3, 32), return_weights=True, fast=True)


@pytest.mark.parametrize("layer", [0, 1])
def test_from_gpt2_matches_hf_attention(layer):
    model = tiny_gpt2()
    block = model.transformer.h[layer]
    mha = MultiHeadAttention.from_gpt2(block.attn)
    torch.testing.assert_close(mha.c_attn.weight, block.attn.c_attn.weight.T)  # Conv1D is (in, out)
    x = torch.randn(2, 10, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = mha(x)
        theirs = block.attn(x)[0]  # causal via SDPA's is_causal, as inside the model
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_from_gpt2_weights_match_hf_output_attentions():
    model = tiny_gpt2(attn_implementation="eager")  # eager returns attention weights
    ids = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hf_weights = model(ids, output_attentions=True).attentions[0]  # (1, nh, T, T) of block 0
        t = model.transformer
        x = t.h[0].ln_1(t.wte(ids) + t.wpe(torch.arange(8)))  # what block 0's attention reads
        _, weights = MultiHeadAttention.from_gpt2(t.h[0].attn)(x, return_weights=True)
    torch.testing.assert_close(weights, hf_weights, atol=1e-5, rtol=1e-5)


def test_from_gpt2_refuses_layer_scaled_attention():
    model = tiny_gpt2(scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx=True"):
        MultiHeadAttention.from_gpt2(model.transformer.h[1].attn)


# --- positions ---------------------------------------------------------------------------------
def test_sinusoidal_positions_follow_the_formula():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    assert pe[0].tolist() == [0.0, 1.0] * 8  # sin(0), cos(0)
    pos, i = 7, 3
    angle = pos / 10000 ** (2 * i / 16)
    assert math.isclose(pe[pos, 2 * i], math.sin(angle), abs_tol=1e-6)
    assert math.isclose(pe[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-6)
    assert len({tuple(row.tolist()) for row in pe}) == 50  # every position gets its own code


def test_sinusoidal_positions_need_an_even_dim():
    with pytest.raises(ValueError, match=r"even number \(got 7\)"):
        sinusoidal_positions(10, 7)
