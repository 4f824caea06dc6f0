"""Measuring text models fairly: bits per byte, the one definition lmguide uses everywhere.

Perplexity depends on the tokenizer (a model with a bigger vocabulary sees fewer,
harder tokens), so models with different vocabularies cannot be compared by it.
Bits per byte divides the total information the model needs to encode a text by
the text's size in UTF-8 bytes, which no tokenizer can change.

The rule (training's validation figure, the model cards, ``scripts/measure_bpb.py`` and
every notebook use it): the raw text, preceded by the BOS (or EOS) token; windows of
``min(context, 1024)`` tokens that overlap by half, each scoring only its new tokens.
``split_bits_per_byte`` applies it to a whole held-out Austen split and caches the figure.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import time

import torch

from lmguide import _util

DEFAULT_WINDOW = 1024  # longer windows change SmolLM2's figure by little and cost much more


def context_length(model) -> int | None:
    """The longest input the model takes, in tokens, or None when its config does not say.

    ``model`` is a transformers model or an engine of ``lmguide.engines`` (which knows its own).
    """
    if not hasattr(model, "config"):
        return getattr(model, "context_length", None)
    config = model.config
    for attr in ("n_positions", "max_position_embeddings"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    return None


def window_rule(model, window: int | None = None, stride: int | None = None) -> tuple[int, int]:
    """``(window, stride)`` for ``model``: at most its context, ``DEFAULT_WINDOW`` unless given, stride half."""
    n_ctx = context_length(model)
    if n_ctx is None:
        raise ValueError(f"cannot tell the context length of a {type(model).__name__}; pass window=... "
                         f"(tokens per forward pass)")
    window = min(window or DEFAULT_WINDOW, n_ctx)
    stride = stride or max(1, window // 2)
    if not 0 < stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}) (got {stride})")
    return window, stride


@torch.no_grad()
def total_nats(model, tokenizer, text: str, window: int | None = None, stride: int | None = None) -> tuple[float, int]:
    """Summed next-token loss (nats) over every token of ``text``, and the number of tokens scored.

    A long text is read through overlapping windows: each window re-reads the last
    ``window - stride`` tokens as context and scores only the ``stride`` new ones, so every
    token is scored exactly once, and every token after the first window with at least
    ``window - stride`` tokens of context (those in the first window see fewer).
    The text is preceded by the BOS (or EOS) token, so its first token is scored too.

    ``model`` is a transformers causal LM (one forward pass per window) or any engine of
    ``lmguide.engines`` (llama.cpp, onnxruntime, ...), which scores each window's new tokens with
    ``continuation_logprobs`` after reading its context: the same rule, chunk by chunk, without a
    window x vocabulary array of logits.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    window, stride = window_rule(model, window, stride)
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor(([start] if start is not None else []) + list(ids))
    first_target = 1  # position 0 is only ever context
    total, scored = 0.0, 0
    engine = hasattr(model, "continuation_logprobs")
    was_training = not engine and model.training
    if not engine:
        model.eval()
    keeps_logits = not engine and "logits_to_keep" in inspect.signature(model.forward).parameters
    # windows end at first_target + stride, + 2*stride, ... ; each scores its last `stride` targets
    end = first_target
    while end < len(ids):
        new_end = min(end + stride, len(ids))
        begin = max(0, new_end - window)
        n_new = new_end - end
        if engine:
            loss = -sum(model.continuation_logprobs(ids[begin:end], ids[end:new_end]))
        else:
            chunk = ids[begin:new_end][None]  # (1, T)
            # only the last n_new + 1 positions' logits where the model can skip the rest (transformers'
            # logits_to_keep): SmolLM2's 1,024 x 49,152 float32 logits are 192 MiB, twice with the loss's copy
            keep = {"logits_to_keep": n_new + 1} if keeps_logits else {}
            logits = model(chunk, attention_mask=torch.ones_like(chunk), **keep).logits[0, :-1].float()  # predictions for chunk[1:]
            targets = chunk[0, 1:]
            loss = torch.nn.functional.cross_entropy(logits[-n_new:], targets[-n_new:], reduction="sum").item()
        total, scored, end = total + loss, scored + n_new, new_end
    if not engine:
        model.train(was_training)
    return total, scored


def bits_per_byte(model, tokenizer, text: str, window: int | None = None, stride: int | None = None) -> float:
    """Bits the model needs per UTF-8 byte of ``text`` (lower is better; tokenizer-independent)."""
    nats, _ = total_nats(model, tokenizer, text, window, stride)
    return nats / math.log(2) / len(text.encode("utf-8"))


def perplexity(model, tokenizer, text: str, window: int | None = None, stride: int | None = None) -> float:
    """exp(mean next-token loss): per *token*, so only comparable between models sharing a tokenizer."""
    nats, n = total_nats(model, tokenizer, text, window, stride)
    return math.exp(nats / n)


def weights_key(name: str) -> str:
    """A cache key for zoo model ``name`` that changes whenever its files change: ``name-<fingerprint>``."""
    from lmguide import zoo

    return f"{name}-{zoo.fingerprint(name)}"


def split_bits_per_byte(model, tokenizer, split: str = "test", key: str | None = None,
                        window: int | None = None, stride: int | None = None) -> dict:
    """Bits per byte on a whole held-out Austen split, with how it was measured.

    Returns ``{"bits_per_byte", "split", "bytes", "window", "stride", "seconds", "cached"}``.
    With a ``key`` (a zoo name, which is extended with its files' fingerprint, or any string
    that identifies the weights), the figure is cached in the user cache and read back next
    time: SmolLM2 takes minutes on the whole test split, AustenGPT seconds.
    """
    from lmguide import data, zoo

    text = data.austen(split)
    window, stride = window_rule(model, window, stride)
    cache_file = None
    if key is not None:
        if key in zoo.ENTRIES:
            key = weights_key(key)
        rule = hashlib.sha256(f"{key}|{window}|{stride}|{text}".encode()).hexdigest()[:16]
        cache_file = zoo.cache_dir() / "bpb" / f"{_util.safe_key(key)}-{split}-{rule}.json"

    def measure():
        began = time.perf_counter()
        value = bits_per_byte(model, tokenizer, text, window=window, stride=stride)
        return {"bits_per_byte": value, "split": split, "bytes": len(text.encode("utf-8")), "window": window,
                "stride": stride, "seconds": round(time.perf_counter() - began, 1)}

    return _util.cached_json(cache_file, measure)
