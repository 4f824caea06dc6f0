import pytest
import torch

from lmguide import exercises, quantize


def check(key, answer, capsys):
    q = exercises.get(key)
    ok = q.check(answer)
    return bool(ok), capsys.readouterr().out


@pytest.mark.parametrize("key", ["nb05.absmax_scale", "nb05.fake_quantize", "nb05.bits_per_weight", "nb05.which_blocks"])
def test_reference_passes_and_wrong_example_fails(key, capsys):
    q = exercises.get(key)
    assert check(key, q.solve(), capsys)[0]
    ok, out = check(key, q.wrong_example, capsys)
    assert not ok and out.startswith("✗ Not yet:") and len(out) > 30


def test_absmax_scale_accepts_rounded_and_text_answers(capsys):
    scale = exercises.get("nb05.absmax_scale").solve()
    assert abs(scale - 1.905 / 127) < 1e-7
    assert check("nb05.absmax_scale", round(scale, 4), capsys)[0]
    assert check("nb05.absmax_scale", str(round(scale, 4)), capsys)[0]
    ok, out = check("nb05.absmax_scale", 1.905 / 128, capsys)
    assert not ok and "-127 to 127" in out
    ok, out = check("nb05.absmax_scale", 1.905, capsys)
    assert not ok and "integer step" in out


def test_fake_quantize_accepts_a_learners_version_and_names_the_mistakes(capsys):
    def round_trip(row):
        scale = row.abs().max() / 127
        return torch.round(row / scale).clamp(-127, 127) * scale

    assert check("nb05.fake_quantize", round_trip, capsys)[0]
    ok, out = check("nb05.fake_quantize", lambda row: torch.round(row / (row.abs().max() / 127)), capsys)
    assert not ok and "codes" in out
    ok, out = check("nb05.fake_quantize", lambda row: torch.round(row / (row.abs().max() / 127)).to(torch.int8), capsys)
    assert not ok and "integer codes" in out
    ok, out = check("nb05.fake_quantize", lambda row: torch.round(row / (row.abs().max() / 128)) * (row.abs().max() / 128), capsys)
    assert not ok and "expected" in out
    ok, out = check("nb05.fake_quantize", 3.0, capsys)
    assert not ok and "function itself" in out
    # the reference is the library's round trip
    row = torch.tensor([0.5, -1.0, 0.25])
    assert torch.equal(exercises.get("nb05.fake_quantize").solve()(row),
                       quantize.absmax_dequantize(*quantize.absmax_quantize(row)))


def test_bits_per_weight_explains_the_near_misses(capsys):
    assert check("nb05.bits_per_weight", "4.5", capsys)[0]
    ok, out = check("nb05.bits_per_weight", 5, capsys)
    assert not ok and "groups of 32" in out
    ok, out = check("nb05.bits_per_weight", 4.25, capsys)
    assert not ok and "two" in out


def test_which_blocks_is_what_the_quantizer_does():
    # the claim behind the answer, checked numerically on Q4_1-shaped weights
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 128, generator=g)
    on_grid = quantize.fake_quantize(w, bits=4, group_size=32)
    same = (quantize.fake_quantize(on_grid, bits=4, group_size=32) - on_grid).abs().max()
    wider = (quantize.fake_quantize(on_grid, bits=4, group_size=64) - on_grid).abs().max()
    shifted = (torch.roll(quantize.fake_quantize(torch.roll(on_grid, 16, 1), bits=4, group_size=32), -16, 1) - on_grid).abs().max()
    assert same < 0.01 * wider and same < 0.01 * shifted


def test_which_blocks_explains_each_wrong_letter(capsys):
    for letter in "BCD":
        ok, out = check("nb05.which_blocks", letter.lower(), capsys)
        assert not ok and len(out) > 60
