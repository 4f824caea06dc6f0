"""The onnxruntime engine: the decode-step graph of :mod:`lmguide.export` in a CPU session.

The cache is the graph's past keys and values (numpy arrays, (1, kv heads, 1 + n, head size) per
layer). Slot 0 is the dummy past the graph needs before the first token: the attention mask
hides it (mask 0) in every call, so it changes no logit. Truncating keeps slot 0 and the first
``n`` real positions (a slice along the sequence axis).

    engine = OnnxEngine.load("austen-gpt-small", precision="int8")   # exported once into the cache
    engine = OnnxEngine(onnx_file, tokenizer, model.config)          # any exported graph
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lmguide import export
from lmguide.engines.base import DEFAULT_CHUNK, Engine, check_choice, config_context_length

PRECISIONS = ("fp32", "int8")


class OnnxEngine(Engine):
    """An exported decode-step graph (:func:`lmguide.export.export_onnx`) run by onnxruntime on the CPU."""

    kind = "onnx"

    def __init__(self, onnx_file: str | Path, tokenizer, config, name: str | None = None, threads: int | None = None,
                 chunk_size: int = DEFAULT_CHUNK):
        import onnxruntime as ort

        super().__init__(tokenizer, name or Path(onnx_file).stem, config_context_length(config), chunk_size)
        start = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.setup_seconds = time.perf_counter() - start
        self.file = Path(onnx_file)
        self.config = config
        self.past_names = export.past_names(config)
        self.past = None  # the graph's keys and values, dummy slot first, once a token has been read

    @classmethod
    def load(cls, name: str, precision: str = "fp32", model=None, tokenizer=None, threads: int | None = None,
             chunk_size: int = DEFAULT_CHUNK, progress: bool = False) -> "OnnxEngine":
        """Zoo model ``name``'s graph in ``precision`` (fp32, or onnxruntime's dynamic int8), exported into the
        user cache the first time (from ``model`` when given). ``setup_seconds`` is the session's start,
        not the export's. The torch model is loaded (when not given) for its config and tokenizer only."""
        check_choice("precision", precision, PRECISIONS)
        if model is None or tokenizer is None:
            from lmguide import load

            model, tokenizer = load(name)
        file = export.onnx_files(name, model, progress)[precision]
        return cls(file, tokenizer, model.config, name, threads, chunk_size)

    def run_graph(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list[np.ndarray]):
        """One run of the graph: (logits (1, S, V), present keys and values)."""
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feeds.update(zip(self.past_names, past))
        logits, *present = self.session.run(None, feeds)
        return logits, present

    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        n, new = self.n_cached, len(ids)
        past = self.past if self.past is not None else [t.numpy() for t in export.empty_past(self.config, 1)]
        mask = np.ones((1, 1 + n + new), np.int64)
        mask[0, 0] = 0  # the dummy slot stays hidden
        positions = np.arange(n, n + new, dtype=np.int64)[None]  # (1, S)
        logits, self.past = self.run_graph(ids.numpy()[None].astype(np.int64), mask, positions, past)
        return torch.from_numpy(logits[0]).float()  # (S, V)

    def crop_cache(self, n: int) -> None:
        # (1, heads, 1 + n, head size) per layer; onnxruntime takes contiguous arrays
        self.past = None if n == 0 else [np.ascontiguousarray(t[:, :, :1 + n]) for t in self.past]

    @property
    def n_cached(self) -> int:
        return 0 if self.past is None else self.past[0].shape[2] - 1

    @property
    def weight_bytes(self) -> int:
        """The graph file's bytes: it is (nearly) all weights, and a step reads them once."""
        return self.file.stat().st_size
