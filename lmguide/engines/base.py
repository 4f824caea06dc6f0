"""The one interface every engine answers: :class:`Engine`.

An engine holds a model's weights in its own form (a torch module, an onnxruntime session, later
a llama.cpp context) and a key/value cache for one sequence. Each engine kind writes two things,
:meth:`Engine.forward_tokens` (run new tokens, append them to the cache, return their logits) and
:meth:`Engine.crop_cache` (keep the first n cached positions), plus :attr:`Engine.n_cached` and
:attr:`Engine.weight_bytes`. Everything else is written once, here, on top of those:

    eval(ids)                      logits of each new position (checked), appended to the cache
    prefill(ids)                   the same in chunks, keeping only the last position's logits
    truncate(n), reset()           roll the cache back (speculative decoding rejects tokens so)
    generate(prompt_ids, n, ...)   an iterator of token ids: greedy, or sampled by lmguide.sampling
    continuation_logprobs(c, x)    log p(x_i | c, x_<i) for each token of x, chunk by chunk
    time_step(tokens=1)            a Timing of one call reading that many tokens (the cache rolled back each time)
    memory()                       weights MiB, process RSS and peak RSS MiB

Long inputs go through the model ``chunk_size`` positions at a time, so no call ever holds a
positions x vocabulary array of logits (Qwen's vocabulary is 151,936: 1,024 positions of float32
logits would be 622 MB; a chunk of 64 is 39 MB).
"""
from __future__ import annotations

import abc
import math
import types
from typing import Iterator, Sequence

import torch

from lmguide import _util
from lmguide.eval import context_length as model_context_length
from lmguide.sampling import apply_temperature, sample_next_token, top_k_filter, top_p_filter
from lmguide.timing import Timing, first_token_and_decode, time_call

DEFAULT_CHUNK = 64  # positions per model call for long inputs: 64 x 151,936 float32 logits = 39 MB


def as_token_ids(ids) -> torch.Tensor:
    """One sequence of token ids as a 1-D int64 tensor: from a list, a 1-D tensor or array, or a (1, T) batch."""
    t = torch.as_tensor(ids, dtype=torch.long) if not isinstance(ids, torch.Tensor) else ids.long()
    if t.dim() == 2:
        if t.shape[0] != 1:
            raise ValueError(f"an engine decodes one sequence at a time (got a batch of {t.shape[0]}); "
                             "loop over the sequences")
        t = t[0]
    if t.dim() != 1:
        raise ValueError(f"token ids must be a list or a 1-D tensor (got shape {tuple(t.shape)})")
    return t


def config_context_length(config) -> int | None:
    """The longest input a model with this transformers ``config`` takes (the rule of ``eval.context_length``)."""
    return model_context_length(types.SimpleNamespace(config=config))


