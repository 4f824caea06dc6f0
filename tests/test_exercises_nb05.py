import pytest
import torch

from lmguide import exercises, quantize


def check(key, answer, capsys):
    q = exercises.get(key)
    ok = q.check(answer)
    return bool(ok), capsys.readouterr().out


@pytest.mark.parametrize("key", ["nb05.absmax_scale", "nb05.fake_quantize", "nb05.bits_per_weight", "nb05.outlier_codes"])
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


def test_outlier_codes_is_what_absmax_int8_does():
    # the answer checked numerically: one outlier of 60 in a row of values in [-1, 1], one absmax scale
    g = torch.Generator().manual_seed(0)
    row = torch.rand(4096, generator=g) * 2 - 1
    row[7] = 60.0
    codes = torch.round(row / (row.abs().max() / 127))
    ordinary = torch.cat([codes[:7], codes[8:]])
    assert len(ordinary.unique()) == exercises.get("nb05.outlier_codes").solve() == 5


def test_outlier_codes_names_the_usual_mistakes(capsys):
    ok, out = check("nb05.outlier_codes", 255, capsys)
    assert not ok and "outlier decides" in out
    ok, out = check("nb05.outlier_codes", "4", capsys)
    assert not ok and "zero is a code" in out
    assert check("nb05.outlier_codes", "5", capsys)[0]
