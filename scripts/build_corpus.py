"""Rebuild lmguide/assets/austen.json.gz from Debian's r-cran-janeaustenr.

Usage:  python scripts/build_corpus.py [path/to/extracted/deb]

Without a path it runs ``apt-get download r-cran-janeaustenr`` and
``dpkg-deb -x`` in a temporary folder (no R and no root needed for that).
It prints the sha256 that ``lmguide/data.py`` pins; update CORPUS_SHA256
there when the corpus changes on purpose.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from lmguide.data import BOOKS, chapters_from_lines

sys.path.insert(0, str(Path(__file__).resolve().parent))  # rdata.py lives beside this script
from rdata import read_rdb  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "lmguide" / "assets" / "austen.json.gz"


def extract_deb(workdir: Path) -> Path:
    subprocess.run(["apt-get", "download", "r-cran-janeaustenr"], cwd=workdir, check=True)
    deb = next(workdir.glob("r-cran-janeaustenr_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "root")], check=True)
    return workdir / "root"


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(argv[0]) if argv else extract_deb(Path(tmp))
        data_dir = next(root.rglob("janeaustenr/data"))
        novels = read_rdb(data_dir)
        corpus = {book: chapters_from_lines(novels[book]) for book in BOOKS}
    for book, chs in corpus.items():
        print(f"{book:18s} {len(chs):3d} chapters {sum(map(len, chs)):>9,d} characters")
    # mtime=0 keeps the gzip bytes (and so the sha256) reproducible
    raw = gzip.compress(json.dumps(corpus, ensure_ascii=False).encode("utf-8"), mtime=0)
    OUT.write_bytes(raw)
    print(f"wrote {OUT.name}: {len(raw):,d} bytes, sha256 {hashlib.sha256(raw).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1:])
