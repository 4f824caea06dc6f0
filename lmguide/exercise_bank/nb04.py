"""Exercises for notebook 04: fine-tuning, fully and with LoRA."""
from __future__ import annotations

import json
import math

import torch

from lmguide.exercises import FunctionExercise, NumberExercise, register


def _config(name: str) -> dict:
    from lmguide.zoo import WEIGHTS

    return json.loads((WEIGHTS / name / "config.json").read_text())


@register("nb04.lora_parameters")
class LoraParameters(NumberExercise):
    rel_tol = 0.0
    prompt = ("LoRA with rank r=4 on the c_attn layers only of austen-gpt-large (8 blocks, width 256): "
              "how many trainable parameters does it add?")
    hints = (
        "A LoRA layer adds A (r x in) and B (out x r): r * (in + out) numbers. Which in and out does c_attn have?",
        "c_attn makes queries, keys and values at once, so its output is 3 x the width. Count it once per block.",
    )
    solution_code = """
cfg = lg.load("austen-gpt-large")[0].config
r, d = 4, cfg.n_embd
cfg.n_layer * r * (d + 3 * d)     # c_attn maps d -> 3d, once per block
"""
    wrong_example = 4 * (256 + 768)  # one block only

    def solve(self):
        cfg = _config("austen-gpt-large")
        d = cfg["n_embd"]
        return cfg["n_layer"] * 4 * (d + 3 * d)

    def describe_miss(self, value, expected):
        cfg = _config("austen-gpt-large")
        d, layers = cfg["n_embd"], cfg["n_layer"]
        if math.isclose(float(value), expected / layers):
            return "that is one block's worth; austen-gpt-large has several blocks, each with its own c_attn."
        if math.isclose(float(value), layers * 4 * 2 * d):
            return "c_attn's output is not d wide: it makes queries, keys and values together."
        if math.isclose(float(value), layers * 3 * d * d):
            return "that is the size of the full c_attn weights, the thing LoRA avoids training."
        return super().describe_miss(value, expected)


@register("nb04.merge")
class MergeLora(FunctionExercise):
    function_name = "merge_lora"
    library_function = "lmguide.lora.LoRALayer.delta_weight"
    prompt = ("Write merge_lora(weight, A, B, alpha, fan_in_fan_out): the weight with the LoRA update folded in. "
              "A is (r, in), B is (out, r); weight is (out, in), or (in, out) when fan_in_fan_out is True "
              "(GPT-2's Conv1D). Check it with q.check(merge_lora).")
    hints = (
        "The update is (alpha / r) * B @ A, shaped (out, in). r is A.shape[0].",
        "A Conv1D weight is stored transposed, so add the transpose of the update when fan_in_fan_out is True.",
    )
    solution_code = """
def merge_lora(weight, A, B, alpha, fan_in_fan_out):
    delta = (alpha / A.shape[0]) * B @ A          # (out, in)
    return weight + (delta.T if fan_in_fan_out else delta)
"""
    wrong_example = staticmethod(lambda weight, A, B, alpha, fan_in_fan_out: weight + B @ A if not fan_in_fan_out
                                 else weight + (B @ A).T)  # forgets alpha / r

    def solve(self):
        def merge_lora(weight, A, B, alpha, fan_in_fan_out):
            delta = (alpha / A.shape[0]) * B @ A
            return weight + (delta.T if fan_in_fan_out else delta)

        return merge_lora

    def diagnose_function(self, answer, expected):
        gen = torch.Generator().manual_seed(4)
        n_in, n_out, r, alpha = 6, 4, 2, 8.0
        A, B = torch.randn(r, n_in, generator=gen), torch.randn(n_out, r, generator=gen)
        for fan_in_fan_out, shape in ((False, (n_out, n_in)), (True, (n_in, n_out))):
            weight = torch.randn(*shape, generator=gen)
            want = expected(weight, A, B, alpha, fan_in_fan_out)
            layout = "Conv1D (fan_in_fan_out=True)" if fan_in_fan_out else "Linear"
            try:
                got = answer(weight.clone(), A.clone(), B.clone(), alpha, fan_in_fan_out)
            except RuntimeError as exc:
                return (f"for a {layout} weight of shape {shape} your function failed ({exc}); "
                        f"the update B @ A is (out, in): does it need turning round for this layout?")
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
                got_shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return f"for a {layout} weight of shape {shape} you returned {got_shape}; keep the weight's shape."
            if torch.allclose(got, want, atol=1e-5):
                continue
            unscaled = weight + ((B @ A).T if fan_in_fan_out else B @ A)
            if torch.allclose(got, unscaled, atol=1e-5):
                return "the update is missing its scale alpha / r (here 8 / 2 = 4)."
            if torch.allclose(got, weight, atol=1e-5):
                return f"for a {layout} weight your function returned the weight unchanged."
            return f"for a {layout} weight the merged values differ from weight + (alpha / r) * B @ A (check the orientation)."
        return None


