"""The closed-form GPT-2 parameter count equals what the real model holds."""
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings, strategies as st
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide.params import gpt2_param_count

torch.set_num_threads(1)


def build(**kwargs):
    kwargs = dict(bos_token_id=0, eos_token_id=0, pad_token_id=0, **kwargs)  # ids inside tiny vocabularies
    config = GPT2Config(**kwargs)
    torch.manual_seed(123)
    return config, GPT2LMHeadModel(config)


def real_count(model):
    return sum(p.numel() for p in model.parameters())  # parameters() lists a tied weight once


@pytest.mark.parametrize("kwargs", [
    dict(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100),
    dict(n_layer=3, n_head=4, n_embd=48, n_positions=16, vocab_size=257, n_inner=20),
    dict(n_layer=1, n_head=1, n_embd=8, n_positions=128, vocab_size=50, tie_word_embeddings=False),
])
def test_formula_equals_real_count(kwargs):
    config, model = build(**kwargs)
    assert gpt2_param_count(config)["total"] == real_count(model)


@settings(max_examples=15, deadline=None)
@given(n_layer=st.integers(1, 3), n_head=st.integers(1, 3), head_size=st.integers(1, 6),
       n_positions=st.integers(1, 40), vocab_size=st.integers(2, 120),
       n_inner=st.one_of(st.none(), st.integers(1, 30)), tied=st.booleans())
def test_formula_equals_real_count_for_random_configs(n_layer, n_head, head_size, n_positions, vocab_size,
                                                      n_inner, tied):
    config, model = build(n_layer=n_layer, n_head=n_head, n_embd=n_head * head_size, n_positions=n_positions,
                          vocab_size=vocab_size, n_inner=n_inner, tie_word_embeddings=tied)
    assert gpt2_param_count(config)["total"] == real_count(model)


def test_breakdown_matches_the_model_part_by_part():
    config, model = build(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100)
    parts = gpt2_param_count(config)
    numel = {name: p.numel() for name, p in model.named_parameters()}

    def count(pattern):
        return sum(n for name, n in numel.items() if pattern in name)

    assert parts["token_embedding"] == count("wte")
    assert parts["position_embedding"] == count("wpe")
    assert parts["attention"] == count(".attn.")
    assert parts["mlp"] == count(".mlp.")
    assert parts["layer_norm"] == count("ln_")
    assert parts["lm_head"] == 0 and model.lm_head.weight is model.transformer.wte.weight
    assert parts["total"] == sum(v for k, v in parts.items() if k not in ("total", "non_embedding"))
    assert parts["non_embedding"] == parts["total"] - parts["token_embedding"] - parts["position_embedding"]


def test_gpt2_small_without_building_it():
    # GPT-2 small (124M): the published count, from the default config alone
    assert gpt2_param_count(GPT2Config())["total"] == 124_439_808


def test_formula_accepts_plain_attribute_objects():
    plain = SimpleNamespace(vocab_size=100, n_positions=64, n_embd=32, n_layer=2)
    config, model = build(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100)
    assert gpt2_param_count(plain) == gpt2_param_count(config)


def test_cross_attention_configs_are_refused():
    with pytest.raises(ValueError, match="add_cross_attention=True"):
        gpt2_param_count(GPT2Config(add_cross_attention=True))
