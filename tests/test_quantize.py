import warnings

import pytest
import torch
from torch import nn

from lmguide import quantize as qz


@pytest.fixture
def weight():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 64, generator=g) * 0.05
    w[3, 7] = 1.5  # one outlier, as real weight matrices have
    return w


# ----------------------------------------------------------------------------- int8


def test_absmax_per_tensor_matches_torch_quantize_per_tensor(weight):
    q, scale = qz.absmax_quantize(weight)
    assert q.dtype == torch.int8 and scale.numel() == 1
    assert torch.isclose(scale, weight.abs().max() / 127)
    assert torch.equal(q, qz.torch_int8_codes(weight, scale))


def test_absmax_per_channel_matches_torch_quantize_per_channel(weight):
    q, scale = qz.absmax_quantize(weight, dim=1)
    assert scale.shape == (16, 1)
    assert torch.equal(q, qz.torch_int8_codes(weight, scale, dim=1))
    # round trip error is at most half a step in every row
    err = (qz.absmax_dequantize(q, scale) - weight).abs()
    assert bool((err <= scale / 2 + 1e-7).all())


def test_per_channel_beats_per_tensor_when_one_row_has_an_outlier(weight):
    per_tensor = (qz.absmax_dequantize(*qz.absmax_quantize(weight)) - weight).pow(2).mean()
    per_row = (qz.absmax_dequantize(*qz.absmax_quantize(weight, dim=1)) - weight).pow(2).mean()
    assert per_row < per_tensor / 5


def test_zeropoint_matches_torch_quint8_and_keeps_zero_exact(weight):
    w = weight.abs() + 0.01  # all positive: a case where the zero point matters
    w[0, 0] = 0.0
    q, scale, zp = qz.zeropoint_quantize(w)
    assert q.dtype == torch.uint8
    assert torch.equal(q, qz.torch_int8_codes(w, scale, zp))
    back = qz.zeropoint_dequantize(q, scale, zp)
    assert back[0, 0] == 0.0
    assert (back - w).abs().max() <= scale / 2 + 1e-7


def test_zeropoint_uses_the_range_better_than_absmax_on_one_sided_values():
    w = torch.linspace(0.0, 1.0, 1000)
    err_sym = (qz.absmax_dequantize(*qz.absmax_quantize(w)) - w).abs().max()
    err_asym = (qz.zeropoint_dequantize(*qz.zeropoint_quantize(w)) - w).abs().max()
    assert err_asym < err_sym * 0.6


def test_bad_bits_is_one_sentence():
    with pytest.raises(ValueError, match="bits must be"):
        qz.absmax_quantize(torch.ones(3), bits=16)


# ----------------------------------------------------------------------------- int4


def test_pack_int4_two_codes_per_byte_round_trips():
    q = torch.randint(0, 16, (5, 32), dtype=torch.uint8)
    packed = qz.pack_int4(q)
    assert packed.shape == (5, 16) and packed.dtype == torch.uint8
    assert int(packed[0, 0]) == int(q[0, 0]) + 16 * int(q[0, 1])
    assert torch.equal(qz.unpack_int4(packed), q)
    with pytest.raises(ValueError, match="even number"):
        qz.pack_int4(torch.zeros(3, dtype=torch.uint8))


def test_int4_groups_error_is_within_half_a_step(weight):
    packed, scale, minimum = qz.quantize_int4(weight, group_size=16)
    assert packed.shape == (16, 32) and scale.shape == (16, 4) and scale.dtype == torch.float16
    back = qz.dequantize_int4(packed, scale, minimum)
    step = scale.float().repeat_interleave(16, dim=1)
    assert bool(((back - weight).abs() <= step * 0.5 + 2e-3).all())
    with pytest.raises(ValueError, match="group_size"):
        qz.quantize_int4(weight, group_size=24)


# ----------------------------------------------------------------------------- QuantLinear


@pytest.mark.parametrize("bits", [8, 4])
def test_quant_linear_is_close_to_the_float_layer(bits):
    torch.manual_seed(0)
    linear = nn.Linear(64, 24)
    x = torch.randn(3, 5, 64)
    layer = qz.QuantLinear.from_linear(linear, bits=bits, group_size=32)
    y, want = layer(x), linear(x)
    assert y.shape == want.shape
    rel = (y - want).norm() / want.norm()
    assert rel < (0.02 if bits == 8 else 0.15), rel
    # and it is exactly the de-quantized weight at work (up to the int8 activations)
    exact = nn.functional.linear(x, layer.dequantized_weight(), linear.bias)
    assert (y - exact).norm() / exact.norm() < (0.02 if bits == 8 else 1e-5)


