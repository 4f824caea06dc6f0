"""Measure notebook 09's slow parts once (small and large models working together), for the package.

    python -m lmguide.recipes.together --speculative     # three draft -> target pairs, k = 1..8, prose and code
    python -m lmguide.recipes.together --grounded        # notebook 08's entity questions, answered from passages,
                                                         # and notebook 07's support questions closed-book
    python -m lmguide.recipes.together --judge           # the 1.5 B grading the router's stored answers

Each pair runs in a fresh process of its own (``lmguide.workers``), so its peak RSS is the pair's alone
(the two Qwen models together hold about 1.8 GB). Results go to ``lmguide/assets/together/``, with the
machine, the date and the command; notebook 09 plots them beside the standard formula and re-runs the
cheap pairs live.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from lmguide import hardware, workers
from lmguide._util import peak_rss_mib, write_json_atomic

FOLDER = Path(__file__).resolve().parents[1] / "assets" / "together"
SPECULATIVE_FILE = FOLDER / "speculative.json"
GROUNDED_FILE = FOLDER / "grounded.json"
JUDGE_FILE = FOLDER / "judge.json"
GROUNDED_MODELS = ("smollm2-135m", "qwen2.5-coder-1.5b")
JUDGE_MODEL = "qwen2.5-coder-1.5b"
PAIRS = (  # (draft, its engine, target): the torch pair, across tokenizers, the same family
    ("austen-gpt-small", "torch", "austen-gpt-large"),
    ("smollm2-135m", "llama.cpp", "qwen2.5-coder-1.5b"),
    ("qwen2.5-coder-0.5b", "llama.cpp", "qwen2.5-coder-1.5b"),
)
KS = (1, 2, 3, 4, 6, 8)
NEW_TOKENS = 64
PROSE = "Explain in a short paragraph why the sky looks blue during the day and red at sunset."
AUSTEN = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
CODE_TASK = "task-11"  # a code task of lmguide.code_tasks: the answer is a short function
COPY = ("Rename the variable `total` to `subtotal` in this function and change nothing else:\n\n"
        "def order_total(prices, discount):\n    total = 0\n    for price in prices:\n        total += price\n"
        "    if discount:\n        total = total * (1 - discount)\n    return round(total, 2)\n")


def requests(chat: bool) -> dict:
    """The texts each pair is measured on: prose and code for chat models, an Austen opening for the others."""
    from lmguide import code_tasks

    if not chat:
        return {"prose": AUSTEN}
    task = next(t for t in code_tasks.load_tasks() if t["id"] == CODE_TASK)
    return {"prose": PROSE, "code": code_tasks.prompt(task)}


def pair_sweep(draft_name: str, draft_engine: str, target_name: str, threads: int = 2, repeats: int = 3) -> dict:
    """One pair's sweep over :data:`KS` on each request, with the step times the formula needs."""
    import torch

    from lmguide import engines, speculative

    torch.set_num_threads(threads)
    options = {"threads": threads} if draft_engine == "llama.cpp" else {}
    target = engines.open_default(target_name, threads)
    draft = engines.open_engine(draft_name, draft_engine, **options)
    chat = bool(getattr(target.tokenizer, "chat_template", None))
    out = {"draft": draft_name, "draft engine": draft.kind, "target": target_name, "target engine": target.kind,
           "by": "token id" if speculative.same_tokenizer(target, draft) else "text", "requests": {}}
    for what, text in requests(chat).items():
        t_ids, d_ids = target.prompt_ids(text, chat), draft.prompt_ids(text, chat)
        rows = speculative.sweep(target, draft, t_ids, KS, NEW_TOKENS, repeats, draft_ids=d_ids)
        steps = {n: speculative.verify_seconds(target, t_ids, n, repeats).median for n in (1, 2, 3, 5, 9)}
        draft_step = speculative.verify_seconds(draft, d_ids, 1, repeats).median
        out["requests"][what] = {"prompt": text, "rows": rows, "target step s": steps[1],
                                 "verify s by tokens read": steps, "draft step s": draft_step}
        print(f"  {draft_name} -> {target_name} {what}: " + ", ".join(
            f"k={r['k']} a={r['acceptance']:.2f} x{r['speed-up']:.2f}" for r in rows), flush=True)
    if chat:  # the library's draft without a model: prompt lookup on a request that copies its prompt
        ids = target.prompt_ids(COPY, True)
        lookup = speculative.sweep(target, speculative.prompt_lookup, ids, (4, 8), NEW_TOKENS * 2, repeats)
        out["prompt lookup"] = {"prompt": COPY, "rows": lookup}
    out["peak RSS MiB"] = peak_rss_mib()
    return out


