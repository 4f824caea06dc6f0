"""lmguide: a hands-on workbook on large vs small language models, offline on a laptop.

Notebooks do ``import lmguide as lg`` and then ``lg.setup()``. Importing changes no
global state; ``setup()`` does (seeds, threads, quiet loading bars) and says so.
``lg.load(name_or_folder)`` is the one loader for every model in the zoo.

Where each notebook's code lives is :data:`NOTEBOOKS` (the one map; the README's table is
checked against it). Modules come in layers, and imports only go down:

    plumbing      _util (shared helpers), zoo, data, qa_data, workers, sandbox (untrusted code)
    lessons       one flat module per topic, named by it (the code a notebook teaches);
                  each imports plumbing and earlier lessons only
    measurement   measure/ (quality scores, table rows, the comparison table, decode engines,
                  precisions, ``lmguide bench``): imports lessons, never imported by them
    front ends    cli, plots, widgets, exercises + exercise_bank/, course, recipes/

Any notebook may use plumbing and front ends (:data:`SHARED`); everything else it calls
is in its row of :data:`NOTEBOOKS`. Recipes that made the shipped models live in
``lmguide/recipes/`` (``python -m lmguide.recipes.NAME``; see its docstring).
"""
from __future__ import annotations

__version__ = "0.1.0"

from lmguide import data, exercises, zoo  # noqa: E402  (light modules: no torch at import)
from lmguide._util import capture_warnings, release_memory  # noqa: E402  (for learners: lg.release_memory())
from lmguide.zoo import load  # noqa: E402

# notebook -> the modules that hold its code (lessons first, then what measures them)
NOTEBOOKS = {
    "00_start_here": ("zoo", "sampling", "eval", "timing", "embeddings", "engines"),
    "01_transformer_architecture": ("tokenization", "attention", "params"),
    "02_llm_generation": ("sampling", "eval", "timing"),
    "03_slm_embeddings_and_qa": ("embeddings", "search", "qa", "qa_pipeline", "timing"),
    "04_fine_tuning": ("finetune", "lora", "instruct", "sampling", "eval", "hardware", "router", "code_tasks", "recipes.lora_sweep"),
    "05_quantization": ("quantize", "outliers", "gguf_blocks", "engines", "eval", "timing", "embeddings", "measure.precision",
                        "measure.quality"),
    "06_distillation": ("distill", "eval", "timing", "recipes.distilled_austen", "recipes.distributed"),
    "07_choosing_llm_vs_slm": ("hardware", "export", "engines", "router", "serving", "code_tasks", "sandbox", "timing",
                               "sampling", "measure.quality", "measure.table", "measure.rows", "measure.decode"),
    "08_responsible_use": ("probes", "sampling", "qa", "search"),
    "09_small_and_large_together": ("speculative", "grounding", "judge", "engines", "search", "probes", "router",
                                    "code_tasks", "timing", "recipes.together"),
}
# what every notebook may use: plumbing and front ends
SHARED = ("zoo", "data", "qa_data", "workers", "plots", "widgets", "exercises")

# The other modules import torch or transformers, so they load on first use: ``lg.qa``,
# ``lg.eval`` ... work after ``import lmguide as lg`` without importing everything up front.
_LAZY = {"attention", "code_tasks", "course", "distill", "embeddings", "engines", "eval", "export", "finetune", "gguf_blocks",
         "grading", "grounding", "hardware", "instruct", "judge", "lora", "makers", "measure", "params", "plots", "probes", "qa", "qa_data", "qa_pipeline",
         "outliers", "quantize", "recipes", "router", "sampling", "sandbox", "search", "serving", "speculative", "timing", "tokenization", "widgets",
         "workers"}


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
    differ between runs). Tables show every cell whole: pandas' default cuts text columns to
    50 characters ("..."), which hides what a claims table says. Returns what was set, so a
    notebook can show it.
    """
    import os
    import random

    import numpy as np
    import torch

    import pandas as pd

    pd.set_option("display.max_colwidth", None)
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
