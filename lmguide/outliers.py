"""Activation outliers, and one int8 method that keeps them: LLM.int8's mixed-precision decomposition.

Notebook 05, section 8. A few input channels of a transformer's linear layers carry values tens
to thousands of times larger than the rest (SmolLM2's MLP output projections: a median channel
peaks near 1, a handful near 2,000). Quantizing a layer's whole input with one absmax scale, as
torch's dynamic int8 does, lets the largest of them set the step for every value of every token.
``lmguide.quantize`` teaches int8 weights and ``QuantLinear`` (one scale per token); this module
adds what the activations need:

1. ``input_absmax``: the statistics; each linear layer's largest |input| per input channel over a text.
2. ``outlier_columns`` / ``quantize_activations``: the input columns that reach the threshold (6.0 in
   the paper), and int8 codes for the other columns, one absmax scale per token or per tensor.
3. ``int8_matmul``: LLM.int8 (Dettmers et al. 2022). Outlier columns are multiplied in float, the rest
   in int8 (per-token inputs, per-output-row weights, int32 sums by ``torch._int_mm``), and the two
   parts added. ``threshold=None, per_token=False`` is naive per-tensor int8, one scale per layer input.
4. ``OutlierInt8Linear``, ``outlier_int8_model``, ``set_rule``: the same as a layer, swapped in for every
   linear layer of a model (its int8 weights made by ``lmguide.quantize.quantize_model``), with the
   rule switchable so that one copy of the int8 weights serves every variant being compared.

bitsandbytes' ``Linear8bitLt`` stores all weights in int8 and multiplies the outlier columns with their
de-quantized weights in float16; here the float part is float32 (the CPU's) and the weights are the same
int8 ones, so the two parts differ only in how the *activations* are held.
"""
from __future__ import annotations

import torch
from torch import nn

from lmguide.quantize import QuantLinear, absmax_dequantize, quantize_model

OUTLIER_THRESHOLD = 6.0  # LLM.int8's: an input column with any |x| >= 6 stays in float


# ------------------------------------------------------------------------------ 1. statistics


