"""Measuring text models fairly: bits per byte.

Perplexity depends on the tokenizer (a model with a bigger vocabulary sees fewer,
harder tokens), so models with different vocabularies cannot be compared by it.
Bits per byte divides the total information the model needs to encode a text by
the text's size in UTF-8 bytes, which no tokenizer can change.
"""
from __future__ import annotations

import math

import torch


def context_length(model) -> int:
    """The longest input the model takes, in tokens."""
    config = model.config
    for attr in ("n_positions", "max_position_embeddings"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    raise ValueError(f"cannot tell the context length of a {type(model).__name__}")


@torch.no_grad()
def total_nats(model, tokenizer, text: str, window: int | None = None, stride: int | None = None) -> tuple[float, int]:
    """Summed next-token loss (nats) over every token of ``text``, and the number of tokens scored.

    A long text is read through overlapping windows: each window re-reads the last
    ``window - stride`` tokens as context and scores only the ``stride`` new ones, so
    every token is scored exactly once with at least that much context.
    The text is preceded by the BOS (or EOS) token, so its first token is scored too.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    window = min(window or context_length(model), context_length(model))
    stride = stride or max(1, window // 2)
    if not 0 < stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}) (got {stride})")
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor(([start] if start is not None else []) + list(ids))
    first_target = 1  # position 0 is only ever context
    total, scored = 0.0, 0
    was_training = model.training
    model.eval()
    # windows end at first_target + stride, + 2*stride, ... ; each scores its last `stride` targets
    end = first_target
    while end < len(ids):
        new_end = min(end + stride, len(ids))
        begin = max(0, new_end - window)
        chunk = ids[begin:new_end][None]  # (1, T)
        logits = model(chunk, attention_mask=torch.ones_like(chunk)).logits[0, :-1].float()  # (T-1, vocab): predictions for chunk[1:]
        targets = chunk[0, 1:]
        n_new = new_end - end
        loss = torch.nn.functional.cross_entropy(logits[-n_new:], targets[-n_new:], reduction="sum")
        total, scored, end = total + loss.item(), scored + n_new, new_end
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
