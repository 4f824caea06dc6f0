"""Quantization from scratch: int8 and int4 weights, a quantized linear layer, one model in many precisions.

The lesson of notebook 05, in the order it builds it:

1. ``absmax_quantize`` / ``zeropoint_quantize``: int8 with one scale (per tensor) or one per
   output row (per channel), checked against ``torch.quantize_per_tensor/_per_channel``.
2. ``quantize_int4``: group-wise 4-bit codes with a scale and a minimum per group, two codes
   packed in each byte (``pack_int4``). GGUF's Q8_0 and Q4_1 blocks, byte for byte, are
   ``lmguide.gguf_blocks``.
3. ``QuantLinear``: a linear layer holding int8 or packed int4 weights; ``quantize_model``
   swaps it in for every ``nn.Linear`` (after ``conv1d_to_linear`` for GPT-2).
4. ``save_quantized`` / ``load_quantized``: integer tensors + scales in safetensors,
   re-assembled into a model skeleton built from its config (no pickles).
5. ``to_precision``: one model as fp32, bf16, fp16, torch's dynamic int8, our int8 or int4
   (measured side by side by ``lmguide.measure.precision``).

torch's own eager-mode quantization (``torch.ao.quantization.quantize_dynamic``) is
deprecated in torch 2.13 and warns on every call; ``dynamic_int8`` calls it with those
warnings caught here, so they never reach a notebook's stderr. If it goes away,
``quantize_model(model, bits=8)`` is the replacement.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- 1. int8


def absmax_quantize(w: torch.Tensor, bits: int = 8, dim: int | None = None):
    """Symmetric quantization: ``q = round(w / scale)`` with ``scale = max|w| / (2**(bits-1) - 1)``.

    ``dim=None`` gives one scale for the whole tensor; ``dim=1`` one per row (per output
    channel of a weight matrix). Returns ``(q, scale)``: int8 codes and float32 scales shaped
    to broadcast against ``w``.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8 (got {bits}); int8 holds at most 8-bit codes")
    qmax = 2 ** (bits - 1) - 1
    w = w.float()
    amax = w.abs().amax() if dim is None else w.abs().amax(dim=dim, keepdim=True)
    scale = amax.clamp(min=1e-12) / qmax      # a row of zeros gets a tiny scale, not a division by 0
    q = torch.round(w / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale


def absmax_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Back to float32: ``q * scale``."""
    return q.float() * scale


def zeropoint_quantize(w: torch.Tensor, bits: int = 8, dim: int | None = None):
    """Asymmetric quantization onto 0..2**bits-1: ``q = round(w / scale) + zero_point``.

    The range [min, max] is widened to include 0 so that 0.0 is stored exactly (padding and
    ReLU zeros stay zeros). Returns ``(q, scale, zero_point)``: uint8 codes, float32 scales
    and int32 zero points, shaped to broadcast against ``w``.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8 (got {bits}); uint8 holds at most 8-bit codes")
    qmax = 2 ** bits - 1
    w = w.float()
    lo = (w.amin() if dim is None else w.amin(dim=dim, keepdim=True)).clamp(max=0)
    hi = (w.amax() if dim is None else w.amax(dim=dim, keepdim=True)).clamp(min=0)
    scale = ((hi - lo) / qmax).clamp(min=1e-12)
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.int32)
    q = (torch.round(w / scale) + zero_point).clamp(0, qmax).to(torch.uint8)
    return q, scale, zero_point


def zeropoint_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Back to float32: ``(q - zero_point) * scale``."""
    return (q.int() - zero_point).float() * scale


@contextlib.contextmanager
def _torch_quantization_quiet():
    """Hide the deprecation warnings torch 2.13 raises for its quantized tensors and ``torch.ao``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.ao.*")
        yield


