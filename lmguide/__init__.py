"""lmguide: a hands-on workbook on large vs small language models, offline on a laptop.

Notebooks do ``import lmguide as lg`` and then ``lg.setup()``. Importing changes no
global state; ``setup()`` does (seeds, threads, quiet loading bars) and says so.
``lg.load(name_or_folder)`` is the one loader for every model in the zoo.

Where each notebook's code lives (lessons are flat modules named by topic):

    notebook                       lesson modules                      exercises
    00_start_here                  zoo (plumbing), sampling, eval,     exercise_bank/nb00.py
                                   embeddings
    01_transformer_architecture    tokenizers (BPE, train_bpe),        exercise_bank/nb01.py
                                   attention, params
    02_llm_generation              sampling, eval (bits per byte),     exercise_bank/nb02.py
                                   bench (timing)
    03_slm_embeddings_and_qa       embeddings, search, qa (spans,      exercise_bank/nb03.py
                                   metrics, labels), qa_pipeline
    04_fine_tuning                 finetune (Trainer helpers), lora    exercise_bank/nb04.py
                                   (LoRA for Linear and Conv1D)
    05_quantization                quantize (int8/int4, GGUF blocks,   exercise_bank/nb05.py
                                   QuantLinear, save/load, measuring)
    06_distillation                distill (KD loss, student init)     exercise_bank/nb06.py
    07_choosing_llm_vs_slm         bench (the comparison table,        exercise_bank/nb07.py
                                   bandwidth bound), export (ONNX),
                                   router
    08_responsible_use             probes (memorization, canaries,     exercise_bank/nb08.py
                                   log-prob probes, ROC AUC)

Plumbing: zoo (models, variants, the loader), data (Austen corpus), qa_data (QA files),
bench (timing, ``lmguide bench``), workers (a fresh process per measurement), plots, widgets,
exercises, cli. Recipes that made the shipped models:
``lmguide/recipes/`` (``python -m lmguide.recipes.NAME``; see its docstring).
"""
from __future__ import annotations

__version__ = "0.1.0"

from lmguide import data, exercises, zoo  # noqa: E402  (light modules: no torch at import)
from lmguide.zoo import load  # noqa: E402

# The other modules import torch or transformers, so they load on first use: ``lg.qa``,
# ``lg.eval`` ... work after ``import lmguide as lg`` without importing everything up front.
_LAZY = {"attention", "bench", "course", "distill", "embeddings", "eval", "export", "finetune", "lora", "params",
         "plots", "probes", "qa", "qa_data", "qa_pipeline", "quantize", "recipes", "router", "sampling",
         "search", "tokenizers", "widgets", "workers"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"lmguide.{name}")
    raise AttributeError(f"module 'lmguide' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)


def setup(seed: int = 0, threads: int | None = 2, quiet: bool = True) -> dict:
    """Make a notebook run reproducible: seed Python, NumPy and torch; fix torch's thread count.

    ``quiet`` hides transformers' per-load progress bars (they go to stderr and would
    differ between runs). Returns what was set, so a notebook can show it.
    """
    import os
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(min(threads, os.cpu_count() or threads))
    if quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    if not zoo.hub_reachable(timeout=0.5):
        # no network: make transformers and the Hub client fail fast instead of retrying
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return {"seed": seed, "torch threads": torch.get_num_threads(), "torch": torch.__version__,
            "offline": os.environ.get("HF_HUB_OFFLINE") == "1"}