def load(name: str) -> dict:
    """A stored result (``"speculative"``, ``"grounded"`` or ``"judge"``), with the machine, date and command."""
    import json

    file = {"speculative": SPECULATIVE_FILE, "grounded": GROUNDED_FILE, "judge": JUDGE_FILE}[name]
    if not file.is_file():
        raise FileNotFoundError(f"{file.name} is not stored yet; run python -m lmguide.recipes.together --{name}")
    return json.loads(file.read_text(encoding="utf-8"))


def _this():
    import importlib

    return importlib.import_module("lmguide.recipes.together")


def _support_closed_book() -> dict:
    from lmguide import grounding

    return {**_stamp("--support-closed-book"), "models": {
        n: workers.run_or_raise(f"closed-book support answers of {n}", grounding.closed_book_support, n)
        for n in GROUNDED_MODELS}}


def _stamp(flag: str) -> dict:
    return {"machine": hardware.machine(), "measured": time.strftime("%Y-%m-%d"),
            "command": f"python -m lmguide.recipes.together {flag}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmguide.recipes.together", description=__doc__.split("\n\n")[0])
    parser.add_argument("--speculative", action="store_true", help="measure the three speculative pairs")
    parser.add_argument("--grounded", action="store_true", help="answer the entity questions from retrieved passages")
    parser.add_argument("--judge", action="store_true", help="let the 1.5 B grade the router's stored answers")
    parser.add_argument("--support-closed-book", action="store_true",
                        help="only add the support questions answered closed-book to the stored grounded answers")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not (args.speculative or args.grounded or args.judge or args.support_closed_book):
        parser.error("give --speculative, --grounded, --judge and/or --support-closed-book")
    if args.speculative:
        stored = {**_stamp("--speculative"), "new tokens": NEW_TOKENS, "decoding": "greedy", "pairs": []}
        for draft, engine, target in PAIRS:
            stored["pairs"].append(workers.run_or_raise(f"speculative {draft} -> {target}", _this().pair_sweep, draft,
                                                        engine, target, repeats=args.repeats))
        write_json_atomic(SPECULATIVE_FILE, stored, indent=1)
    if args.grounded:
        from lmguide import grounding

        stored = {**_stamp("--grounded"), "system prompt": grounding.SYSTEM_PROMPT, "models": {
            n: workers.run_or_raise(f"grounded answers of {n}", grounding.grounded_answers, n) for n in GROUNDED_MODELS}}
        stored["support closed-book"] = _support_closed_book()
        write_json_atomic(GROUNDED_FILE, stored, indent=1)
    if args.support_closed_book:  # this part alone, added to the stored grounded answers
        stored = load("grounded")
        stored["support closed-book"] = _support_closed_book()
        write_json_atomic(GROUNDED_FILE, stored, indent=1)
    if args.judge:
        from lmguide import judge

        stored = {**_stamp("--judge"), "judge": JUDGE_MODEL, "grade prompt": judge.GRADE_PROMPT,
                  "prefer prompt": judge.PREFER_PROMPT,
                  **workers.run_or_raise(f"judging with {JUDGE_MODEL}", judge.judge_answers, JUDGE_MODEL)}
        write_json_atomic(JUDGE_FILE, stored, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
