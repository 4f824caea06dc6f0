import pytest
import torch

from lmguide import gguf_blocks as gb
from lmguide import quantize as qz


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_1"])
def test_gguf_blocks_match_the_gguf_package_byte_for_byte(qtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8 * 32, generator=g)
    x[5] = 4.0
    x[40:72] = 0.0  # an all-zero block: d = 0 must not divide by zero
    ours = gb.q8_0_quantize(x) if qtype == "Q8_0" else gb.q4_1_quantize(x)
    ref = gb.gguf_reference(x, qtype)
    assert torch.equal(ours, ref)
    back = gb.q8_0_dequantize(ours) if qtype == "Q8_0" else gb.q4_1_dequantize(ours)
    assert torch.equal(back.flatten(), gb.gguf_reference(None, qtype, dequantize_raw=ref.numpy()).flatten())


def test_q4_1_of_its_own_output_is_lossless_but_other_blocks_are_not():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64 * 32, generator=g)
    once = gb.q4_1_dequantize(gb.q4_1_quantize(x)).flatten()
    twice = gb.q4_1_dequantize(gb.q4_1_quantize(once)).flatten()
    shifted = torch.roll(gb.q4_1_dequantize(gb.q4_1_quantize(torch.roll(once, 16))).flatten(), -16)
    assert (twice - once).abs().max() < 1e-3 * once.abs().max()
    assert (shifted - once).abs().max() > 10 * (twice - once).abs().max()


def test_gguf_needs_whole_blocks():
    with pytest.raises(ValueError, match="multiple of 32"):
        gb.q8_0_quantize(torch.ones(40))


def test_q4_1_blocks_hold_the_same_codes_as_int4_groups_of_32():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(4, 64, generator=g)
    packed, scale, minimum = qz.quantize_int4(w, group_size=32)
    via_gguf = gb.q4_1_dequantize(gb.q4_1_quantize(w)).reshape(4, 64)
    torch.testing.assert_close(via_gguf, qz.dequantize_int4(packed, scale, minimum), rtol=0, atol=0)
