"""Another engine, side by side: a causal LM exported to ONNX and run with onnxruntime on the CPU.

The exported graph is one decode step *with* the key/value cache, so onnxruntime does the same
work per token as torch does: inputs ``input_ids (1, S)``, ``attention_mask (1, P + S)``,
``position_ids (1, S)`` and the past keys and values of every layer; outputs the logits and the
updated keys and values. The prompt goes through the same graph: its "past" is one dummy slot
that the attention mask hides (mask 0), so one graph serves the prompt and every later token.

    onnx_file = export.export_onnx("austen-gpt-small", folder)      # torch.onnx.export (dynamo)
    int8_file = export.quantize_int8(onnx_file)                      # onnxruntime's dynamic int8
    engine = export.OrtGenerator(int8_file, model.config)
    engine.greedy(input_ids, 32)                                     # same ids as lmguide.sampling

``check_logits`` compares the graph's logits with torch's on the same input. onnxruntime's int8
is not always faster than its fp32 (it depends on the CPU's int8 instructions): measure it.
"""
from __future__ import annotations

import contextlib
import io
import time
import warnings
from pathlib import Path

import numpy as np
import torch


@contextlib.contextmanager
def _quiet_loggers(*names):
    """Raise the given loggers (and their children) to ERROR for the block, then restore them."""
    import logging

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


def _layers(config) -> int:
    return config.num_hidden_layers


def _past_names(config) -> list[str]:
    return [f"past.{i}.{kv}" for i in range(_layers(config)) for kv in ("key", "value")]


class _DecodeStep(torch.nn.Module):
    """The model as a function of flat tensors (what an ONNX graph can take): ids, mask, positions, past."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)],
                             config=self.model.config)
        out = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         use_cache=True)
        present = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
        return (out.logits, *present)


def _empty_past(config, length: int = 1, batch: int = 1) -> list[torch.Tensor]:
    """Zero keys and values for ``length`` dummy positions: (B, kv heads, length, head size) per layer."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return [torch.zeros(batch, heads, length, head_size) for _ in range(2 * _layers(config))]


def export_onnx(model, out_file: str | Path, progress: bool = False) -> Path:
    """Export one decode step of a causal LM (with its KV cache) to ``out_file``; returns the path.

    Attention is switched to the eager implementation for the export (the fused kernel's
    ``is_causal`` flag depends on the input length, which an exported graph cannot branch on).
    """
    import torch.onnx._internal.exporter._core  # noqa: F401  (its loggers exist before they are quietened)

    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    before = config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        step = _DecodeStep(model).eval()
        ex_ids = torch.tensor([[11, 12, 13]])                       # (1, S=3)
        ex_past = _empty_past(config, length=5)                      # 5 past positions
        ex_mask = torch.ones(1, 8, dtype=torch.long)                 # (1, P + S)
        ex_pos = torch.tensor([[5, 6, 7]])
        seq, past, total = torch.export.Dim("seq"), torch.export.Dim("past"), torch.export.Dim("total")
        shapes = {"input_ids": {1: seq}, "attention_mask": {1: total}, "position_ids": {1: seq},
                  "past": tuple({2: past} for _ in ex_past)}
        names = _past_names(config)
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
        with quiet, _quiet_loggers("torch.onnx", "onnxscript"), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecated pytree calls
            torch.onnx.export(step, (ex_ids, ex_mask, ex_pos, *ex_past), str(out_file),
                              input_names=["input_ids", "attention_mask", "position_ids", *names],
                              output_names=["logits", *[n.replace("past", "present") for n in names]],
                              dynamic_shapes=shapes, dynamo=True, external_data=False, verbose=False)
    finally:
        model.set_attn_implementation(before)
    return out_file