def test_quant_linear_int8_agrees_with_torch_dynamic_quantization():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32))
    x = torch.randn(8, 64)
    ours = qz.QuantLinear.from_linear(model[0], bits=8)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dynamic_int8 must not let a warning out
        theirs = qz.dynamic_int8(model)(x)
    want = model(x)
    assert (ours - theirs).norm() / want.norm() < 0.03
    assert qz.layer_counts(qz.dynamic_int8(model))["quantized"] == 1


def test_dynamic_int8_copies_unless_inplace():
    model = nn.Sequential(nn.Linear(64, 32))
    copy = qz.dynamic_int8(model)
    assert copy is not model and qz.layer_counts(model)["quantized"] == 0
    assert qz.dynamic_int8(model, inplace=True) is model and qz.layer_counts(model)["quantized"] == 1


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=32, vocab_size=96)).eval()


def test_conv1d_to_linear_keeps_the_outputs():
    model = _tiny_gpt2()
    ids = torch.randint(0, 96, (2, 10))
    before = model(ids).logits
    assert qz.layer_counts(model)["Conv1D"] == 8
    assert qz.conv1d_to_linear(model) == 8
    assert qz.layer_counts(model)["Conv1D"] == 0
    torch.testing.assert_close(model(ids).logits, before, rtol=1e-5, atol=1e-5)


def test_dynamic_quantization_leaves_gpt2_conv1d_alone():
    model = _tiny_gpt2()
    counts = qz.layer_counts(qz.dynamic_int8(model))
    assert counts["Conv1D"] == 8 and counts["quantized"] == 1  # only lm_head


@pytest.mark.parametrize("bits", [8, 4])
def test_save_and_load_quantized_round_trip(tmp_path, bits):
    from safetensors import safe_open

    model = _tiny_gpt2()
    ids = torch.randint(0, 96, (1, 12))
    qz.quantize_model(model, bits=bits, group_size=32)
    assert qz.layer_counts(model)["quantized"] == 9  # 8 block layers + the tied head
    want = model(ids).logits
    qz.save_quantized(model, None, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
        keys = list(f.keys())
    assert (torch.int8 if bits == 8 else torch.uint8) in dtypes
    assert "transformer.wte.weight" not in keys  # the tied embedding comes back from the head
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    loaded, tokenizer = qz.load_quantized(tmp_path)
    assert tokenizer is None
    assert qz.quantization_of(loaded) == qz.quantization_of(model) and qz.quantization_of(_tiny_gpt2()) is None
    # the float tensors (layer norms, biases, positions) are stored as float16 by default ...
    torch.testing.assert_close(loaded(ids).logits, want, rtol=0, atol=0.02)
    # ... and with float32 storage the loaded model is the quantized model exactly
    qz.save_quantized(model, None, tmp_path / "fp32", float_dtype=torch.float32)
    torch.testing.assert_close(qz.load_quantized(tmp_path / "fp32")[0](ids).logits, want, rtol=0, atol=1e-6)


def test_load_quantized_refuses_a_plain_model(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="not a quantized lmguide model"):
        qz.load_quantized(tmp_path)


@pytest.mark.parametrize("precision", qz.PRECISIONS)
def test_to_precision_converts_in_place_and_keeps_the_model_close(precision):
    model = _tiny_gpt2()
    ids = torch.randint(0, 96, (1, 12))
    with torch.inference_mode():
        want = model(ids).logits
        got = qz.to_precision(model, precision)(ids).logits.float()
    assert got.shape == want.shape
    assert (got - want).norm() / want.norm() < (0.2 if precision == "int4 (ours)" else 0.05)  # random weights: int4 ~11%
    counts = qz.layer_counts(model)
    if precision.startswith("int"):
        assert counts["Conv1D"] == 0 and counts["quantized"] == 9  # 8 block layers + the (tied) head


def test_to_precision_names_the_known_precisions():
    with pytest.raises(ValueError, match="precision must be one of fp32"):
        qz.to_precision(_tiny_gpt2(), "int2")
