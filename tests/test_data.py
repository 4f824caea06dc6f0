import gzip
import hashlib
import importlib.util
import json
from importlib import resources
from pathlib import Path

import pytest

from lmguide import data

# the R reader is a build-time helper beside scripts/build_corpus.py, not part of the package
_RDATA = importlib.util.spec_from_file_location("rdata", Path(__file__).resolve().parents[1] / "scripts" / "rdata.py")
rdata = importlib.util.module_from_spec(_RDATA)
_RDATA.loader.exec_module(rdata)
unserialize = rdata.unserialize


def test_every_book_is_there_with_many_chapters():
    counts = {}
    for book, _, _ in data.chapters("all"):
        counts[book] = counts.get(book, 0) + 1
    assert set(counts) == set(data.BOOKS)
    assert all(n >= 20 for n in counts.values())


def test_splits_are_disjoint_and_cover_the_corpus():
    keys = {s: {(b, i) for b, i, _ in data.chapters(s)} for s in data.SPLITS}
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    assert set().union(*keys.values()) == {(b, i) for b, i, _ in data.chapters("all")}


def test_split_sizes_are_sensible():
    sizes = {s: len(data.austen(s)) for s in data.SPLITS}
    assert sizes["train"] > 10 * sizes["val"]
    assert 50_000 < sizes["test"] < 400_000
    # every book has at least one held-out chapter in val or test
    held_out = {b for s in ("val", "test") for b, _, _ in data.chapters(s)}
    assert held_out == set(data.BOOKS)


def test_no_test_paragraph_leaks_into_train():
    train = data.austen("train")
    test_paragraphs = [p for p in data.austen("test").split("\n") if len(p) > 200]
    assert test_paragraphs
    assert not any(p in train for p in test_paragraphs)


def test_text_is_clean_prose():
    text = data.austen("val")
    assert "CHAPTER" not in text
    assert "  \n" not in text
    assert text.count("\n") > 100  # paragraphs kept


def test_known_opening_line_is_in_the_right_place():
    pride = data.chapters("all", books="prideprejudice")
    assert pride[0][2].startswith("It is a truth universally acknowledged")


def test_bad_split_and_book_get_one_sentence():
    with pytest.raises(ValueError, match="split must be one of"):
        data.austen("training")
    with pytest.raises(ValueError, match="unknown book 'ulysses'"):
        data.chapters("train", books="ulysses")


def test_shipped_corpus_matches_its_pinned_hash():
    raw = resources.files("lmguide.assets").joinpath(data.CORPUS_FILE).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == data.CORPUS_SHA256
    assert set(json.loads(gzip.decompress(raw))) == set(data.BOOKS)


def test_chapter_cutting_joins_wrapped_lines_and_drops_front_matter():
    lines = ["EMMA", "", "VOLUME I", "", "CHAPTER I", "", "Emma Woodhouse, handsome,", "clever, and rich.",
             "", "Second paragraph.", "", "CHAPTER II", "", "Next."]
    assert data.chapters_from_lines(lines) == ["Emma Woodhouse, handsome, clever, and rich.\nSecond paragraph.", "Next."]


def _xdr_string_vector(values):
    """Serialize a character vector the way R's serialize(xdr=TRUE, version=2) does."""
    import struct

    out = b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300) + struct.pack(">ii", 16, len(values))
    for v in values:
        b = v.encode()
        out += struct.pack(">ii", 0x00040009, len(b)) + b
    return out


def test_r_reader_reads_a_character_vector():
    assert unserialize(_xdr_string_vector(["It is a truth", "", "£5"])) == ["It is a truth", "", "£5"]


def test_r_reader_rejects_other_formats_clearly():
    with pytest.raises(ValueError, match="not an XDR-serialized R object"):
        unserialize(b"RDX3\n....")


def test_a_damaged_corpus_file_is_one_sentence_naming_the_fix(monkeypatch):
    from lmguide import data

    data._corpus.cache_clear()
    monkeypatch.setattr(data, "CORPUS_SHA256", "0" * 64)
    try:
        with pytest.raises(RuntimeError, match="damaged .* reinstall lmguide or rebuild it with scripts/build_corpus.py"):
            data.austen("test")
    finally:
        data._corpus.cache_clear()