def quantize_int8(onnx_file: str | Path, out_file: str | Path | None = None) -> Path:
    """onnxruntime's own dynamic int8 quantization (weights int8, activations quantized on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_file = Path(onnx_file)
    out_file = Path(out_file or onnx_file.with_name(onnx_file.stem + ".int8.onnx"))
    # quantize_dynamic logs a pre-processing tip at WARNING on the root logger
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_loggers(""):
        warnings.simplefilter("ignore")
        quantize_dynamic(str(onnx_file), str(out_file), weight_type=QuantType.QInt8)
    return out_file


class OrtGenerator:
    """Greedy decoding with an exported decode-step graph in an onnxruntime CPU session."""

    def __init__(self, onnx_file: str | Path, config, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.config = config
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()][3:]  # past keys and values, layer by layer

    def step(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list[np.ndarray]):
        """One run of the graph: (logits (1, S, V), present keys and values)."""
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feeds.update(zip(self.names, past))
        logits, *present = self.session.run(None, feeds)
        return logits, present

    def prompt_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits for every position of the prompt (1, T, V), read with the hidden dummy past slot."""
        logits, _ = self._prefill(input_ids)
        return torch.from_numpy(logits)

    def _prefill(self, input_ids):
        ids = input_ids.numpy().astype(np.int64)
        n = ids.shape[1]
        mask = np.concatenate([np.zeros((1, 1), np.int64), np.ones((1, n), np.int64)], axis=1)
        past = [t.numpy() for t in _empty_past(self.config, 1)]
        return self.step(ids, mask, np.arange(n, dtype=np.int64)[None], past)

    def greedy(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """(1, T + new) ids: always the most likely token, like ``lmguide.sampling.greedy_generate``."""
        if input_ids.shape[0] != 1:
            raise ValueError(f"OrtGenerator decodes one sequence at a time (got a batch of {input_ids.shape[0]})")
        n = input_ids.shape[1]
        logits, past = self._prefill(input_ids)
        out = [int(t) for t in input_ids[0]]
        mask = np.ones((1, n + 1), np.int64)
        mask[0, 0] = 0  # the dummy slot stays hidden
        for i in range(max_new_tokens):
            next_id = int(logits[0, -1].argmax())
            out.append(next_id)
            if i == max_new_tokens - 1:
                break
            mask = np.concatenate([mask, np.ones((1, 1), np.int64)], axis=1)
            logits, past = self.step(np.array([[next_id]], np.int64), mask, np.array([[n + i]], np.int64), past)
        return torch.tensor([out])


def check_logits(model, engine: OrtGenerator, input_ids: torch.Tensor) -> float:
    """Largest absolute difference between torch's and onnxruntime's logits on the same prompt."""
    with torch.no_grad():
        want = model(input_ids).logits.float()
    return float((engine.prompt_logits(input_ids) - want).abs().max())


def onnx_size_mib(onnx_file: str | Path) -> float:
    return Path(onnx_file).stat().st_size / 2**20


# --- the decode-speed experiments of notebook 07 --------------------------------------------------
def onnx_files(name: str, model=None, progress: bool = False) -> dict:
    """fp32 and int8 ONNX files for zoo model ``name``, exported once into the user cache.

    Returns ``{"fp32": path, "int8": path, "export s": seconds (0 when cached)}``.
    """
    from lmguide import bench, zoo

    folder = zoo.cache_dir() / "onnx" / bench.weights_key(name)
    fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    seconds = 0.0
    if not fp32.is_file():
        if model is None:
            from lmguide import load

            model, _ = load(name)
        start = time.perf_counter()
        partial = export_onnx(model, folder / "model.partial.onnx", progress=progress)
        partial.rename(fp32)
        seconds = time.perf_counter() - start
    if not int8.is_file():
        quantize_int8(fp32, folder / "model.int8.partial.onnx").rename(int8)
    return {"fp32": fp32, "int8": int8, "export s": seconds}


ENGINES = ("torch fp32", "torch bf16", "torch int8", "ort fp32", "ort int8")


def _torch_int8(model, inplace: bool = False):
    """torch's dynamic int8 quantization of every Linear layer (weights int8, per tensor)."""
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model if inplace else copy.deepcopy(model), {torch.nn.Linear},
                                                      dtype=torch.qint8, inplace=inplace)


def engines(name: str, model, tokenizer, which=ENGINES, inplace: bool = False):
    """Named greedy-decode callables ``f(input_ids, n) -> ids`` for ``model`` in several engines and formats,
    with the bytes of weights each reads per token and its load (or conversion) seconds.

    The torch conversions work on a copy, unless ``inplace`` (one engine per process: no second copy
    of the weights in memory)."""
    from lmguide import bench
    from lmguide.sampling import greedy_generate

    out = {}
    for kind in which:
        start = time.perf_counter()
        if kind == "torch fp32":
            m = model
        elif kind == "torch bf16":
            import copy

            m = (model if inplace else copy.deepcopy(model)).to(torch.bfloat16)
        elif kind == "torch int8":
            m = _torch_int8(model, inplace)
        elif kind.startswith("ort"):
            files = onnx_files(name, model)
            file = files["fp32" if kind == "ort fp32" else "int8"]
            start = time.perf_counter()
            engine = OrtGenerator(file, model.config)
            seconds = time.perf_counter() - start
            # the graph file is (nearly) all weights: what one step reads
            out[kind] = {"generate": engine.greedy, "weight bytes": file.stat().st_size, "setup s": seconds,
                         "size MiB": onnx_size_mib(file), "engine": engine}
            continue
        else:
            raise ValueError(f"unknown engine {kind!r}; choose from torch fp32, torch bf16, torch int8, ort fp32, ort int8")
        seconds = time.perf_counter() - start
        read = bench.weight_bytes(m)
        if kind == "torch int8":  # the int8 lm_head is a copy now: the fp32 embedding table is read one row per token
            table = m.get_input_embeddings().weight
            read -= table.numel() * table.element_size()
        out[kind] = {"generate": (lambda ids, n, m=m: greedy_generate(m, ids, n)), "weight bytes": read,
                     "setup s": seconds, "size MiB": float("nan"), "model": m}
    return out


