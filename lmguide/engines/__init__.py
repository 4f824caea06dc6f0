"""Engines: one small interface for running a causal LM, whatever runs it (torch, onnxruntime, ...).

    engine = engines.open_engine("austen-gpt-small", "onnx", precision="int8")
    ids = engine.encode("It is a truth universally acknowledged")
    for token in engine.generate(ids, 20, temperature=0.8, top_p=0.95, seed=0):   # streams
        print(engine.decode([token]), end="")
    engine.continuation_logprobs(context_ids, continuation_ids)   # log p of each token, chunk by chunk

Every engine is an :class:`~lmguide.engines.base.Engine` and answers:

    tokenizer, encode(text), decode(ids)    text <-> token ids (the model's own tokenizer)
    eval(ids)                               logits (T, V) of each new position; appends to the cache
    prefill(ids)                            the same in chunks; only the last position's logits (V,)
    n_cached, truncate(n), reset()          the cache: keep its first n positions (roll back rejected tokens)
    generate(prompt_ids, max_new_tokens,    an iterator of new token ids: greedy at temperature 0, else
             temperature, top_k, top_p,     drawn by lmguide.sampling.sample_next_token from a seeded
             seed, stop_at_eos)             generator
    answer_ids(prompt_ids, max_new_tokens)  the greedy answer's ids without its EOS
    prompt_ids(text, chat), chat_ids(turns) a prompt's ids, as text or in the model's own chat template
    continuation_logprobs(context, cont)    log-probability of each continuation token, never holding
                                            more than chunk_size x vocabulary logits
    time_step(tokens=1)                     a lmguide.timing.Timing of one call reading that many tokens
    memory(), weight_bytes                  weights / RSS / peak RSS MiB; bytes one step reads
    kind, name, context_length, chunk_size, setup_seconds, file

An engine kind writes only ``forward_tokens``, ``crop_cache``, ``n_cached`` and ``weight_bytes``
(and a ``load(name, **options)`` class method); the rest is written once in :mod:`.base`. So the
comparison table, bits per byte, the router, speculative decoding and the CLI can take any
engine. Kinds live in :data:`KINDS` as ``"module:Class"`` (imported on first use). "llama.cpp" runs
GGUF files through the optional llama-cpp-python (``bash scripts/build_llama_cpp.sh`` compiles it);
where it is missing or failed its one-time test run, opening it raises ``lmguide.zoo.ModelNotAvailable``
with one sentence saying why (``engines.llama_cpp.why_unavailable()``).
"""
from __future__ import annotations

import importlib

from lmguide.engines.base import Engine, as_token_ids  # noqa: F401  (the interface, documented above)

KINDS = {  # engine kind -> "module:Class"; each class has load(name, **options)
    "torch": "lmguide.engines.torch:TorchEngine",  # precision fp32 | bf16 | int8, model, tokenizer, inplace
    "onnx": "lmguide.engines.onnx:OnnxEngine",     # precision fp32 | int8, model, tokenizer, threads
    "llama.cpp": "lmguide.engines.llama_cpp:LlamaCppEngine",  # GGUF files; threads, context, use_mmap (optional)
}


def engine_class(kind: str) -> type[Engine]:
    """The class of engine ``kind`` (a key of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown engine {kind!r}; choose from {', '.join(KINDS)}")
    module, cls = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def open_engine(name: str, engine: str = "torch", **options) -> Engine:
    """Zoo model ``name`` in engine ``engine``, ready to generate; ``options`` go to that kind's ``load``
    (``precision``, ``chunk_size``, a ``model`` and ``tokenizer`` already loaded, ...)."""
    import inspect

    cls = engine_class(engine)
    takes = [p for p in inspect.signature(cls.load).parameters if p != "name"]
    unknown = [o for o in options if o not in takes]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for the {engine} engine; it takes {', '.join(takes)}")
    return cls.load(name, **options)


def default_kind(name: str) -> str:
    """The engine a zoo model runs in by default: llama.cpp for a model that is only a GGUF file (the Qwen
    ladder, whose loader is the llama.cpp engine's), torch for every other."""
    from lmguide import zoo

    return "llama.cpp" if zoo.entry(name).loader.startswith("lmguide.engines.llama_cpp:") else "torch"


def open_default(name: str, threads: int = 2) -> Engine:
    """Zoo model ``name`` in its :func:`default_kind` engine on ``threads`` threads (torch's are process-wide)."""
    import torch

    kind = default_kind(name)
    torch.set_num_threads(threads)
    return open_engine(name, kind, **({"threads": threads} if kind == "llama.cpp" else {}))
