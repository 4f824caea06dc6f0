import pytest
import torch
from torch import nn

from lmguide import outliers as ox
from lmguide import quantize as qz


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return nn.Linear(64, 16)


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(12, 64, generator=g) * 0.5   # (tokens, in): every |x| well below 6


def test_input_absmax_is_each_channels_largest_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(2, 5, 4)
    stats = ox.input_absmax(model, x)
    assert sorted(stats) == ["0", "2"]
    torch.testing.assert_close(stats["0"], x.abs().amax(dim=(0, 1)))
    torch.testing.assert_close(stats["2"], torch.relu(model[0](x)).detach().abs().amax(dim=(0, 1)))
    assert not any(m._forward_pre_hooks for m in model.modules())   # the hooks are gone


def test_without_outliers_the_split_is_plain_per_token_int8(layer, inputs):
    w_q, w_scale = qz.absmax_quantize(layer.weight.detach(), dim=1)
    y, n_float = ox.int8_matmul(inputs, w_q, w_scale, per_token=True, threshold=ox.OUTLIER_THRESHOLD)
    assert n_float == 0
    plain = qz.QuantLinear.from_linear(layer, bits=8)(inputs) - layer.bias.detach()
    torch.testing.assert_close(y, plain, rtol=0, atol=1e-6)


def test_an_outlier_column_is_kept_exactly(layer, inputs):
    w_q, w_scale = qz.absmax_quantize(layer.weight.detach(), dim=1)
    x = inputs.clone()
    x[3, 7] = 50.0                                   # one planted outlier: column 7 goes to float
    y, n_float = ox.int8_matmul(x, w_q, w_scale, threshold=6.0)
    assert n_float == 1
    # the int8 part sees column 7 as zeros; the float part is column 7 times its (int8) weights, unrounded
    rest = x.clone()
    rest[:, 7] = 0.0
    int8_part, _ = ox.int8_matmul(rest, w_q, w_scale, threshold=None)
    float_part = x[:, 7:8] @ qz.absmax_dequantize(w_q, w_scale)[:, 7:8].t()
    torch.testing.assert_close(y, int8_part + float_part)
    # a nudge far below one int8 step still moves the output: column 7 is not rounded
    x2 = x.clone()
    x2[5, 7] += 1e-3
    y2, _ = ox.int8_matmul(x2, w_q, w_scale, threshold=6.0)
    torch.testing.assert_close(y2[5] - y[5], 1e-3 * qz.absmax_dequantize(w_q, w_scale)[:, 7], rtol=1e-2, atol=1e-6)


def test_the_split_beats_naive_per_tensor_on_a_planted_outlier_channel(layer, inputs):
    x = inputs.clone()
    x[:, 5] *= 200                                   # one channel far larger than the rest, in every token
    w = layer.weight.detach()
    want = x @ w.t()
    w_q, w_scale = qz.absmax_quantize(w, dim=1)
    errors = {}
    for name, per_token, threshold in (("naive", False, None), ("split", False, 6.0), ("llm.int8", True, 6.0)):
        y, _ = ox.int8_matmul(x, w_q, w_scale, per_token, threshold)
        errors[name] = float((y - want).norm() / want.norm())
    assert errors["split"] < errors["naive"] / 5 and errors["llm.int8"] < errors["naive"] / 5


def test_integer_path_equals_simulated_quantization(layer, inputs):
    x = inputs.clone()
    x[0, 2] = -40.0
    w = layer.weight.detach()
    w_q, w_scale = qz.absmax_quantize(w, dim=1)
    y, _ = ox.int8_matmul(x, w_q, w_scale, per_token=True, threshold=6.0)
    keep = x.abs().amax(dim=0) >= 6.0
    q, s = ox.quantize_activations(x.masked_fill(keep, 0.0), per_token=True)
    simulated = (q.float() * s + x * keep) @ qz.absmax_dequantize(w_q, w_scale).t()
    torch.testing.assert_close(y, simulated, rtol=1e-5, atol=1e-5)


def test_quantize_activations_per_tensor_has_one_scale(inputs):
    q, scale = ox.quantize_activations(inputs, per_token=False)
    assert scale.numel() == 1 and q.dtype == torch.int8 and int(q.abs().max()) == 127
    q_rows, scales = ox.quantize_activations(inputs, per_token=True)
    assert scales.shape == (12, 1) and bool((q_rows.abs().amax(dim=1) == 127).all())


def test_outlier_int8_model_switches_rules_on_one_set_of_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    x = torch.randn(6, 32) * 0.3
    x[:, 4] = 30.0
    want = model(x).detach()
    model = ox.outlier_int8_model(model, per_token=False, threshold=None)
    assert all(isinstance(model[i], ox.OutlierInt8Linear) for i in (0, 2))
    with torch.inference_mode():
        naive = model(x)
        assert ox.float_share(model) == 0.0
        assert ox.set_rule(model, per_token=True, threshold=6.0) == 2
        split = model(x)
    assert ox.float_share(model) > 0
    assert (split - want).norm() < (naive - want).norm()


def test_bad_inputs_are_one_sentence(layer):
    with pytest.raises(ValueError, match="threshold must be > 0"):
        ox.outlier_columns(torch.ones(2, 3), threshold=0)
    with pytest.raises(ValueError, match="int8 QuantLinear"):
        ox.OutlierInt8Linear.from_quant(qz.QuantLinear.from_linear(layer, bits=4))
    with pytest.raises(ValueError, match="no OutlierInt8Linear"):
        ox.set_rule(nn.Sequential(nn.Linear(2, 2)))
