import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.pytorch_utils import Conv1D

from lmguide import finetune, lora


def tiny_gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=24, n_layer=2, n_head=2)).eval()


def tiny_llama():
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(config).eval()


def randomize_b(model):
    """LoRA's B starts at zero (the update is then zero); give it values so the paths differ."""
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.lora_B.normal_(0, 0.5)


@pytest.mark.parametrize("base", [torch.nn.Linear(6, 4), Conv1D(4, 6)])
def test_layer_matches_a_dense_update_and_merges(base):
    x = torch.randn(3, 5, 6)
    before = base(x)
    layer = lora.LoRALayer(copy.deepcopy(base), r=2, alpha=4)
    torch.testing.assert_close(layer(x), before)  # B = 0: the layer starts as the base layer
    with torch.no_grad():
        layer.lora_B.normal_()
    expected = before + x @ (2.0 * layer.lora_B @ layer.lora_A).T  # alpha / r = 2
    torch.testing.assert_close(layer(x), expected)
    merged = copy.deepcopy(layer).merged()
    assert type(merged) is type(base)
    torch.testing.assert_close(merged(x), expected, rtol=1e-5, atol=1e-5)


def test_only_a_and_b_are_trainable():
    model = tiny_gpt2()
    names = lora.replace_with_lora(model, ["c_attn", "c_proj"], r=4)
    assert len(names) == 2 * 3  # per block: attn.c_attn, attn.c_proj, mlp.c_proj
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    # r * (in + out) per layer: c_attn 24 -> 72, c_proj 24 -> 24, mlp.c_proj 96 -> 24
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 4 * (96 + 48 + 120)


def test_unknown_target_is_an_error():
    with pytest.raises(ValueError, match="q_proj"):
        lora.replace_with_lora(tiny_gpt2(), ["c_attn", "q_proj"])


@pytest.mark.parametrize("make, targets", [(tiny_gpt2, ["c_attn", "c_proj"]), (tiny_llama, ["q_proj", "v_proj", "down_proj"])])
def test_scratch_lora_equals_peft_on_the_same_weights(make, targets):
    base = make()
    ours = copy.deepcopy(base)
    theirs = finetune.add_peft_lora(copy.deepcopy(base), targets, r=4, alpha=8, init_lora_weights=False)
    n = len(lora.replace_with_lora(ours, targets, r=4, alpha=8))
    assert lora.copy_from_peft(ours, theirs) == n
    ids = torch.randint(0, 50, (2, 10))
    with torch.no_grad():
        want = theirs(ids).logits
        plain = base(ids).logits
        got = ours(ids).logits
    assert (want - plain).abs().max() > 1e-3  # the adapters really change the output
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert finetune.count_parameters(theirs)["trainable"] == sum(
        p.numel() for p in ours.parameters() if p.requires_grad)


def test_merged_model_gives_the_same_logits_as_peft_merge():
    base = tiny_gpt2()
    ours = copy.deepcopy(base)
    lora.replace_with_lora(ours, ["c_attn", "c_proj"], r=4)
    randomize_b(ours)
    ids = torch.randint(0, 50, (2, 10))
    with torch.no_grad():
        unmerged = ours(ids).logits
        lora.merge(ours)
        merged = ours(ids).logits
    assert not lora.lora_layers(ours)
    assert isinstance(ours.transformer.h[0].attn.c_attn, Conv1D)
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    peft_model = finetune.add_peft_lora(copy.deepcopy(base), ["c_attn", "c_proj"], r=4, init_lora_weights=False)
    with torch.no_grad():
        want = peft_model(ids).logits
        got = peft_model.merge_and_unload()(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_saved_adapter_reloads_to_the_same_logits(tmp_path):
    base = tiny_gpt2()
    peft_model = finetune.add_peft_lora(copy.deepcopy(base), ["c_attn"], r=2, init_lora_weights=False)
    files = lora.save_adapter(peft_model, tmp_path, "tiny", dtype=torch.float32)
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    assert "tiny" in (tmp_path / "adapter_config.json").read_text()
    ids = torch.randint(0, 50, (1, 8))
    reloaded = lora.attach_adapter(copy.deepcopy(base), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, peft_model.eval()(ids).logits)
        with reloaded.disable_adapter():
            torch.testing.assert_close(reloaded(ids).logits, base(ids).logits)


def test_fp16_adapter_holds_every_matrix_at_half_the_bytes(tmp_path):
    from safetensors.torch import load_file

    peft_model = finetune.add_peft_lora(tiny_gpt2(), ["c_attn"], r=2)
    lora.save_adapter(peft_model, tmp_path / "a", "tiny", dtype=torch.float32)
    lora.save_adapter(peft_model, tmp_path / "b", "tiny")
    a, b = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in "ab")
    assert a.keys() == b.keys() and len(a) == 2 * 2  # A and B of 2 blocks' c_attn
    assert all(t.dtype == torch.float16 for t in b.values())
    assert sum(t.nbytes for t in b.values()) * 2 == sum(t.nbytes for t in a.values())


def test_shipped_support_adapter_loads_merged_and_scores_as_its_card_says():
    """austen-gpt-small-support: safetensors only, a parent, a loader; what its card says replays."""
    from lmguide import zoo

    if "austen-gpt-small-support" not in zoo.ENTRIES:
        pytest.skip("the support adapter is not shipped yet: python -m lmguide.recipes.lora_support "
                    "--out lmguide/weights/austen-gpt-small-support makes it")
    import json

    import lmguide
    from lmguide import data, zoo
    from lmguide.eval import bits_per_byte

    e = zoo.ENTRIES["austen-gpt-small-support"]
    assert e.parent == "austen-gpt-small" and e.loader == "lmguide.lora:load_adapter"
    assert sorted(e.files) == ["adapter_config.json", "adapter_model.safetensors"]  # safetensors, no pickles
    folder = zoo.path(e.name)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "austen-gpt-small"  # no machine path in the shipped config
    report = json.loads((folder / "training.json").read_text())
    assert report["parameters"]["trainable"] == sum(
        t.numel() for t in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
            str(folder / "adapter_model.safetensors")).values())
    model, tokenizer = lmguide.load(e.name)
    assert type(model).__name__ == "GPT2LMHeadModel" and not model.training
    assert not lora.lora_layers(model) and not hasattr(model, "peft_config")  # merged: a plain model
    score = bits_per_byte(model, tokenizer, data.support("test"), window=512)
    assert score == pytest.approx(report["after"]["bits per byte"]["support"], abs=0.01)
    assert score < report["before"]["bits per byte"]["support"]
