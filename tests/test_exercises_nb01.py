"""Notebook 01's exercises: each reference answer passes, the slips a learner makes get their own message."""
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import lmguide as lg
from lmguide import exercises
from lmguide.exercise_bank import nb01


def check(q, answer):
    return q.check(answer, quiet=True)


# --- 1. parameter count by hand -----------------------------------------------------------------
def test_param_count_equals_the_real_model():
    config = GPT2Config(**nb01._CONFIG, bos_token_id=0, eos_token_id=0)
    real = sum(p.numel() for p in GPT2LMHeadModel(config).parameters())
    q = exercises.get("nb01.param_count")
    assert q.solve() == real
    for typed in (real, str(real), f"{real:,}", f"{real:_}", float(real)):
        assert check(q, typed), typed


@pytest.mark.parametrize("offset, says", [
    ("lm_head", "ties it to the token embedding"),
    (-2 * 128, "ln_f"),
    (-256 * 128, "position embedding"),
    (+1, "too high by 1 parameter."),
    (-1000, "too low by 1,000 parameters."),
])
def test_param_count_names_each_slip(offset, says):
    q = exercises.get("nb01.param_count")
    answer = q.wrong_example if offset == "lm_head" else q.solve() + offset
    result = check(q, f"{answer:,}")  # typed as text with commas, as people do
    assert not result and says in result.message, result.message


def test_param_count_refuses_a_rounded_count():
    q = exercises.get("nb01.param_count")
    result = check(q, round(q.solve(), -4))  # 1,350,000: close, but a count is exact
    assert not result and "too low by 400 parameters" in result.message


# --- 2. vocabulary share --------------------------------------------------------------------------
def test_embedding_share_accepts_the_rounded_fraction_and_names_the_slips():
    q = exercises.get("nb01.embedding_share")
    parts = lg.params.gpt2_param_count(SimpleNamespace(**nb01._BIG_VOCAB))
    share = parts["token_embedding"] / parts["total"]
    assert q.solve() == pytest.approx(share)
    for typed in (share, 0.86, "0.863", "86.3%"):
        assert check(q, typed), typed
    assert "position table" in check(q, (parts["token_embedding"] + parts["position_embedding"]) / parts["total"]).message
    assert "percentage" in check(q, 86.28).message
    assert "non-embedding" in check(q, parts["token_embedding"] / parts["non_embedding"]).message
    assert not check(q, 0.87)  # rounded wrongly: 0.8628 is 0.86
    assert "significant figure" in check(q, 0.9).message


# --- 3. sliding-window mask -----------------------------------------------------------------------
def test_local_mask_reference_keeps_exactly_the_last_window_keys():
    mask = nb01._local_mask_reference(6, 3)
    assert mask.sum(1).tolist() == [1, 2, 3, 3, 3, 3]  # min(t + 1, window) keys per query
    assert not mask.triu(1).any()  # never the future
    assert torch.equal(nb01._local_mask_reference(5, 5), lg.attention.causal_mask(5))  # a long window is causal


def test_local_mask_accepts_another_correct_way_of_writing_it():
    def local_causal_mask(T, window):
        return torch.tril(torch.ones(T, T, dtype=torch.bool)) & ~torch.tril(torch.ones(T, T, dtype=torch.bool),
                                                                            diagonal=-window)
    assert check(exercises.get("nb01.local_mask"), local_causal_mask)


@pytest.mark.parametrize("make, says", [
    (lambda T, w: torch.tril(torch.ones(T, T, dtype=torch.bool)), "plain causal mask"),
    (lambda T, w: nb01._local_mask_reference(T, w + 1), "window + 1"),
    (lambda T, w: nb01._local_mask_reference(T, w - 1) if w > 1 else nb01._local_mask_reference(T, w), "window - 1"),
    (lambda T, w: nb01._local_mask_reference(T, w).T.contiguous(), "transpose"),
    (lambda T, w: nb01._local_mask_reference(T, w).int(), "bool tensor"),
    (lambda T, w: nb01._local_mask_reference(T, w)[:, :-1], "should be a"),
    (lambda T, w: None, "returned None"),
    (lambda T, w: torch.ones(T, T, dtype=torch.bool), "later keys"),
    (lambda T, w: torch.ones(T, T, dtype=torch.bool)[T], "raised IndexError"),  # a bug inside the function
])
def test_local_mask_names_each_mistake(make, says):
    result = check(exercises.get("nb01.local_mask"), make)
    assert not result and says in result.message, result.message


def test_local_mask_blank_function_is_waiting():
    def local_causal_mask(T, window):
        ...  # your code

    assert check(exercises.get("nb01.local_mask"), local_causal_mask).waiting


# --- 4. attention without grouped-query attention ------------------------------------------------
def _attention_count(model):
    return sum(p.numel() for name, p in model.named_parameters() if "self_attn" in name)


def test_gqa_numbers_in_the_prompt_are_smollm2s():
    config = AutoConfig.from_pretrained(lg.zoo.path("smollm2-135m"))
    s = nb01._SMOL
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.head_dim,
            config.num_key_value_heads) == (s["n_layer"], s["d_model"], s["n_head"], s["head_dim"], s["n_kv_head"])
    with torch.device("meta"):
        smol = AutoModelForCausalLM.from_config(config)
    assert _attention_count(smol) == nb01._llama_attention(**s)  # the 'as it is' slip is SmolLM2's real count


def test_gqa_answer_equals_a_real_llama_with_as_many_kv_heads_as_query_heads():
    s = nb01._SMOL
    config = LlamaConfig(vocab_size=16, hidden_size=s["d_model"], intermediate_size=8, num_hidden_layers=s["n_layer"],
                         num_attention_heads=s["n_head"], num_key_value_heads=s["n_head"], head_dim=s["head_dim"],
                         attention_bias=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    q = exercises.get("nb01.attention_without_gqa")
    assert q.solve() == _attention_count(model)
    assert check(q, f"{_attention_count(model):,}")


@pytest.mark.parametrize("answer, says", [
    (nb01._llama_attention(**nb01._SMOL), "as it is"),
    (nb01._llama_attention(**{**nb01._SMOL, "n_kv_head": 9}) // 30, "one layer"),
    (nb01._llama_attention(**{**nb01._SMOL, "n_kv_head": 9}) + 30 * 4 * 576, "no biases"),
    (13_271_040, "saves"),
    (40_000_000, "too high by 186,880 parameters"),
    ("about 40 million", "expected a number"),
])
def test_gqa_names_each_slip(answer, says):
    result = check(exercises.get("nb01.attention_without_gqa"), answer)
    assert not result and says in result.message, result.message
