"""The torch engine: a transformers causal LM with transformers 5's ``DynamicCache``.

transformers 5 passes the cache as ``model(..., cache=...)`` and returns it as ``out.cache``;
``cache.crop(-k)`` drops its last ``k`` positions (a positive argument is refused).

    engine = TorchEngine.load("austen-gpt-small", precision="bf16")   # fp32, bf16 or torch's dynamic int8
    engine = TorchEngine(model, tokenizer)                            # a model already loaded
"""
from __future__ import annotations

import copy
import time

import torch

from lmguide.engines.base import DEFAULT_CHUNK, Engine, check_choice
from lmguide.eval import context_length

PRECISIONS = ("fp32", "bf16", "int8")


def convert(model, precision: str, inplace: bool = False):
    """``model`` in ``precision``: fp32 as is (the same object), bf16 weights, or torch's dynamic int8
    ``Linear`` layers (``lmguide.quantize.dynamic_int8``); converted on a copy unless ``inplace``."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp32":
        return model
    if precision == "bf16":
        return (model if inplace else copy.deepcopy(model)).to(torch.bfloat16)
    from lmguide.quantize import dynamic_int8

    return dynamic_int8(model, inplace=inplace)


class TorchEngine(Engine):
    """A transformers causal LM run by torch on the CPU, one sequence, with its key/value cache."""

    kind = "torch"

    def __init__(self, model, tokenizer, name: str | None = None, chunk_size: int = DEFAULT_CHUNK):
        super().__init__(tokenizer, name or model.config.name_or_path, context_length(model), chunk_size)
        self.model = model.eval()
        self.cache = None  # a DynamicCache once a token has been read

    @classmethod
    def load(cls, name: str, precision: str = "fp32", model=None, tokenizer=None, inplace: bool = False,
             chunk_size: int = DEFAULT_CHUNK) -> "TorchEngine":
        """Zoo model ``name`` (or the ``model`` and ``tokenizer`` given) in ``precision``.

        A model given is converted on a copy unless ``inplace`` (one copy of the weights in memory);
        ``setup_seconds`` is the conversion's time, not the load's."""
        check_choice("precision", precision, PRECISIONS)
        if model is None:
            from lmguide import load

            model, tokenizer = load(name)
            inplace = True  # nobody else holds this copy
        if tokenizer is None:
            raise ValueError("a model was given without its tokenizer; pass tokenizer=... too")
        start = time.perf_counter()
        model = convert(model, precision, inplace)
        engine = cls(model, tokenizer, name, chunk_size)
        engine.setup_seconds = time.perf_counter() - start
        return engine

    @torch.no_grad()
    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        start = self.n_cached
        positions = torch.arange(start, start + len(ids))[None]  # (1, T): after the cached positions
        mask = torch.ones(1, start + len(ids), dtype=torch.long)  # (1, cached + T): no padding (says so to HF)
        out = self.model(input_ids=ids[None], attention_mask=mask, position_ids=positions, cache=self.cache,
                         use_cache=True)
        self.cache = out.cache
        return out.logits[0].float()  # (T, V)

    def crop_cache(self, n: int) -> None:
        if n == 0:
            self.cache = None
        else:
            self.cache.crop(n - self.n_cached)  # negative: how many positions to drop from the end

    @property
    def n_cached(self) -> int:
        return 0 if self.cache is None else self.cache.get_seq_length()

    @property
    def weight_bytes(self) -> int:
        """``hardware.weight_bytes`` of the module, less the input embedding table when the output head does
        not share it (torch's int8 head is a copy): a step then reads one row of it, not the table."""
        from lmguide.hardware import weight_bytes

        read = weight_bytes(self.model)
        table = self.model.get_input_embeddings().weight
        head = self.model.get_output_embeddings()
        if head is not None and getattr(head, "weight", None) is not table:
            read -= table.numel() * table.element_size()
        return read
