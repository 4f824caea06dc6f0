"""GPT-2's BPE loads offline and round-trips; the side-by-side helpers agree with each tokenizer."""
import pytest

from lmguide import tokenization
from lmguide.data import austen

SENTENCE = "Mr. Darcy's letter reached Longbourn on Wednesday."


@pytest.fixture(scope="module")
def gpt2():
    return tokenization.gpt2_tiktoken()


@pytest.fixture(scope="module")
def live_bpe():
    return tokenization.train_bpe(austen("train")[:200_000], vocab_size=600)


@pytest.fixture(scope="module")
def wordpiece():
    from transformers import AutoTokenizer

    from lmguide.zoo import ModelNotAvailable, path

    try:
        return AutoTokenizer.from_pretrained(path("minilm-l6"))
    except ModelNotAvailable as err:
        pytest.skip(str(err))


def test_gpt2_file_is_found_without_importing_whisper():
    import sys

    file = tokenization.gpt2_tiktoken_file()
    assert file.name == "gpt2.tiktoken" and file.parent.name == "assets"
    assert "whisper" not in sys.modules  # importing whisper would need numba


def test_gpt2_has_its_published_vocabulary(gpt2):
    assert gpt2.n_vocab == 50257  # 50,256 byte strings + <|endoftext|>
    assert gpt2.eot_token == 50256
    assert gpt2.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert gpt2.encode_ordinary("Hello world") == [15496, 995]  # GPT-2's well-known ids
    assert tokenization.vocab_size(gpt2) == 50257


@pytest.mark.parametrize("text", [SENTENCE, "naïve café, 東京 and 🙂\n\n  spaces  ", austen("val")[:20_000]])
def test_gpt2_round_trips_any_text(gpt2, text):
    assert gpt2.decode(gpt2.encode_ordinary(text)) == text  # byte-level: nothing is ever unknown


def test_damaged_ranks_file_is_refused(monkeypatch, tmp_path):
    bad = tmp_path / "gpt2.tiktoken"
    bad.write_bytes(b"IQ== 0\n")
    monkeypatch.setattr(tokenization, "gpt2_tiktoken_file", lambda: bad)
    with pytest.raises(tokenization.TokenizerNotAvailable, match="reinstall openai-whisper"):
        tokenization.gpt2_tiktoken()


def test_missing_whisper_says_how_to_install(monkeypatch):
    monkeypatch.setattr(tokenization.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tokenization.TokenizerNotAvailable, match="pip install --no-deps openai-whisper"):
        tokenization.gpt2_tiktoken_file()


def test_pieces_cover_the_text_for_byte_level_bpes(gpt2, live_bpe):
    for tok in (gpt2, live_bpe):
        toks = tokenization.pieces(tok, SENTENCE)
        assert "".join(toks) == SENTENCE
        assert len(toks) == len(tokenization.encode(tok, SENTENCE))
    assert tokenization.pieces(gpt2, "Mr. Darcy") == ["Mr", ".", " Dar", "cy"]


def test_wordpiece_pieces_are_lower_cased_vocabulary_entries(wordpiece):
    toks = tokenization.pieces(wordpiece, "Longbourn")
    assert toks[0] == "long" and all(t.startswith("##") for t in toks[1:])  # no [CLS]/[SEP] added
    assert tokenization.vocab_size(wordpiece) == 30522


def test_bytes_per_token_is_bytes_over_tokens(gpt2, live_bpe):
    text = austen("val")[:5000]
    for tok in (gpt2, live_bpe):
        assert tokenization.bytes_per_token(tok, text) == len(text.encode()) / len(tokenization.encode(tok, text))
    with pytest.raises(ValueError, match="empty string"):
        tokenization.bytes_per_token(gpt2, "")


def test_live_bpe_has_the_asked_vocabulary_and_a_bigger_one_packs_more(live_bpe):
    assert tokenization.vocab_size(live_bpe) == 600
    bigger = tokenization.train_bpe(austen("train")[:200_000], vocab_size=1500)
    text = austen("val")[:20_000]
    assert tokenization.bytes_per_token(bigger, text) > tokenization.bytes_per_token(live_bpe, text)


def test_comparison_table(gpt2, live_bpe):
    table = tokenization.compare({"gpt2": gpt2, "live": live_bpe}, SENTENCE)
    assert list(table.index) == ["gpt2", "live"]
    assert table.loc["gpt2", "vocab"] == 50257 and table.loc["gpt2", "tokens"] == len(table.loc["gpt2", "pieces"])
    shown = table.loc["gpt2", "shown"]
    assert "|·Darcy" in shown or "·Dar|cy" in shown  # spaces shown as '·', tokens split by '|'
