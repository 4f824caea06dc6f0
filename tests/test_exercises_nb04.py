import pytest
import torch

from lmguide import exercises, lora


def check(key, answer, capsys):
    q = exercises.get(key)
    ok = q.check(answer)
    return bool(ok), capsys.readouterr().out


def test_lora_parameters_matches_a_real_lora_layer_count(capsys):
    import lmguide

    model, _ = lmguide.load("austen-gpt-large")
    lora.replace_with_lora(model, ["c_attn"], r=4)
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert check("nb04.lora_parameters", counted, capsys)[0]
    assert check("nb04.lora_parameters", f"{counted:,}", capsys)[0]  # typed with commas


def test_lora_parameters_names_the_usual_slips(capsys):
    ok, out = check("nb04.lora_parameters", 4 * (256 + 768), capsys)
    assert not ok and "one block" in out
    ok, out = check("nb04.lora_parameters", 8 * 4 * 2 * 256, capsys)
    assert not ok and "queries, keys and values" in out
    ok, out = check("nb04.lora_parameters", "lots", capsys)
    assert not ok and "expected a number" in out


def test_merge_accepts_a_correct_function_and_agrees_with_lora_layer(capsys):
    def merge_lora(weight, A, B, alpha, fan_in_fan_out):
        delta = (alpha / A.shape[0]) * B @ A
        return weight + (delta.T if fan_in_fan_out else delta)

    assert check("nb04.merge", merge_lora, capsys)[0]
    # the reference agrees with the library's LoRALayer on a Conv1D
    from transformers.pytorch_utils import Conv1D

    layer = lora.LoRALayer(Conv1D(4, 6), r=2, alpha=8)
    with torch.no_grad():
        layer.lora_B.normal_()
        want = layer.base.weight + layer.delta_weight()
    got = exercises.get("nb04.merge").solve()(layer.base.weight, layer.lora_A, layer.lora_B, 8, True)
    torch.testing.assert_close(got, want)


def test_merge_messages(capsys):
    ok, out = check("nb04.merge", lambda w, A, B, alpha, f: w + ((B @ A).T if f else B @ A), capsys)
    assert not ok and "alpha / r" in out
    ok, out = check("nb04.merge", lambda w, A, B, alpha, f: w + (alpha / A.shape[0]) * B @ A, capsys)
    assert not ok and "raised RuntimeError" in out and "size" in out  # ignores the orientation: shapes clash on Conv1D
    ok, out = check("nb04.merge", lambda w, A, B, alpha, f: w, capsys)
    assert not ok and "unchanged" in out
    ok, out = check("nb04.merge", 3, capsys)
    assert not ok and "merge_lora" in out


def test_qlora_memory(capsys):
    lora = 28 * (16 * 3072 + 16 * 1792)
    want = (1_543_714_304 * 4.25 / 8 + lora * 16) / 2**20
    assert want == pytest.approx(815.4, abs=0.1)
    assert check("nb04.qlora_memory", want, capsys)[0]
    assert check("nb04.qlora_memory", "815", capsys)[0]  # rounded, as a string
    ok, out = check("nb04.qlora_memory", (1_543_714_304 * 4 / 8 + lora * 16) / 2**20, capsys)
    assert not ok and "scales" in out
    ok, out = check("nb04.qlora_memory", (1_543_714_304 * 2 + lora * 16) / 2**20, capsys)
    assert not ok and "16 bits" in out
    ok, out = check("nb04.qlora_memory", (1_543_714_304 * 4.25 / 8 + lora * 12) / 2**20, capsys)
    assert not ok and "two per parameter" in out
