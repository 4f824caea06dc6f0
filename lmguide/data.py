"""The Austen corpus: six public-domain novels, split by chapter.

The text ships inside the package (``assets/austen.json.gz``), built by
``scripts/build_corpus.py`` from Debian's ``r-cran-janeaustenr``. Splits are
fixed by chapter number so that no test chapter is ever seen by a tokenizer
or a model during training: in every book, chapter ``i`` goes to ``val`` when
``i % 20 == 18``, to ``test`` when ``i % 20 == 19`` and to ``train`` otherwise.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
from importlib import resources

SPLITS = ("train", "val", "test")
BOOKS = {
    "sensesensibility": "Sense and Sensibility (1811)",
    "prideprejudice": "Pride and Prejudice (1813)",
    "mansfieldpark": "Mansfield Park (1814)",
    "emma": "Emma (1815)",
    "northangerabbey": "Northanger Abbey (1817)",
    "persuasion": "Persuasion (1817)",
}
CORPUS_FILE = "austen.json.gz"
CORPUS_SHA256 = "09be708cfef5ea6ac10dc5f3c71063fc0799d564092fcf2f3dbb0b20a8846490"

_CHAPTER = re.compile(r"^(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\.?\s*$")


def split_of(chapter_index: int) -> str:
    """Which split chapter number ``chapter_index`` (counted from 0 in its book) belongs to."""
    r = chapter_index % 20
    return "val" if r == 18 else "test" if r == 19 else "train"


def chapters_from_lines(lines: list[str]) -> list[str]:
    """Cut a novel's lines into chapters; wrapped lines become one paragraph each.

    Front matter before the first chapter heading (title page, advertisement)
    is dropped; so are headings such as ``VOLUME II``.
    """
    chapters, paragraphs, current = [], None, []

    def end_paragraph():
        if paragraphs is not None and current:
            paragraphs.append(" ".join(current))
        current.clear()

    for raw in lines:
        line = (raw or "").strip()
        if _CHAPTER.match(line):
            end_paragraph()
            if paragraphs:
                chapters.append("\n".join(paragraphs))
            paragraphs = []
        elif not line or re.fullmatch(r"VOLUME\s+[IVX]+|THE END|FINIS", line):
            end_paragraph()
        else:
            current.append(line)
    end_paragraph()
    if paragraphs:
        chapters.append("\n".join(paragraphs))
    return chapters


@functools.cache
def _corpus() -> dict[str, list[str]]:
    raw = resources.files("lmguide.assets").joinpath(CORPUS_FILE).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CORPUS_SHA256:
        raise RuntimeError(
            f"the shipped Austen corpus is damaged (sha256 {digest[:12]}..., expected "
            f"{CORPUS_SHA256[:12]}...); reinstall lmguide or rebuild it with scripts/build_corpus.py"
        )
    return json.loads(gzip.decompress(raw))


def chapters(split: str = "train", books=None) -> list[tuple[str, int, str]]:
    """``(book, chapter_index, text)`` for every chapter of ``split``, in book order."""
    if split not in SPLITS and split != "all":
        raise ValueError(f"split must be one of {SPLITS + ('all',)} (got {split!r})")
    corpus = _corpus()
    books = list(BOOKS) if books is None else [books] if isinstance(books, str) else list(books)
    unknown = [b for b in books if b not in BOOKS]
    if unknown:
        raise ValueError(f"unknown book {unknown[0]!r}; choose from {', '.join(BOOKS)}")
    return [
        (book, i, text)
        for book in books
        for i, text in enumerate(corpus[book])
        if split == "all" or split_of(i) == split
    ]


def austen(split: str = "train", books=None) -> str:
    """All text of ``split`` ('train', 'val', 'test' or 'all'), chapters separated by blank lines."""
    return "\n\n".join(text for _, _, text in chapters(split, books))


# --- the support corpus: customer-service texts for a made-up product ---------------------------
SUPPORT_FILE = "support/kettlewise.txt"
SUPPORT_SPLITS = ("train", "test")
_DOC_HEADER = re.compile(r"^=== (?P<id>[\w-]+) \| (?P<kind>faq|article|chat) \| (?P<split>train|test) \| (?P<title>.+)$")


@functools.cache
def _support_documents() -> tuple[dict, ...]:
    raw = resources.files("lmguide.assets").joinpath(SUPPORT_FILE).read_text(encoding="utf-8")
    docs, lines = [], []
    for line in raw.splitlines() + ["=== end | faq | train | end"]:
        match = _DOC_HEADER.match(line)
        if match is None:
            if not docs:
                raise RuntimeError(f"{SUPPORT_FILE} must start with a '=== id | kind | split | title' line")
            lines.append(line)
            continue
        if docs:
            docs[-1]["text"] = "\n".join(lines).strip()
        lines = []
        docs.append(match.groupdict())
    return tuple(docs[:-1])


def support_documents(split: str = "train") -> list[dict]:
    """The Kettlewise K2 support texts of ``split`` ('train', 'test' or 'all'): dicts with id, kind, split, title, text.

    Written by the lmguide team for a made-up smart kettle (FAQs, help articles, support chats);
    see ``lmguide/assets/support/README.md`` for the data card. Documents are split whole.
    """
    if split not in SUPPORT_SPLITS and split != "all":
        raise ValueError(f"split must be one of {SUPPORT_SPLITS + ('all',)} (got {split!r})")
    return [dict(d) for d in _support_documents() if split == "all" or d["split"] == split]


def support(split: str = "train") -> str:
    """All support text of ``split``, documents separated by blank lines (titles included)."""
    return "\n\n".join(f"{d['title']}\n{d['text']}" for d in support_documents(split))