class Engine(abc.ABC):
    """A causal LM in some engine, with a key/value cache for one sequence. See the module docstring.

    Attributes every engine sets: ``kind`` (its registry name), ``name`` (the model), ``tokenizer``,
    ``context_length`` (None when unknown), ``chunk_size``, ``setup_seconds`` (converting the loaded
    model or starting the session) and ``file`` (the file it runs from, or None when only in memory).
    """

    kind = "engine"

    def __init__(self, tokenizer, name: str, context_length: int | None, chunk_size: int = DEFAULT_CHUNK):
        self.tokenizer = tokenizer
        self.name = name
        self.context_length = context_length
        self.chunk_size = self._chunk(DEFAULT_CHUNK if chunk_size is None else chunk_size)
        self.setup_seconds = 0.0
        self.file = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}, {self.n_cached} positions cached>"

    # --- what each engine kind writes -------------------------------------------------------------
    @abc.abstractmethod
    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Run ``ids`` (T,) after the cached positions; append them to the cache; float32 logits (T, V).

        No checks here: callers use :meth:`eval`."""

    @abc.abstractmethod
    def crop_cache(self, n: int) -> None:
        """Keep the first ``n`` cached positions (0 <= n <= n_cached; :meth:`truncate` checks)."""

    @property
    @abc.abstractmethod
    def n_cached(self) -> int:
        """How many positions the cache holds."""

    @property
    @abc.abstractmethod
    def weight_bytes(self) -> int:
        """Bytes of weights one decode step reads (what bounds its speed: see ``hardware.decode_bound``)."""

    # --- text ---------------------------------------------------------------------------------
    @property
    def eos_token_id(self) -> int | None:
        return getattr(self.tokenizer, "eos_token_id", None)  # None: no tokenizer given (a bare graph)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, as the tokenizer makes them by default."""
        return list(self.tokenizer(text)["input_ids"])

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(as_token_ids(ids).tolist(), skip_special_tokens=skip_special_tokens)

    # --- the cache ------------------------------------------------------------------------------
    def eval(self, ids) -> torch.Tensor:
        """Logits (T, V) of each of the ``T`` new positions, which are appended to the cache.

        Row i is the next-token prediction after ``ids[i]``. For long inputs use :meth:`prefill`
        (only the last row) or :meth:`continuation_logprobs` (chunked).
        """
        ids = as_token_ids(ids)
        if len(ids) == 0:
            raise ValueError("ids is empty; give at least one token to evaluate")
        if self.context_length is not None and self.n_cached + len(ids) > self.context_length:
            raise ValueError(f"{self.n_cached} cached + {len(ids)} new positions exceed the model's context of "
                             f"{self.context_length} tokens; truncate the cache or shorten the input")
        return self.forward_tokens(ids)

    def prefill(self, ids, chunk_size: int | None = None) -> torch.Tensor:
        """Append ``ids`` to the cache, ``chunk_size`` positions per call; the last position's logits (V,)."""
        ids, chunk = as_token_ids(ids), self._chunk(chunk_size)
        if len(ids) == 0:
            raise ValueError("ids is empty; give at least one token to read")
        for start in range(0, len(ids), chunk):
            logits = self.eval(ids[start:start + chunk])
        return logits[-1]

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` cached positions: the tokens after them leave no trace."""
        if isinstance(n, bool) or int(n) != n or not 0 <= n <= self.n_cached:
            raise ValueError(f"n must be an integer from 0 to {self.n_cached}, the positions cached (got {n})")
        if n < self.n_cached:
            self.crop_cache(int(n))

    def reset(self) -> None:
        """Empty the cache."""
        self.truncate(0)

    def _chunk(self, chunk_size):
        chunk = self.chunk_size if chunk_size is None else chunk_size
        if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
            raise ValueError(f"chunk_size must be an integer >= 1 (got {chunk}); it is the positions one call reads")
        return int(chunk)

    # --- generation -----------------------------------------------------------------------------
    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, stop_at_eos: bool = True) -> Iterator[int]:
        """New token ids one at a time (an iterator: stream them), from an empty cache.

        ``temperature`` 0 is greedy (the same ids as ``lmguide.sampling.greedy_generate``); above 0 each
        token is drawn by ``lmguide.sampling.sample_next_token`` with ``top_k`` / ``top_p``, from a
        generator seeded with ``seed`` (None: torch's global generator). Stops after ``max_new_tokens``,
        or after the EOS token when ``stop_at_eos``. Afterwards the cache holds the prompt and every
        yielded token but the last.
        """
        prompt = as_token_ids(prompt_ids)
        if len(prompt) == 0:
            raise ValueError("the prompt is empty (0 tokens); give the model at least one token to continue")
        if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an integer >= 1 (got {max_new_tokens}); ask for a token or more")
        if self.context_length is not None and len(prompt) + max_new_tokens > self.context_length:
            raise ValueError(f"prompt length {len(prompt)} + max_new_tokens {max_new_tokens} exceeds the model's "
                             f"context of {self.context_length} tokens; ask for at most "
                             f"{max(self.context_length - len(prompt), 0)} new tokens")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (got {temperature}); 0 is greedy decoding")
        dummy = torch.zeros(1, 2)  # sampling's own checks, run now so a bad value fails here, not at token 1
        apply_temperature(dummy, temperature or 1.0)
        if top_k is not None:
            top_k_filter(dummy, top_k)
        if top_p is not None:
            top_p_filter(dummy, top_p)
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed):
            raise ValueError(f"seed must be an integer or None (got {seed!r})")
        return self._stream(prompt, int(max_new_tokens), temperature, top_k, top_p, seed, stop_at_eos)

    def _stream(self, prompt, max_new_tokens, temperature, top_k, top_p, seed, stop_at_eos):
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None and temperature > 0 else None
        self.reset()
        logits = self.prefill(prompt)  # (V,)
        for i in range(max_new_tokens):
            if temperature == 0:
                token = int(logits.argmax())
            else:
                token = int(sample_next_token(logits[None], temperature, top_k, top_p, generator)[0])
            yield token
            if i == max_new_tokens - 1 or (stop_at_eos and token == self.eos_token_id):
                return
            logits = self.eval([token])[-1]

    def prompt_ids(self, text: str, chat: bool = False) -> list[int]:
        """Token ids of ``text`` as a prompt: as is, or with ``chat`` as one user turn in the model's own chat
        template (from its files), ending where the assistant's answer begins."""
        if not chat:
            return self.encode(text)
        return self.chat_ids([{"role": "user", "content": text}])

    def chat_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of a conversation (``{"role", "content"}`` turns) in the model's own chat template, ending
        where the assistant's next answer begins."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{self.name} has no chat template in its files (it is not a chat model); "
                             "leave out --chat / chat=True")
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def answer_ids(self, prompt_ids, max_new_tokens: int) -> list[int]:
        """The greedy answer's token ids, without the EOS token that ends it (at most ``max_new_tokens``)."""
        return [t for t in self.generate(prompt_ids, max_new_tokens) if t != self.eos_token_id]

    def stream_text(self, text: str, max_new_tokens: int = 64, chat: bool = False, **sampling) -> Iterator[str]:
        """The model's continuation of ``text`` (or, with ``chat``, its answer to it), piece by piece as each
        token arrives; ``sampling`` goes to :meth:`generate` (temperature, top_k, top_p, seed).

        Each piece is the text the new token completes (a character split across tokens waits for its
        last byte), so printing the pieces in turn prints the decoded answer."""
        tokens, shown = [], ""
        for token in self.generate(self.prompt_ids(text, chat), max_new_tokens, **sampling):
            if token == self.eos_token_id:
                break
            tokens.append(token)
            now = self.decode(tokens)
            if now.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the rest of it
                continue
            if len(now) > len(shown):
                yield now[len(shown):]
            shown = now

    # --- scoring ------------------------------------------------------------------------------
    def continuation_logprobs(self, context_ids, continuation_ids, chunk_size: int | None = None) -> list[float]:
        """log p(token | context and the continuation before it), for each token of the continuation (nats).

        Read ``chunk_size`` positions per call (default :attr:`chunk_size`): at most a chunk x vocabulary
        array of logits at a time. Starts from an empty cache; the context needs at least one token
        (a BOS token, for a text's first token).
        """
        context, continuation = as_token_ids(context_ids), as_token_ids(continuation_ids)
        chunk = self._chunk(chunk_size)
        if len(context) == 0:
            raise ValueError("context_ids is empty; start it with the BOS (or EOS) token to score the first token")
        self.reset()
        prev = self.prefill(context, chunk)  # (V,) the prediction of the continuation's first token
        out: list[float] = []
        for start in range(0, len(continuation), chunk):
            targets = continuation[start:start + chunk]  # (k,)
            last = start + chunk >= len(continuation)
            fed = targets[:-1] if last else targets  # the final token is predicted, never read
            rows = self.eval(fed) if len(fed) else prev.new_empty(0, prev.numel())  # (k or k-1, V)
            predictions = torch.cat([prev[None], rows])[:len(targets)]  # (k, V): row i predicts targets[i]
            logp = torch.log_softmax(predictions.float(), dim=-1).gather(1, targets[:, None])[:, 0]
            out += logp.tolist()
            prev = rows[-1] if len(rows) else prev
        return out

    # --- speed and memory ---------------------------------------------------------------------
    def time_step(self, repeats: int = 5, warmup: int = 1, token_id: int | None = None, tokens: int = 1) -> Timing:
        """:class:`~lmguide.timing.Timing` of one call after what the cache holds (prefill a prompt first): ``tokens``
        tokens read at once (1: a decode step; more: what verifying drafted tokens costs), then the cache rolled
        back, so every run sees the same past."""
        token = token_id if token_id is not None else (self.eos_token_id or 0)
        n = self.n_cached

        def step():
            logits = self.eval([token] * tokens)
            self.truncate(n)
            return logits

        return time_call(step, repeats=repeats, warmup=warmup)

    def decode_speed(self, prompt_ids, new_tokens: int = 32, repeats: int = 3, warmup: int = 1) -> dict:
        """Time to first token and decode tokens/s of greedy decoding after ``prompt_ids``
        (:func:`lmguide.timing.first_token_and_decode`: the one split of the first token and the steps)."""
        return first_token_and_decode(lambda ids, n: list(self.generate(ids, n, stop_at_eos=False)), prompt_ids,
                                      new_tokens, repeats, warmup)

    def memory(self) -> dict:
        """Weights MiB (what a step reads), this process's RSS and peak RSS MiB (the peak counts the whole process)."""
        return {"weights MiB": self.weight_bytes / _util.MIB, "RSS MiB": _util.rss_mib(),
                "peak RSS MiB": _util.peak_rss_mib()}

    def file_mib(self) -> float:
        """MiB of the file the engine runs from; NaN when its weights exist only in memory."""
        return self.file.stat().st_size / _util.MIB if self.file is not None else math.nan


def check_choice(what: str, value, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; else one sentence naming the bad value and the choices."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")
    return value
