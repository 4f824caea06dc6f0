"""Another engine, side by side: a causal LM exported to ONNX, to run with onnxruntime on the CPU.

The exported graph is one decode step *with* the key/value cache, so onnxruntime does the same
work per token as torch does: inputs ``input_ids (1, S)``, ``attention_mask (1, P + S)``,
``position_ids (1, S)`` and the past keys and values of every layer (:func:`past_names`); outputs
the logits and the updated keys and values. The prompt goes through the same graph: its "past" is
one dummy slot that the attention mask hides (mask 0), so one graph serves the prompt and every
later token.

    onnx_file = export.export_onnx(model, folder / "model.onnx")     # torch.onnx.export (dynamo)
    int8_file = export.quantize_int8(onnx_file)                      # onnxruntime's dynamic int8
    files = export.onnx_files("austen-gpt-small")                    # both, exported once into the cache

The engine that runs the graph is :class:`lmguide.engines.onnx.OnnxEngine` (the same interface as
the torch engine: ``lmguide.engines.open_engine(name, "onnx")``). :func:`check_logits` compares an
engine's logits with torch's on the same input. onnxruntime's int8 is not always faster than its
fp32 (it depends on the CPU's int8 instructions): measure it (``lmguide.measure.decode``).
"""
from __future__ import annotations

import contextlib
import io
import time
import warnings
from pathlib import Path

import torch

from lmguide._util import MIB, quiet_loggers
from lmguide.eval import weights_key


def past_names(config) -> list[str]:
    """The graph's past inputs, layer by layer: ``past.0.key, past.0.value, past.1.key, ...``."""
    return [f"past.{i}.{kv}" for i in range(config.num_hidden_layers) for kv in ("key", "value")]


class _DecodeStep(torch.nn.Module):
    """The model as a function of flat tensors (what an ONNX graph can take): ids, mask, positions, past."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)],
                             config=self.model.config)
        out = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         use_cache=True)
        present = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
        return (out.logits, *present)


def empty_past(config, length: int = 1, batch: int = 1) -> list[torch.Tensor]:
    """Zero keys and values for ``length`` dummy positions: (B, kv heads, length, head size) per layer."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return [torch.zeros(batch, heads, length, head_size) for _ in range(2 * config.num_hidden_layers)]


def export_onnx(model, out_file: str | Path, progress: bool = False) -> Path:
    """Export one decode step of a causal LM (with its KV cache) to ``out_file``; returns the path.

    Attention is switched to the eager implementation for the export (the fused kernel's
    ``is_causal`` flag depends on the input length, which an exported graph cannot branch on).
    """
    import torch.onnx._internal.exporter._core  # noqa: F401  (its loggers exist before they are quietened)

    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    before = config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        step = _DecodeStep(model).eval()
        ex_ids = torch.tensor([[11, 12, 13]])                       # (1, S=3)
        ex_past = empty_past(config, length=5)                      # 5 past positions
        ex_mask = torch.ones(1, 8, dtype=torch.long)                 # (1, P + S)
        ex_pos = torch.tensor([[5, 6, 7]])
        seq, past, total = torch.export.Dim("seq"), torch.export.Dim("past"), torch.export.Dim("total")
        shapes = {"input_ids": {1: seq}, "attention_mask": {1: total}, "position_ids": {1: seq},
                  "past": tuple({2: past} for _ in ex_past)}
        names = past_names(config)
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
        with quiet, quiet_loggers("torch.onnx", "onnxscript"), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecated pytree calls
            torch.onnx.export(step, (ex_ids, ex_mask, ex_pos, *ex_past), str(out_file),
                              input_names=["input_ids", "attention_mask", "position_ids", *names],
                              output_names=["logits", *[n.replace("past", "present") for n in names]],
                              dynamic_shapes=shapes, dynamo=True, external_data=False, verbose=False)
    finally:
        model.set_attn_implementation(before)
    return out_file


def quantize_int8(onnx_file: str | Path, out_file: str | Path | None = None) -> Path:
    """onnxruntime's own dynamic int8 quantization (weights int8, activations quantized on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_file = Path(onnx_file)
    out_file = Path(out_file or onnx_file.with_name(onnx_file.stem + ".int8.onnx"))
    # quantize_dynamic logs a pre-processing tip at WARNING on the root logger
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_loggers(""):
        warnings.simplefilter("ignore")
        quantize_dynamic(str(onnx_file), str(out_file), weight_type=QuantType.QInt8)
    return out_file


def check_logits(model, engine, input_ids: torch.Tensor) -> float:
    """Largest absolute difference between torch's logits and ``engine``'s on the same prompt (from an empty cache)."""
    with torch.no_grad():
        want = model(input_ids, attention_mask=torch.ones_like(input_ids)).logits[0].float()  # (T, V)
    engine.reset()
    got = engine.eval(input_ids)
    engine.reset()
    return float((got - want).abs().max())


def onnx_size_mib(onnx_file: str | Path) -> float:
    """Size of an ONNX file in MiB (the graph file holds the weights: nearly all of it)."""
    return Path(onnx_file).stat().st_size / MIB


def onnx_files(name: str, model=None, progress: bool = False) -> dict:
    """fp32 and int8 ONNX files for zoo model ``name``, exported once into the user cache.

    Returns ``{"fp32": path, "int8": path, "export s": seconds (0 when cached)}``.
    """
    from lmguide import zoo

    folder = zoo.cache_dir() / "onnx" / weights_key(name)  # new files, new export
    fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    seconds = 0.0
    if not fp32.is_file():
        if model is None:
            from lmguide import load

            model, _ = load(name)
        start = time.perf_counter()
        partial = export_onnx(model, folder / "model.partial.onnx", progress=progress)
        partial.rename(fp32)
        seconds = time.perf_counter() - start
    if not int8.is_file():
        quantize_int8(fp32, folder / "model.int8.partial.onnx").rename(int8)
    return {"fp32": fp32, "int8": int8, "export s": seconds}