def torch_int8_codes(w: torch.Tensor, scale: torch.Tensor, zero_point=None, dim: int | None = None) -> torch.Tensor:
    """The codes torch's own quantizer gives for the same scale (and zero point): the library check.

    Symmetric (``zero_point=None``) uses ``qint8``; asymmetric uses ``quint8``; ``dim`` selects
    ``quantize_per_channel`` along that axis.
    """
    dtype = torch.qint8 if zero_point is None else torch.quint8
    with _torch_quantization_quiet():
        if dim is None:
            zp = 0 if zero_point is None else int(zero_point)
            qt = torch.quantize_per_tensor(w.float(), float(scale), zp, dtype)
        else:
            scales = scale.flatten().double()
            zps = torch.zeros_like(scales, dtype=torch.long) if zero_point is None else zero_point.flatten().long()
            qt = torch.quantize_per_channel(w.float(), scales, zps, axis=0 if dim == 1 else 1, dtype=dtype)
        return qt.int_repr()


# ------------------------------------------------------------------------- 2. int4 groups


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes (0..15) per byte along the last axis: code 2i in the low nibble, 2i+1 in the high."""
    if q.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even number of codes in the last axis (got {q.shape[-1]})")
    q = q.to(torch.uint8)
    return q[..., 0::2] | (q[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4``: ``(..., n/2)`` bytes -> ``(..., n)`` codes 0..15."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=-1).flatten(-2)


def quantize_int4(w: torch.Tensor, group_size: int = 32):
    """Group-wise asymmetric 4-bit quantization of a 2-D weight, Q4_1's rule applied along each row.

    Each run of ``group_size`` weights in a row gets a scale ``d = (max - min) / 15`` and a minimum
    ``m`` (both stored as float16), and codes ``q = trunc((w - m) / d + 0.5)`` in 0..15.
    Returns ``(packed, scale, minimum)``: uint8 ``(out, in/2)``, float16 ``(out, in/group)`` twice.
    """
    if w.dim() != 2:
        raise ValueError(f"quantize_int4 takes a 2-D weight matrix (got {w.dim()} dimensions)")
    out_features, in_features = w.shape
    if group_size < 2 or group_size % 2 or in_features % group_size:
        raise ValueError(f"group_size must be even and divide the row length {in_features} (got {group_size})")
    groups = w.float().reshape(out_features, in_features // group_size, group_size)   # (out, G, g)
    d, m, q = q4_1_codes(groups)
    return pack_int4(q.reshape(out_features, in_features)), d.squeeze(-1), m.squeeze(-1)


def q4_1_codes(blocks: torch.Tensor):
    """Q4_1's rule on the last axis: a float16 scale ``d = (max - min) / 15`` and minimum, codes 0..15,
    computed as ggml computes them (``gguf_blocks`` stores them in llama.cpp's byte layout)."""
    lo = blocks.amin(dim=-1, keepdim=True)
    hi = blocks.amax(dim=-1, keepdim=True)
    d = (hi - lo) / 15
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc((blocks - lo) * inv + 0.5).clamp(0, 15).to(torch.uint8)
    return d.to(torch.float16), lo.to(torch.float16), q


def dequantize_int4(packed: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    """Back to float32: ``q * d + m`` for each group."""
    q = unpack_int4(packed).float()                                   # (out, in)
    out_features, in_features = q.shape
    n_groups = scale.shape[-1]
    q = q.reshape(out_features, n_groups, in_features // n_groups)    # (out, G, g)
    # in place: one float32 copy of the weight at a time (the int4 layer's forward calls this on every step)
    return q.mul_(scale.float()[..., None]).add_(minimum.float()[..., None]).reshape(out_features, in_features)


def fake_quantize(w: torch.Tensor, bits: int = 8, group_size: int | None = None, dim: int | None = 1) -> torch.Tensor:
    """``w`` after a round trip through quantization: int8 absmax (``dim``) or int4 groups."""
    if bits == 4:
        return dequantize_int4(*quantize_int4(w, group_size or 32))
    return absmax_dequantize(*absmax_quantize(w, bits, dim))


# ----------------------------------------------------------------------- 3. a quantized layer


class QuantLinear(nn.Module):
    """``nn.Linear`` with integer weights: int8 per output row, or int4 in groups along each row.

    int8: weights ``q * scale`` (one float32 scale per row); the input is quantized per token
    on the fly (absmax) and multiplied in integers (``torch._int_mm``, int32 sums), as torch's
    dynamic quantization does. int4: codes packed two per byte with a float16 scale and
    minimum per group; the forward de-quantizes the weight and multiplies in float (smaller,
    not faster: a fused int4 kernel is what llama.cpp adds).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 8, group_size: int = 32):
        super().__init__()
        if bits not in (4, 8):
            raise ValueError(f"bits must be 8 or 4 (got {bits})")
        self.in_features, self.out_features, self.bits, self.group_size = in_features, out_features, bits, group_size
        if bits == 8:
            self.register_buffer("weight_q", torch.zeros(out_features, in_features, dtype=torch.int8))
            self.register_buffer("weight_scale", torch.ones(out_features, 1))
        else:
            if in_features % group_size:
                raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
            n_groups = in_features // group_size
            self.register_buffer("weight_packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
            self.register_buffer("weight_scale", torch.ones(out_features, n_groups, dtype=torch.float16))
            self.register_buffer("weight_min", torch.zeros(out_features, n_groups, dtype=torch.float16))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8, group_size: int = 32) -> "QuantLinear":
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, bits, group_size)
        w = linear.weight.detach().float()
        if bits == 8:
            layer.weight_q, layer.weight_scale = absmax_quantize(w, 8, dim=1)
        else:
            layer.weight_packed, layer.weight_scale, layer.weight_min = quantize_int4(w, group_size)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().float().clone()
        return layer

    def dequantized_weight(self) -> torch.Tensor:
        if self.bits == 8:
            return absmax_dequantize(self.weight_q, self.weight_scale)
        return dequantize_int4(self.weight_packed, self.weight_scale, self.weight_min)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 4 or x.dtype != torch.float32:
            return F.linear(x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])                                     # (N, in)
        x_scale = x2.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127  # (N, 1): one scale per token
        x_q = torch.round(x2 / x_scale).to(torch.int8)                    # (N, in)
        acc = torch._int_mm(x_q, self.weight_q.t())                       # (N, out) int32 sums
        y = acc.float() * x_scale * self.weight_scale.t()                 # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.bits == 4 else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}{group}"


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every transformers ``Conv1D`` (GPT-2's linear layer, weight stored (in, out)) by an
    ``nn.Linear`` holding the transposed weight; returns how many were replaced."""
    from transformers.pytorch_utils import Conv1D

    replaced = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape                          # Conv1D: (in, out); y = x @ W + b
                linear = nn.Linear(n_in, n_out, dtype=child.weight.dtype)
                linear.weight = nn.Parameter(child.weight.detach().t().contiguous())  # nn.Linear: (out, in)
                linear.bias = nn.Parameter(child.bias.detach().clone())
                setattr(parent, child_name, linear)
                replaced += 1
    return replaced


def layer_counts(model: nn.Module) -> dict:
    """How many layers of each linear kind a model holds (what dynamic quantization will touch)."""
    from transformers.pytorch_utils import Conv1D

    counts = {"nn.Linear": 0, "Conv1D": 0, "quantized": 0}
    for m in model.modules():
        name = type(m).__module__ + "." + type(m).__name__
        if isinstance(m, QuantLinear) or ("quantized" in name and type(m).__name__ == "Linear"):
            counts["quantized"] += 1
        elif isinstance(m, Conv1D):
            counts["Conv1D"] += 1
        elif type(m) is nn.Linear:
            counts["nn.Linear"] += 1
    return counts


def _tied_head(model: nn.Module):
    """``(name of the output head, the input embedding)`` when the two share one weight, else ``(None, None)``."""
    get_out = getattr(model, "get_output_embeddings", None)
    head = get_out() if get_out else None
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if head is None or emb is None or head.weight is not emb.weight:
        return None, None
    name = next(n for n, m in model.named_modules() if m is head)
    return name, emb


def quantize_model(model: nn.Module, bits: int = 8, group_size: int = 32, skip: tuple[str, ...] = ()) -> nn.Module:
    """Swap every ``nn.Linear`` (GPT-2's ``Conv1D`` converted first) for a ``QuantLinear``, in place.

    A tied output head is quantized too and the input embedding is set to the head's
    de-quantized weight, so the two stay one tensor in meaning and the file stores it once.
    Layers whose name contains a string in ``skip``, or whose row length the group does not
    divide, stay in float. Returns the model.
    """
    conv1d_to_linear(model)
    head_name, emb = _tied_head(model)
    done = {}
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if type(child) is not nn.Linear or any(s in full for s in skip):
                continue
            if bits == 4 and child.in_features % group_size:
                continue
            layer = QuantLinear.from_linear(child, bits, group_size)
            setattr(parent, child_name, layer)
            done[full] = layer
    if head_name in done and emb is not None:
        emb.weight = nn.Parameter(done[head_name].dequantized_weight().to(emb.weight.dtype), requires_grad=False)
    model._lmguide_quantization = {"bits": bits, "group_size": group_size, "layers": sorted(done),
                                   "tied_head": head_name if head_name in done else ""}
    return model


def quantization_of(model: nn.Module) -> dict | None:
    """What ``quantize_model`` (or ``load_quantized``) recorded on ``model``: bits, group size, the
    quantized layers and the tied head; None for a model it did not quantize."""
    return getattr(model, "_lmguide_quantization", None)


def dynamic_int8(model: nn.Module, inplace: bool = False) -> nn.Module:
    """torch's dynamic int8 quantization of every ``nn.Linear``: int8 weights (one scale per tensor),
    activations quantized on the fly. A new model unless ``inplace``; deprecation warnings caught here.

    The one place the workbook calls ``torch.ao.quantization.quantize_dynamic`` (``to_precision`` and
    the torch engine's "int8" precision, ``lmguide.engines.torch``, go through it). GPT-2's ``Conv1D`` layers are left alone: run
    :func:`conv1d_to_linear` first to quantize them too.
    """
    with _torch_quantization_quiet():
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=inplace)


def torch_state_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` written to memory: how big a pickle of the
    weights would be (used only to measure a model safetensors cannot hold; never loaded)."""
    buffer = io.BytesIO()
    with _torch_quantization_quiet():
        torch.save(model.state_dict(), buffer)
    return buffer.tell()


# ----------------------------------------------------------------------------- 4. save / load

_META_KEY = "lmguide-quantization"


def _tensors_to_save(model: nn.Module, float_dtype) -> tuple[dict, str]:
    """The tensors ``save_quantized`` writes (shared ones once, the tied embedding not at all)."""
    info = model._lmguide_quantization
    emb_name = ""
    if info["tied_head"]:
        emb = model.get_input_embeddings()
        emb_name = next(n for n, m in model.named_modules() if m is emb) + ".weight"
    tensors, seen = {}, set()
    for name, t in model.state_dict().items():
        if name == emb_name:
            continue  # re-made from the quantized head when loading
        if t.numel() and t.data_ptr() in seen:
            continue  # a weight shared by two modules is stored once
        seen.add(t.data_ptr())
        if t.is_floating_point() and not name.endswith(("weight_scale", "weight_min")):
            t = t.to(float_dtype)
        tensors[name] = t.contiguous()
    return tensors, emb_name


def quantized_file_bytes(model: nn.Module, float_dtype=torch.float16) -> int:
    """Bytes of tensor data ``save_quantized`` would write for this model (the file adds a small header)."""
    tensors, _ = _tensors_to_save(model, float_dtype)
    return sum(t.numel() * t.element_size() for t in tensors.values())


def save_quantized(model: nn.Module, tokenizer, folder: str | Path, float_dtype=torch.float16) -> Path:
    """Write a model quantized by ``quantize_model``: ``model.safetensors`` (integer codes, scales and
    the remaining float tensors in ``float_dtype``), its config and its tokenizer. No pickles."""
    from safetensors.torch import save_file

    info = quantization_of(model)
    if info is None:
        raise ValueError("the model is not quantized; call lmguide.quantize.quantize_model(model, bits=8) first")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, emb_name = _tensors_to_save(model, float_dtype)
    meta = {**info, "embedding": emb_name, "float_dtype": str(float_dtype).replace("torch.", ""),
            "architecture": type(model).__name__}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt", _META_KEY: json.dumps(meta)})
    config = model.config
    config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None and getattr(model, "can_generate", lambda: False)():
        model.generation_config.save_pretrained(folder)
    if tokenizer is not None:
        from lmguide import zoo

        zoo.save_tokenizer(tokenizer, folder)
    return folder


def _auto_class(architecture: str):
    import transformers

    from lmguide import zoo

    return getattr(transformers, zoo.AUTO_CLASSES[zoo.kind_of_architectures(architecture)])


def load_quantized(folder: str | Path, entry=None):
    """``(model, tokenizer)`` from a folder written by ``save_quantized`` (the zoo's loader for int8 variants).

    The model skeleton is built from ``config.json`` without initialising weights, its linear
    layers are swapped for empty ``QuantLinear`` ones, and the stored tensors are copied in.
    """
    import transformers
    from safetensors import safe_open
    from transformers.initialization import no_init_weights

    folder = Path(folder)
    weights = folder / "model.safetensors"
    with safe_open(str(weights), "pt") as f:
        meta = (f.metadata() or {}).get(_META_KEY)
        if meta is None:
            raise ValueError(f"{weights} is not a quantized lmguide model (no {_META_KEY!r} metadata); "
                             f"load it with lmguide.load instead")
        meta = json.loads(meta)
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = transformers.AutoConfig.from_pretrained(folder)
    with no_init_weights():
        model = _auto_class(meta["architecture"]).from_config(config, dtype=torch.float32)
    conv1d_to_linear(model)
    modules = dict(model.named_modules())
    for name in meta["layers"]:
        parent_name, _, child_name = name.rpartition(".")
        old = modules[name]
        setattr(modules[parent_name] if parent_name else model, child_name,
                QuantLinear(old.in_features, old.out_features, old.bias is not None, meta["bits"], meta["group_size"]))
    state = model.state_dict()
    for name, t in tensors.items():
        if name not in state:
            raise ValueError(f"{weights}: tensor {name!r} has no place in a {meta['architecture']}; the file and "
                             f"config.json do not belong together")
        target = state[name]
        if not target.is_floating_point() or name.endswith(("weight_scale", "weight_min")):
            target.copy_(t)
        else:
            target.copy_(t.to(target.dtype))
    if meta["tied_head"]:
        head = dict(model.named_modules())[meta["tied_head"]]
        model.get_input_embeddings().weight = nn.Parameter(head.dequantized_weight(), requires_grad=False)
    missing = [n for n in state if n not in tensors and n != meta["embedding"] and not _shared(model, n)]
    if missing:
        raise ValueError(f"{weights} lacks {len(missing)} tensors (first: {missing[0]!r}); re-make it with "
                         f"lmguide.quantize.save_quantized")
    model._lmguide_quantization = {k: meta[k] for k in ("bits", "group_size", "layers", "tied_head")}
    tokenizer = None  # a folder saved without a tokenizer (as in the tests) gives None
    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _shared(model: nn.Module, name: str) -> bool:
    """Whether the state-dict entry ``name`` is the same tensor as an earlier one (a tied weight)."""
    state = model.state_dict(keep_vars=True)
    t = state[name]
    for other, u in state.items():
        if other == name:
            return False
        if u is t:
            return True
    return False


# ------------------------------------------------------------ 5. one model in many precisions

PRECISIONS = ("fp32", "bf16", "fp16", "int8 dynamic", "int8 (ours)", "int4 (ours)")


def to_precision(model: nn.Module, precision: str, group_size: int = 32, fix_conv1d: bool = True) -> nn.Module:
    """The float32 ``model`` turned into ``precision`` (one of ``PRECISIONS``), in place.

    "int8 dynamic" is torch's ``quantize_dynamic`` (:func:`dynamic_int8`); with ``fix_conv1d`` GPT-2's
    ``Conv1D`` layers become ``nn.Linear`` first (without it, dynamic quantization leaves them in float32).
    How each precision does is measured by ``lmguide.measure.precision``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if precision == "fp32":
        return model.float()
    if precision in ("bf16", "fp16"):
        return model.to(torch.bfloat16 if precision == "bf16" else torch.float16)
    if precision == "int8 dynamic":
        if fix_conv1d:
            conv1d_to_linear(model)
        return dynamic_int8(model, inplace=True)
    return quantize_model(model, bits=8 if precision == "int8 (ours)" else 4, group_size=group_size)
