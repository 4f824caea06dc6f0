"""LoRA from scratch: a low-rank update beside a frozen layer, for nn.Linear and GPT-2's Conv1D (notebook 04).

A frozen layer computes ``y = x W + b``. LoRA learns a change of W of rank ``r``::

    y = x W + b  +  (alpha / r) * (x A^T) B^T        A: (r, in)   B: (out, r)

``A`` starts random and ``B`` at zero, so training starts from the original model. Only A and B
are trained and saved: r * (in + out) numbers per layer instead of in * out. After training the
update can be folded into the weight (``merge``) so the model runs as fast as before.

GPT-2's ``Conv1D`` is a Linear whose weight is stored transposed, (in, out) instead of
(out, in); that is all peft's ``fan_in_fan_out=True`` is about. The LoRA path is the same
for both; only merging has to know which way round the weight is.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _shape(base: nn.Module) -> tuple[int, int, bool]:
    """(in_features, out_features, weight stored (in, out)?) of a Linear or a Conv1D."""
    from transformers.pytorch_utils import Conv1D

    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features, False
    if isinstance(base, Conv1D):
        n_in, n_out = base.weight.shape  # Conv1D keeps (in, out): forward is x @ W + b
        return n_in, n_out, True
    raise TypeError(f"LoRA wraps nn.Linear or transformers' Conv1D (got {type(base).__name__})")


class LoRALayer(nn.Module):
    """A frozen Linear/Conv1D plus a trainable rank-``r`` update scaled by ``alpha / r``."""

    def __init__(self, base: nn.Module, r: int = 8, alpha: float = 16, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"rank r must be >= 1 (got {r})")
        self.in_features, self.out_features, self.fan_in_fan_out = _shape(base)
        self.base, self.r, self.scaling = base, r, alpha / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features))   # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r))  # (out, r): zero, so the start is the base
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))          # what nn.Linear (and peft) use
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x):  # x: (B, T, in)
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T        # (B, T, r) -> (B, T, out)
        return self.base(x) + self.scaling * update

    def delta_weight(self) -> torch.Tensor:
        """The update as a full matrix, in the base weight's own layout."""
        delta = self.scaling * self.lora_B @ self.lora_A               # (out, in)
        return delta.T if self.fan_in_fan_out else delta               # Conv1D stores (in, out)

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The base layer with the update added to its weight (a plain Linear/Conv1D again)."""
        self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        for p in self.base.parameters():
            p.requires_grad_(True)
        return self.base


def matching_modules(model: nn.Module, targets) -> list[str]:
    """Names of modules called one of ``targets`` (the last part of the name), as peft matches them."""
    return [n for n, _ in model.named_modules() if n.rsplit(".", 1)[-1] in set(targets)]


def replace_with_lora(model: nn.Module, targets, r: int = 8, alpha: float = 16, dropout: float = 0.0) -> list[str]:
    """Freeze ``model`` and replace each module named in ``targets`` by a ``LoRALayer``, in place; returns
    their names. (peft's way, which wraps the model in a new ``PeftModel``, is ``finetune.add_peft_lora``.)

    A target that matches no module is an error here (peft would skip it without a word).
    """
    targets = list(targets)
    names = matching_modules(model, targets)
    found = {n.rsplit(".", 1)[-1] for n in names}
    missing = [t for t in targets if t not in found]
    if missing:
        raise ValueError(f"no module is called {missing[0]!r} in this {type(model).__name__}; "
                         f"check the names in model.named_modules()")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, LoRALayer(getattr(owner, child), r, alpha, dropout))
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}


def merge(model: nn.Module) -> nn.Module:
    """Fold every LoRALayer into its base weight, in place; returns the model."""
    for name, layer in list(lora_layers(model).items()):
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, layer.merged())
    return model


@torch.no_grad()
def copy_from_peft(model: nn.Module, peft_model) -> int:
    """Copy peft's LoRA matrices into this model's LoRALayers (same names); returns how many layers.

    peft keeps A and B as ``lora_A.default`` / ``lora_B.default`` Linear layers whose weights are
    (r, in) and (out, r): the same numbers as ``LoRALayer.lora_A`` / ``lora_B``.
    """
    ours = lora_layers(model)
    copied = 0
    for name, module in peft_model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
            continue
        key = name.removeprefix("base_model.model.")
        if key not in ours:
            raise KeyError(f"peft wrapped {key!r}, which this model has no LoRALayer for")
        ours[key].lora_A.copy_(module.lora_A["default"].weight)
        ours[key].lora_B.copy_(module.lora_B["default"].weight)
        if not math.isclose(ours[key].scaling, module.scaling["default"]):
            raise ValueError(f"{key}: scaling {ours[key].scaling} here but {module.scaling['default']} in peft")
        copied += 1
    if copied != len(ours):
        raise ValueError(f"copied {copied} layers but this model has {len(ours)} LoRALayers")
    return copied


# --- the shipped adapters: peft's format, safetensors only --------------------------------------
def save_adapter(peft_model, folder, base_name: str, dtype=torch.float16) -> list[str]:
    """Save a peft model's adapter to ``folder`` (adapter_config.json + adapter_model.safetensors).

    The matrices are stored as ``dtype`` (fp16 halves the file; they are small numbers near 0),
    and the config names the zoo parent instead of a path on this machine.
    """
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    from lmguide._util import quiet_peft

    folder = Path(folder)
    config = peft_model.peft_config["default"]
    config.base_model_name_or_path = base_name
    with quiet_peft():
        peft_model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
    (folder / "README.md").unlink(missing_ok=True)  # peft's template card; the recipe writes ours
    weights = folder / "adapter_model.safetensors"
    tensors = {k: v.to(dtype).contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return sorted(p.name for p in folder.iterdir())


def attach_adapter(model, folder):
    """Put the adapter saved in ``folder`` on ``model`` (a ``PeftModel``; its adapter can be switched
    off with ``with peft_model.disable_adapter():`` to get the parent back)."""
    from peft import PeftModel

    from lmguide._util import quiet_peft

    with quiet_peft():
        peft_model = PeftModel.from_pretrained(model, str(folder))
    return peft_model.eval()


def load_adapter(folder, entry):
    """The zoo loader of a LoRA variant: its parent with the adapter merged in, and the parent's tokenizer."""
    from lmguide import zoo

    if not entry.parent:
        raise ValueError(f"{entry.name} is a LoRA adapter but names no parent model in its zoo.json")
    model, tokenizer = zoo.load(entry.parent)
    from lmguide._util import quiet_peft

    with quiet_peft():
        merged = attach_adapter(model, folder).merge_and_unload()
    return merged.eval(), tokenizer
