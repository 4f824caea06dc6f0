"""Exercises for notebook 05 (quantization)."""
from __future__ import annotations

import torch

from lmguide.exercises import ChoiceExercise, FunctionExercise, NumberExercise, register
from lmguide.quantize import absmax_dequantize, absmax_quantize

# a row of weights with one large value, as real weight rows have
_ROW = torch.tensor([0.12, -0.40, 0.05, 1.905, -0.33, 0.0, 0.71, -0.08])


@register("nb05.absmax_scale")
class AbsmaxScale(NumberExercise):
    prompt = (f"The weight row {[round(float(v), 3) for v in _ROW]} is quantized to int8 with one absmax "
              "scale (codes -127..127). What is the scale, i.e. the size of one integer step?")
    hints = ("Absmax maps the largest |weight| in the row to the largest code.",
             "Divide that largest |weight| by the largest int8 code used here.")
    solution_code = """
row = torch.tensor([0.12, -0.40, 0.05, 1.905, -0.33, 0.0, 0.71, -0.08])
row.abs().max() / 127     # lg.quantize.absmax_quantize(row)[1]
"""
    rel_tol = 5e-3  # 0.015 typed for 0.0150 is right
    wrong_example = 1.905 / 128

    def solve(self):
        return float(absmax_quantize(_ROW)[1])

    def describe_miss(self, value, expected):
        amax = float(_ROW.abs().max())
        if abs(value - amax / 128) < 1e-6 or abs(value - amax / 255) < 1e-6:
            return ("int8 symmetric codes run from -127 to 127 (not 128 or 255 steps), so that 0 sits in the "
                    "middle and +x and -x get codes of equal size.")
        if abs(value - amax) < 1e-6 or abs(value - 127 / amax) < 1e-3:
            return "the scale is what one integer step is worth: largest |weight| divided by the largest code."
        return super().describe_miss(value, expected)


def _no_rounding(row):
    scale = row.abs().max() / 127
    return (row / scale) * scale  # forgets to round: gives the row back unchanged


@register("nb05.fake_quantize")
class FakeQuantize(FunctionExercise):
    function_name = "round_trip"
    library_function = "lmguide.quantize.absmax_dequantize(*lmguide.quantize.absmax_quantize(row))"
    prompt = ("Write round_trip(row): quantize a 1-D float tensor to int8 with one absmax scale "
              "(codes -127..127), then de-quantize it, and return the float tensor the model would "
              "compute with. Check it with q.check(round_trip).")
    hints = ("Three steps: scale = max|row| / 127; codes = round(row / scale) kept in -127..127; codes * scale.",
             "torch.round, then .clamp(-127, 127); multiply back by the same scale.")
    solution_code = """
def round_trip(row):
    scale = row.abs().max() / 127
    codes = torch.round(row / scale).clamp(-127, 127)
    return codes * scale
"""
    wrong_example = staticmethod(_no_rounding)

    def solve(self):
        return lambda row: absmax_dequantize(*absmax_quantize(row))

    def diagnose_function(self, answer, expected):
        g = torch.Generator().manual_seed(5)
        rows = [_ROW, torch.randn(64, generator=g) * 0.02, -_ROW]
        for row in rows:
            got = answer(row.clone())
            want = expected(row.clone())
            if not isinstance(got, torch.Tensor) or got.shape != row.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"return a float tensor shaped like the row {tuple(row.shape)}; got {shape}."
            if not got.is_floating_point():
                return "you returned the integer codes; multiply them by the scale to get floats back."
            got = got.float()
            if torch.allclose(got, row, atol=1e-7):
                return "your output equals the input: round the scaled values to whole codes before scaling back."
            scale = float(row.abs().max()) / 127
            if torch.allclose(got, row / scale, atol=1.0):
                return "these look like the codes; multiply them by the scale to de-quantize."
            if not torch.allclose(got, want, atol=1e-6):
                worst = int((got - want).abs().argmax())
                return (f"at position {worst} you give {float(got[worst]):.6g}, expected {float(want[worst]):.6g}: "
                        "check the scale (max|row| / 127) and that you round to the nearest code.")
        return None


@register("nb05.bits_per_weight")
class BitsPerWeight(NumberExercise):
    prompt = ("A group-wise int4 format stores 4-bit codes in groups of 64 weights, plus one float16 "
              "scale and one float16 minimum per group. How many bits does one weight cost on average?")
    hints = ("Count the bits of one whole group (codes, scale and minimum), then divide by the weights in it.",
             "A float16 number is 16 bits; the group has two of them and 64 codes of 4 bits.")
    solution_code = """
(64 * 4 + 16 + 16) / 64     # 4.5; Q4_1 (groups of 32) costs (32 * 4 + 32) / 32 = 5
"""
    rel_tol = 1e-3
    wrong_example = 4

    def solve(self):
        return (64 * 4 + 16 + 16) / 64

    def describe_miss(self, value, expected):
        if value == 4:
            return "4 counts only the codes; the scale and minimum are stored too, shared by the group."
        if value == 5:
            return "5 is right for groups of 32 (Q4_1); here a group has 64 weights to share its 32 bits."
        if abs(value - 4.25) < 1e-9:
            return "that counts one float16 per group; this format stores two (a scale and a minimum)."
        return super().describe_miss(value, expected)


@register("nb05.outlier_codes")
class OutlierCodes(NumberExercise):
    exact = True
    unit = "code"
    prompt = ("A layer's input row has 4,096 values: all lie between -1 and 1 except one, which is 60. It is quantized "
              "to int8 with one absmax scale for the whole row (the scale maps the largest |value| to 127, and each "
              "value is rounded to the nearest code). How many distinct codes can the 4,095 ordinary values use at most?")
    hints = ("First the scale: which value gets code 127, and what is one code step worth?",
             "Then the largest code an ordinary value can get: round(1 / scale). Codes run from minus that to plus that.")
    solution_code = """
scale = 60 / 127                  # one code step is worth 0.47
top = round(1 / scale)            # |x| <= 1 reaches at most code 2
2 * top + 1                       # codes -2..2: five levels for almost every value in the row
"""
    wrong_example = 255  # the whole int8 range: what the row would use without the outlier

    def solve(self):
        return 2 * round(1 / (60 / 127)) + 1

    def describe_miss(self, value, expected):
        if value in (255, 256):
            return "that is every int8 code; with one scale for the row, the outlier decides the step size."
        if value == 2 or value == 3:
            return "count the negative codes, zero and the positive codes: values lie between -1 and 1."
        if value == 4:
            return "zero is a code too: from minus the top code to plus it."
        return super().describe_miss(value, expected)
