"""Small helpers every part of lmguide shares: quiet warnings, free memory, peak RSS, cache files.

Plumbing of the plumbing: this module imports nothing from lmguide and no heavy library at
import time, and every lmguide module may use it. Two of its helpers are for learners too and
are re-exported at the top of the package: ``lg.capture_warnings()`` (show a warning as output
instead of on stderr) and ``lg.release_memory()`` (give freed memory back to the system).
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path

MIB = 2 ** 20  # every size lmguide prints is in MiB (2**20 bytes), every row says "MiB"


# --- warnings and loggers ----------------------------------------------------------------------
@contextlib.contextmanager
def capture_warnings():
    """Collect the warnings raised inside the block (Python ``warnings`` and transformers' logger).

    Yields a list that holds the messages once the block ends; nothing is printed to stderr.
    transformers' verbosity and handlers are restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    messages: list[str] = []

    class _ListHandler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = _ListHandler(level=logging.WARNING)
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_default_handler()
    hf_logging.add_handler(handler)
    hf_logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
        messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        hf_logging.remove_handler(handler)
        hf_logging.enable_default_handler()
        hf_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def quiet_loggers(*names):
    """Raise the given loggers (and their children) to ERROR for the block, then restore them.

    ``""`` names the root logger.
    """
    loggers = [logging.getLogger(n) for n in names]
    children = [logging.getLogger(n) for n in logging.root.manager.loggerDict if any(
        n == p or n.startswith(p + ".") for p in names if p)]
    saved = [(lg, lg.level) for lg in loggers + children]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


# peft reads ``model.is_gradient_checkpointing``, which transformers 5 deprecates with a
# FutureWarning on every call; it says nothing a learner can act on.
PEFT_FUTURE_WARNING = r".*is_gradient_checkpointing.*"


@contextlib.contextmanager
def quiet_peft():
    """Hide peft's ``is_gradient_checkpointing`` FutureWarning (and only it) inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_FUTURE_WARNING, category=FutureWarning)
        yield


# --- memory ------------------------------------------------------------------------------------
def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / MIB


def peak_rss_mib() -> float:
    """The most resident memory this process has held so far, in MiB (Linux, macOS and Windows)."""
    try:
        import resource
    except ImportError:  # Windows: the peak working set
        import psutil

        return getattr(psutil.Process().memory_info(), "peak_wset", 0) / MIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def release_memory() -> float:
    """Collect garbage and hand freed heap memory back to the operating system; returns RSS in MiB.

    After ``del model`` Python frees the tensors, but glibc keeps much of the freed heap for
    reuse, so the process still *looks* as big (and Binder's 2 GB limit counts what it looks).
    ``malloc_trim`` returns it. A no-op where the C library has no such call (macOS, Windows).
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mib()


# --- cache files ---------------------------------------------------------------------------------
def safe_key(key: str) -> str:
    """``key`` made safe for a file name: letters, digits, ``-``, ``_`` and ``.`` kept, the rest ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)


def read_json(file: str | Path) -> dict | None:
    """The JSON object stored in ``file``, or None when there is no such file."""
    file = Path(file)
    return json.loads(file.read_text()) if file.is_file() else None


def write_json_atomic(file: str | Path, value, **dump_options) -> None:
    """Write ``value`` as JSON so that a reader sees the old file or the whole new one, never half."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.name}.partial")
    tmp.write_text(json.dumps(value, **dump_options))
    tmp.replace(file)


def cached_json(file: str | Path | None, compute) -> dict:
    """``compute()`` once per file: its dict is stored atomically and read back next time.

    Returns the dict with ``"cached"`` True (read back) or False (just computed). With no
    ``file`` it only computes.
    """
    if file is not None:
        stored = read_json(file)
        if stored is not None:
            return {**stored, "cached": True}
    value = compute()
    if file is not None:
        write_json_atomic(file, value)
    return {**value, "cached": False}
