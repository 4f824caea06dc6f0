"""Build the shipped QA data (SQuAD v1.1 JSON) from the hand-written sources.

Usage:  python scripts/build_qa_data.py

Reads ``data/qa_source/train_*.json`` (in name order) and ``data/qa_source/dev.json``,
checks every answer against its context (``lmguide.qa_data.build_squad``), checks that no
dev passage is in the training data (equal, or one inside the other), and writes
``lmguide/assets/qa/train.json`` and ``dev.json``. The output depends only on the
sources, so the printed sha256 sums change only when the sources do.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from lmguide.qa_data import build_squad, check_squad, iter_questions

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "data" / "qa_source"
OUT = ROOT / "lmguide" / "assets" / "qa"


def read_records(path: Path) -> list[dict]:
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path} holds a {type(records).__name__}, not a list of records; wrap them in [...]")
    return records


def squash(text: str) -> str:
    """Lowercase with single spaces, so a re-wrapped copy of a passage still counts as the same."""
    return " ".join(text.lower().split())


def check_dev_is_unseen(train_records: list[dict], dev_records: list[dict]) -> None:
    """Raise if a dev context equals, contains or is contained in a training context."""
    train_contexts = [(r["id"], squash(r["context"])) for r in train_records]
    for record in dev_records:
        dev = squash(record["context"])
        for train_id, train in train_contexts:
            if dev in train or train in dev:
                raise ValueError(f"dev record {record['id']!r} shares its passage with train record "
                                 f"{train_id!r}; pick a dev passage that training never sees")


def write_json(data: dict, path: Path) -> str:
    """Write ``data`` byte-for-byte reproducibly; return its sha256."""
    raw = (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    path.write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()


def main() -> None:
    train_files = sorted(SOURCES.glob("train_*.json"))
    dev_file = SOURCES / "dev.json"
    if not train_files or not dev_file.is_file():
        sys.exit(f"need {SOURCES}/train_*.json and {dev_file.name}; found "
                 f"{[p.name for p in sorted(SOURCES.glob('*.json'))] or 'nothing'}")
    train_records = [r for f in train_files for r in read_records(f)]
    dev_records = read_records(dev_file)
    ids = [r.get("id") for r in train_records + dev_records]
    repeated = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if repeated:
        raise ValueError(f"record ids {repeated} are used more than once across the source files; make them unique")
    check_dev_is_unseen(train_records, dev_records)

    OUT.mkdir(parents=True, exist_ok=True)
    for split, records, sources in [("train", train_records, train_files), ("dev", dev_records, [dev_file])]:
        squad = check_squad(build_squad(records))
        digest = write_json(squad, OUT / f"{split}.json")
        n_questions = sum(1 for _ in iter_questions(squad))
        print(f"{split:5s} {len(records):4d} passages {n_questions:5d} questions "
              f"from {', '.join(p.name for p in sources)}")
        for kind in sorted({r["source"].split(":")[0] for r in records}):
            part = [r for r in records if r["source"].split(":")[0] == kind]
            print(f"      {kind:6s} {len(part):4d} passages {sum(len(r['qas']) for r in part):5d} questions")
        print(f"      wrote {(OUT / f'{split}.json').relative_to(ROOT)} sha256 {digest}")


if __name__ == "__main__":
    main()