@torch.inference_mode()
def input_absmax(model: nn.Module, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{layer name: (in_features,) largest |input| of each input channel}`` for every ``nn.Linear``
    (and ``QuantLinear``) of ``model``, over the tokens of one forward pass on ``input_ids``."""
    stats, hooks = {}, []

    def record(name):
        def hook(module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(dim=0).float()   # (in,)
            stats[name] = torch.maximum(stats[name], x) if name in stats else x
        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, QuantLinear)):
            hooks.append(module.register_forward_pre_hook(record(name)))
    try:
        model(input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return stats


# ---------------------------------------------------------------------- 2. activations in int8


def outlier_columns(x: torch.Tensor, threshold: float | None = OUTLIER_THRESHOLD) -> torch.Tensor:
    """``(in,)`` bool: the input columns of ``x`` (tokens, in) where some |value| >= ``threshold`` (None: none)."""
    if threshold is None:
        return torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 (got {threshold}); use None to keep no column in float")
    return x.abs().amax(dim=0) >= threshold


def quantize_activations(x: torch.Tensor, per_token: bool = True):
    """Absmax int8 codes of a 2-D input ``x`` (tokens, in): one scale per row (token) or one for all.
    Returns ``(q, scale)``, int8 ``(tokens, in)`` and float32 ``(tokens, 1)`` or ``()``."""
    x = x.float()
    amax = x.abs().amax(dim=1, keepdim=True) if per_token else x.abs().amax()
    scale = amax.clamp(min=1e-12) / 127   # a token of zeros gets a tiny scale, not a division by 0
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale


# ------------------------------------------------------------------------- 3. the decomposition


def int8_matmul(x: torch.Tensor, weight_q: torch.Tensor, weight_scale: torch.Tensor, per_token: bool = True,
                threshold: float | None = OUTLIER_THRESHOLD) -> tuple[torch.Tensor, int]:
    """``x @ W.T`` with ``W = weight_q * weight_scale`` (int8, one scale per output row), LLM.int8's way.

    Columns of ``x`` (tokens, in) that reach ``threshold`` are multiplied in float; the others are
    quantized to int8 (``per_token`` scales or one per tensor) and multiplied in integers, int32 sums.
    Returns ``(y, number of columns kept in float)``, y float32 ``(tokens, out)``.
    """
    x = x.float()
    keep = outlier_columns(x, threshold)                                  # (in,)
    x_q, x_scale = quantize_activations(x.masked_fill(keep, 0.0), per_token)
    acc = torch._int_mm(x_q, weight_q.t())                                # (N, out) int32 sums
    y = acc.float() * x_scale * weight_scale.t()                          # (N, out)
    n_keep = int(keep.sum())
    if n_keep:                                                            # the outlier columns, in float
        w_keep = absmax_dequantize(weight_q[:, keep], weight_scale)       # (out, n_keep)
        y = y + x[:, keep] @ w_keep.t()
    return y, n_keep


# -------------------------------------------------------------------------------- 4. a layer


class OutlierInt8Linear(QuantLinear):
    """An int8 ``QuantLinear`` whose input goes through :func:`int8_matmul`: per token or per tensor, and
    LLM.int8's outlier columns in float when ``threshold`` is set. Counts the columns it kept in float."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, per_token: bool = True,
                 threshold: float | None = OUTLIER_THRESHOLD):
        super().__init__(in_features, out_features, bias, bits=8)
        self.per_token, self.threshold = per_token, threshold
        self.float_columns, self.columns = 0, 0   # summed over calls: the float share of the inputs

    @classmethod
    def from_quant(cls, layer: QuantLinear, per_token: bool = True,
                   threshold: float | None = OUTLIER_THRESHOLD) -> "OutlierInt8Linear":
        """The same int8 weights as ``layer`` (shared, not copied), with this input rule."""
        if layer.bits != 8:
            raise ValueError(f"OutlierInt8Linear takes an int8 QuantLinear (got bits={layer.bits})")
        new = cls(layer.in_features, layer.out_features, layer.bias is not None, per_token, threshold)
        new.weight_q, new.weight_scale, new.bias = layer.weight_q, layer.weight_scale, layer.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y, n_keep = int8_matmul(x.reshape(-1, shape[-1]), self.weight_q, self.weight_scale,
                                self.per_token, self.threshold)
        self.float_columns, self.columns = self.float_columns + n_keep, self.columns + shape[-1]
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, per_token={self.per_token}, threshold={self.threshold}"


def outlier_int8_model(model: nn.Module, per_token: bool = True,
                       threshold: float | None = OUTLIER_THRESHOLD, skip: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """``model`` with every linear layer int8 (``quantize_model(model, bits=8)``, in place) and its
    input handled by :class:`OutlierInt8Linear`'s rule. Returns the model.

    Layers named in ``skip`` stay in float: by default the output layer, as bitsandbytes' LLM.int8
    (``llm_int8_skip_modules``) leaves it; it is also the largest layer's worth of temporaries per call."""
    quantize_model(model, bits=8, skip=skip)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is QuantLinear:
                setattr(parent, child_name, OutlierInt8Linear.from_quant(child, per_token, threshold))
    return model


def set_rule(model: nn.Module, per_token: bool = True, threshold: float | None = OUTLIER_THRESHOLD) -> int:
    """Give every ``OutlierInt8Linear`` of ``model`` this input rule (and zero its counts); returns how many."""
    layers = [m for m in model.modules() if isinstance(m, OutlierInt8Linear)]
    if not layers:
        raise ValueError("the model has no OutlierInt8Linear layers; convert it with outlier_int8_model(model) first")
    for layer in layers:
        layer.per_token, layer.threshold = per_token, threshold
        layer.float_columns, layer.columns = 0, 0
    return len(layers)


def float_share(model: nn.Module) -> float:
    """The share of input columns the ``OutlierInt8Linear`` layers kept in float since ``set_rule`` (0 to 1)."""
    layers = [m for m in model.modules() if isinstance(m, OutlierInt8Linear)]
    columns = sum(m.columns for m in layers)
    return sum(m.float_columns for m in layers) / columns if columns else 0.0