QWEN_PARAMETERS = 1_543_714_304  # Qwen2.5-1.5B (the zoo's qwen2.5-coder-1.5b), embeddings tied
QLORA_SHAPES = ((1536, 1536), (1536, 256))  # query and value projections: (in, out) of each of 28 layers


def _qlora_bytes(base_bits: float = 4.25, optimizer_copies: int = 3) -> float:
    lora = 28 * sum(16 * (i + o) for i, o in QLORA_SHAPES)
    return QWEN_PARAMETERS * base_bits / 8 + lora * 4 * (1 + optimizer_copies)


@register("nb04.qlora_memory")
class QLoRAMemory(NumberExercise):
    rel_tol = 0.01
    prompt = ("QLoRA on the Qwen 1.5 B (1,543,714,304 parameters): the frozen base is stored in 4 bits per weight plus "
              "one 16-bit scale per block of 64 weights; LoRA adapters of rank 16 sit on the query (1536 -> 1536) and "
              "value (1536 -> 256) projections of each of its 28 layers and train in fp32 with AdamW. How many MiB do "
              "the base, the adapters, their gradients and AdamW's state take together (activations not counted)?")
    hints = (
        "The base: bits per weight including the scales' share, times the parameters, in bytes. Only the adapters "
        "get gradients and optimizer state.",
        "A rank-r adapter on an (in -> out) layer has r x (in + out) parameters. fp32 is 4 bytes; AdamW keeps two "
        "buffers per trainable parameter. 1 MiB = 2**20 bytes.",
    )
    solution_code = """
base = 1_543_714_304 * (4 + 16 / 64) / 8                     # 4.25 bits a weight, in bytes
lora = 28 * (16 * (1536 + 1536) + 16 * (1536 + 256))          # trainable parameters
(base + lora * 4 * (1 + 1 + 2)) / 2**20                      # + weights, gradients, AdamW's two moments
"""
    wrong_example = _qlora_bytes(base_bits=16) / 2 ** 20  # the base kept in 16 bits: no QLoRA

    def solve(self):
        return _qlora_bytes() / 2 ** 20

    def describe_miss(self, value, expected):
        for bytes_, what in (
                (_qlora_bytes(base_bits=4), "the 4-bit codes without their scales: a 16-bit scale per 64 weights adds "
                                            "a quarter bit per weight"),
                (_qlora_bytes(base_bits=16), "the base in 16 bits; QLoRA keeps it in 4"),
                (_qlora_bytes(optimizer_copies=0), "the adapters' weights but not their gradients and AdamW's state"),
                (_qlora_bytes(optimizer_copies=2), "AdamW's state as one buffer; it keeps two per parameter")):
            if math.isclose(value, bytes_ / 2 ** 20, rel_tol=self.rel_tol):
                return f"that counts {what}."
        if math.isclose(value, expected * 2 ** 20 / 1e6, rel_tol=self.rel_tol):
            return "that is in MB (10**6 bytes); the question asks for MiB (2**20 bytes)."
        return super().describe_miss(value, expected)
