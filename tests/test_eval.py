import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers, decoders

from lmguide import eval as lm_eval
from lmguide.eval import bits_per_byte, perplexity, total_nats


def byte_tokenizer():
    """One token per byte (plus <eos>), so bytes per token is exactly 1."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<eos>": 0, **{ch: i + 1 for i, ch in enumerate(sorted(alphabet))}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", bos_token="<eos>")


class Uniform(torch.nn.Module):
    """A 'model' that gives every token the same probability."""

    def __init__(self, vocab, n_positions=16):
        super().__init__()
        self.config = GPT2Config(vocab_size=vocab, n_positions=n_positions)
        self.vocab = vocab

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


def test_uniform_model_costs_log2_vocab_bits_per_token():
    tok = byte_tokenizer()
    text = "It is a truth universally acknowledged."  # ASCII: one byte, one token each
    model = Uniform(len(tok))
    assert bits_per_byte(model, tok, text) == pytest.approx(math.log2(len(tok)))


def test_uniform_model_with_multibyte_characters():
    tok = byte_tokenizer()
    text = "£5 for the café"  # 15 characters, 17 bytes, 17 byte tokens
    n_bytes = len(text.encode())
    n_tokens = len(tok(text, add_special_tokens=False)["input_ids"])
    assert n_tokens == n_bytes == 17
    assert bits_per_byte(Uniform(len(tok)), tok, text) == pytest.approx(math.log2(len(tok)) * n_tokens / n_bytes)


def test_every_token_is_scored_once_whatever_the_window():
    tok = byte_tokenizer()
    text = "abcdefghij" * 7
    for window, stride in [(16, 8), (16, 16), (16, 1), (8, 3)]:
        _, scored = total_nats(Uniform(len(tok)), tok, text, window=window, stride=stride)
        assert scored == len(text)


def test_sliding_window_matches_one_pass_when_text_fits():
    torch.manual_seed(0)
    tok = byte_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=16, n_layer=1, n_head=2)).eval()
    text = "Mr. Darcy bowed."  # 16 tokens + BOS fit in one window
    one_pass = bits_per_byte(model, tok, text)
    windows = bits_per_byte(model, tok, text, window=128, stride=5)
    assert one_pass == pytest.approx(windows, rel=1e-5)


def test_perplexity_of_uniform_model_is_vocab_size():
    tok = byte_tokenizer()
    assert perplexity(Uniform(len(tok)), tok, "hello world") == pytest.approx(len(tok), rel=1e-5)


def test_bad_input_gets_a_sentence():
    tok = byte_tokenizer()
    with pytest.raises(ValueError, match="non-empty string"):
        bits_per_byte(Uniform(len(tok)), tok, "")
    with pytest.raises(ValueError, match="stride must be in 1..window"):
        bits_per_byte(Uniform(len(tok)), tok, "abc", window=8, stride=9)


def test_split_bits_per_byte_reads_the_whole_split_once_then_from_the_cache(tmp_path, monkeypatch):
    from lmguide import data, zoo
    from lmguide.eval import split_bits_per_byte

    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    model, tok = zoo.load("austen-gpt-small")
    first = split_bits_per_byte(model, tok, "test", key="austen-gpt-small")
    assert not first["cached"] and first["bytes"] == len(data.austen("test").encode("utf-8"))
    assert (first["window"], first["stride"]) == (256, 128)  # the model's whole context, overlapping by half
    again = split_bits_per_byte(model, tok, "test", key="austen-gpt-small")
    assert again["cached"] and again["bits_per_byte"] == first["bits_per_byte"]
    assert len(list((tmp_path / "bpb").glob("austen-gpt-small-*-test-*.json"))) == 1
    # another window rule is another figure, not the cached one
    other = split_bits_per_byte(model, tok, "test", key="austen-gpt-small", window=64)
    assert not other["cached"] and other["bits_per_byte"] > first["bits_per_byte"]


def test_an_engine_scores_by_the_same_window_rule_as_the_model_it_runs():
    """Bits per byte through the engine seam (continuation log-probs, chunk by chunk) equals one forward
    pass per window on the same weights: the rule, not the engine, decides the figure."""
    import lmguide
    from lmguide import data, engines

    model, tokenizer = lmguide.load("austen-gpt-small")
    text = data.austen("test")[:3000]
    engine = engines.open_engine("austen-gpt-small", "torch", model=model, tokenizer=tokenizer, chunk_size=16)
    direct = lm_eval.bits_per_byte(model, tokenizer, text, window=128)
    through = lm_eval.bits_per_byte(engine, tokenizer, text, window=128)
    assert through == pytest.approx(direct, abs=1e-4)
    assert lm_eval.window_rule(engine, window=4096) == (lm_eval.context_length(model), lm_eval.context_length(model) // 2)
