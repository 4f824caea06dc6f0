"""Store smollm2-135m's greedy answers to the hallucination questions (notebook 08).

    python scripts/probe_answers.py          # writes lmguide/assets/probes/smollm2_answers.json

Generating 48 answers costs a few minutes on 2 CPU cores, too long for a notebook cell; the
notebook regenerates a few of them live and checks they match, then scores all of them in
batched passes. Greedy decoding, batches of 8 questions in file order (left-padded), at most 24 new tokens.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import lmguide as lg
from lmguide import probes

MAX_NEW_TOKENS = 24
BATCH = 8  # questions per left-padded batch, in file order (the notebook re-asks one batch)
OUT = Path(__file__).resolve().parents[1] / "lmguide" / "assets" / "probes" / "smollm2_answers.json"


def main() -> None:
    lg.setup(threads=2)
    model, tokenizer = lg.load("smollm2-135m")
    weights = lg.zoo.path("smollm2-135m") / "model.safetensors"
    answers, t0 = {}, time.perf_counter()
    questions = probes.entity_questions()
    for i in range(0, len(questions), BATCH):
        batch = questions[i:i + BATCH]
        for q, ids in zip(batch, probes.ask_many(model, tokenizer, [q["question"] for q in batch], MAX_NEW_TOKENS)):
            answers[q["id"]] = {"answer": tokenizer.decode(ids, skip_special_tokens=True).strip(), "ids": ids}
            print(f"{q['id']}: {answers[q['id']]['answer']!r}", flush=True)
    OUT.write_text(json.dumps({
        "model": "smollm2-135m", "weights_sha256": lg.zoo.sha256(weights), "decoding": "greedy",
        "max_new_tokens": MAX_NEW_TOKENS, "batch": BATCH, "torch": torch.__version__,
        "minutes": round((time.perf_counter() - t0) / 60, 1), "answers": answers,
    }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
