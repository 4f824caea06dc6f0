"""Tokenizers side by side: GPT-2's BPE (offline), a BPE trained live, SmolLM2's and MiniLM's.

    gpt2 = gpt2_tiktoken()                       # GPT-2's 50,257-token BPE, from a local file
    encode(gpt2, "Mr. Darcy")                    # [5246, 13, 46442] -- works for HF tokenizers too
    pieces(gpt2, "Mr. Darcy")                    # ['Mr', '.', ' Darcy']
    bytes_per_token(gpt2, text)                  # how much text one token carries
    train_bpe(text, vocab_size=1000)             # a byte-level BPE learned from text, in seconds

GPT-2's merge table ships inside the installed ``openai-whisper`` package
(``whisper/assets/gpt2.tiktoken``, byte-identical to OpenAI's ``r50k_base.tiktoken``).
We find that folder without importing whisper (importing it needs numba) and build a
``tiktoken.Encoding`` from it, so nothing is downloaded.

Named ``tokenization`` (not ``tokenizers``) so that a learner's ``from lmguide import tokenization``
never shadows Hugging Face's ``tokenizers`` package in the notebook's namespace.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
from pathlib import Path

# sha256 of OpenAI's r50k_base.tiktoken (tiktoken_ext.openai_public.r50k_base), the GPT-2 ranks
GPT2_TIKTOKEN_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# GPT-2's pre-tokenizer regex as tiktoken writes it (same splits as the 2019 release's pattern)
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENDOFTEXT = "<|endoftext|>"


class TokenizerNotAvailable(RuntimeError):
    """A tokenizer whose files are not installed here; the message says how to get them."""


def gpt2_tiktoken_file() -> Path:
    """Where ``gpt2.tiktoken`` lies in the installed ``openai-whisper`` package (found without importing it)."""
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerNotAvailable("GPT-2's BPE ranks come from the openai-whisper package, which is not "
                                    "installed; install it with 'pip install --no-deps openai-whisper'")
    file = Path(next(iter(spec.submodule_search_locations))) / "assets" / "gpt2.tiktoken"
    if not file.is_file():
        raise TokenizerNotAvailable(f"{file} is missing; reinstall it with "
                                    "'pip install --force-reinstall --no-deps openai-whisper'")
    return file


def gpt2_tiktoken():
    """GPT-2's byte-level BPE as a ``tiktoken.Encoding``: 50,256 merged byte strings + ``<|endoftext|>``."""
    import tiktoken

    raw = gpt2_tiktoken_file().read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != GPT2_TIKTOKEN_SHA256:
        raise TokenizerNotAvailable(f"gpt2.tiktoken has sha256 {digest[:12]}..., not GPT-2's "
                                    f"{GPT2_TIKTOKEN_SHA256[:12]}...; reinstall openai-whisper")
    # one line per token: base64(bytes) rank
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: len(ranks)}, explicit_n_vocab=len(ranks) + 1)


def train_bpe(text: str, vocab_size: int):
    """A GPT-2 style byte-level BPE learned from ``text``; returns a transformers tokenizer.

    The AustenGPT recipe trains its tokenizer with this on the train split. ``<|endoftext|>``
    is the only special token and serves as BOS, EOS, UNK and padding.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[ENDOFTEXT], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    chunks = [text[i:i + 100_000] for i in range(0, len(text), 100_000)]
    tok.train_from_iterator(chunks, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT,
        pad_token=ENDOFTEXT, model_max_length=None,
    )


def _is_tiktoken(tokenizer) -> bool:
    return type(tokenizer).__module__.startswith("tiktoken")


def vocab_size(tokenizer) -> int:
    """Number of distinct token ids, special tokens included."""
    return tokenizer.n_vocab if _is_tiktoken(tokenizer) else len(tokenizer)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added, for a tiktoken or a transformers tokenizer."""
    if _is_tiktoken(tokenizer):
        return tokenizer.encode_ordinary(text)
    # verbose=False: a long text is fine here, we only count tokens (no "longer than max length" warning)
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def pieces(tokenizer, text: str) -> list[str]:
    """The tokens of ``text`` as readable strings.

    Byte-level BPEs (GPT-2, SmolLM2, AustenGPT) show the text each token covers, leading space
    included; a token holding part of a multi-byte character shows as U+FFFD. WordPiece (MiniLM)
    shows its own vocabulary entries: lower-cased, ``##`` marking a piece that continues a word.
    """
    ids = encode(tokenizer, text)
    if _is_tiktoken(tokenizer):
        return [tokenizer.decode_single_token_bytes(i).decode("utf-8", errors="replace") for i in ids]
    if type(tokenizer.backend_tokenizer.model).__name__ == "WordPiece":
        return tokenizer.convert_ids_to_tokens(ids)
    return [tokenizer.decode([i]) for i in ids]


def bytes_per_token(tokenizer, text: str) -> float:
    """UTF-8 bytes of ``text`` per token: how much text one token carries on average."""
    ids = encode(tokenizer, text)
    if not ids:
        raise ValueError("text must contain at least one token (got an empty string)")
    return len(text.encode("utf-8")) / len(ids)


def compare(tokenizers: dict, text: str):
    """A DataFrame, one row per tokenizer: vocabulary size, how many tokens ``text`` becomes, the tokens.

    ``pieces`` holds the token list; ``shown`` the same joined by '|' with spaces as '·'.
    """
    import pandas as pd

    rows = []
    for name, tok in tokenizers.items():
        toks = pieces(tok, text)
        rows.append({"tokenizer": name, "vocab": vocab_size(tok), "tokens": len(toks), "pieces": toks,
                     "shown": format_pieces(toks)})
    return pd.DataFrame(rows).set_index("tokenizer")


def format_pieces(toks: list[str], sep: str = "|") -> str:
    """Tokens joined by ``sep``, spaces shown as '·' so a token's leading space is visible."""
    return sep.join(t.replace(" ", "·").replace("\n", "\\n") for t in toks)