def engine_speed(name: str, kind: str, repeats: int = 3, threads: int = 2, new_tokens: int = 24,
                 batch: int = 1) -> dict:
    """One engine's decode timing for zoo model ``name``, in this process: load, convert (in place),
    then a 1-token and a ``new_tokens``-token greedy run of ``batch`` copies of the prompt, interleaved,
    one warm-up, ``repeats`` timed. Returns the step time (the extra tokens over the extra time, so the
    prompt does not count) and what the engine reads per step. Call it through :mod:`lmguide.workers`."""
    from lmguide import bench, load

    if kind not in ENGINES:
        raise ValueError(f"unknown engine {kind!r}; choose from {', '.join(ENGINES)}")
    torch.set_num_threads(threads)
    model, tokenizer = load(name)
    ids = tokenizer(bench.PROMPT, return_tensors="pt")["input_ids"].repeat(batch, 1)
    engine = engines(name, model, tokenizer, (kind,), inplace=True)[kind]
    del model  # an onnxruntime engine holds its own copy of the weights; a torch one keeps its module
    with torch.inference_mode():
        timings = bench._interleaved({"first": lambda: engine["generate"](ids, 1),
                                      "long": lambda: engine["generate"](ids, new_tokens)}, repeats, 1, time.perf_counter)
    steps = [(b - a) / (new_tokens - 1) for a, b in zip(timings["first"].seconds, timings["long"].seconds)]
    return {"step s": sorted(steps)[len(steps) // 2], "first token s": timings["first"].median,
            "weight bytes": engine["weight bytes"], "setup s": engine["setup s"], "size MiB": engine["size MiB"],
            "peak RSS MiB": bench._peak_rss_mib()}


def decode_variants(name: str = "smollm2-135m", repeats: int = 3, threads: int = 2, new_tokens: int = 24,
                    batch: int = 8, progress: bool = True, which=ENGINES) -> list[dict]:
    """Decode speed of ``name`` in torch fp32/bf16/int8, onnxruntime fp32/int8 and torch fp32 on a batch of
    ``batch`` sequences; each with its bandwidth bound (bytes it reads per step / measured bandwidth).

    Like the comparison table's rows, each engine is measured in a fresh process of its own
    (:func:`engine_speed` through :mod:`lmguide.workers`), one after another: one copy of the
    weights in memory at a time, and each engine's peak memory its own.
    """
    from tqdm.auto import tqdm

    from lmguide import bench, workers

    unknown = [kind for kind in which if kind not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    bandwidth = bench.memory_bandwidth()
    bench.release_memory()  # hand the copy's buffers back before the engines load
    jobs = [(kind, kind, 1) for kind in which] + [(f"torch fp32, batch {batch}", "torch fp32", batch)]
    rows = []
    for label, kind, sequences in tqdm(jobs, desc="decode variants", disable=not progress):
        r = workers.run(engine_speed, name, kind, repeats=repeats, threads=threads, new_tokens=new_tokens,
                        batch=sequences)
        bound = bench.decode_bound(r["weight bytes"], bandwidth["GB/s"])
        rows.append({"engine": label, "weights MiB": r["weight bytes"] / 2**20, "step ms": 1000 * r["step s"],
                     "tokens/s": sequences / r["step s"], "bound tokens/s": bound * sequences,
                     "% of bound": 100 * (1 / r["step s"]) / bound,  # steps/s vs reads of the weights/s
                     "first token ms": 1000 * r["first token s"], "setup s": r["setup s"], "file MiB": r["size MiB"],
                     "peak RSS MiB": r["peak RSS MiB"]})
    return rows
