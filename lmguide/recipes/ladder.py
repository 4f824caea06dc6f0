"""Measure the size ladder once, for the model cards and the notebooks that cannot afford it live.

    python -m lmguide.recipes.ladder --model qwen2.5-coder-1.5b      # card: training.json + README section
    python -m lmguide.recipes.ladder --model qwen2.5-coder-1.5b --part serve   # one part again, the rest kept
    python -m lmguide.recipes.ladder --chat                           # notebook 00's stored first chat
    python -m lmguide.recipes.ladder --code                           # notebook 07's code tasks, three models
    python -m lmguide.recipes.ladder --entities                       # notebook 08's entity questions, the ladder
    python -m lmguide.recipes.ladder --router                         # notebook 07's router: reader + three chat models

The whole Austen test split costs the 1.5 B about a quarter of an hour on 2 cores, far over a
notebook's 3 minutes, so it is scored here once, by the rule every model follows
(``eval.split_bits_per_byte``: the BOS/EOS token first, windows of min(context, 1024) tokens
overlapping by half, through the engine's ``continuation_logprobs``), and stored in the model's
card (``lmguide/weights/<name>/training.json``, with the machine it ran on and the sha256 of the
file it scored). Each measurement runs in a fresh process of its own (``lmguide.workers``), so
its peak RSS is the model's alone: the peak while decoding and the peak while scoring. The serving
part times the first token at prompts of 64 to 1,024 tokens and 20 support requests answered in turn
(notebook 07 sets them beside a live run of SmolLM2's 4-bit file).

``--chat`` asks the same questions of SmolLM2-135M (torch) and the 1.5 B (llama.cpp), greedy,
each in its own chat template, and stores the answers with their speed in
``lmguide/assets/ladder/first_chat.json`` (notebook 00 shows them and answers one live).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lmguide import hardware, workers, zoo
from lmguide._util import MIB, peak_rss_mib, write_json_atomic

LADDER = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")

CHAT_FILE = Path(__file__).resolve().parents[1] / "assets" / "ladder" / "first_chat.json"
CHAT_MODELS = ("smollm2-135m", "qwen2.5-coder-1.5b")
QUESTIONS = (
    "In one sentence, what is a language model?",
    "What is the capital of Australia?",
    "If I have 3 apples and eat one, how many are left? Answer with a number.",
    "Write a Python function that returns the square of a number.",
    "Who wrote Pride and Prejudice?",
)
CHAT_TOKENS = 48
CODE_MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
ENTITY_FILE = Path(__file__).resolve().parents[1] / "assets" / "probes" / "ladder_answers.json"
ENTITY_TOKENS = 24  # as SmolLM2's stored answers (scripts/probe_answers.py)
SERVE_LENGTHS = (64, 256, 1024)  # prompt tokens
SERVE_REQUESTS, SERVE_TOKENS = 20, 32


def decode_row(name: str, new_tokens: int = 32, repeats: int = 3, threads: int = 2) -> dict:
    """Load time, time to first token, decode tokens/s, prompt tokens/s (512 tokens) and peak RSS of zoo
    model ``name`` in its default engine; run it in a fresh process (``workers.run``)."""
    from lmguide import engines
    from lmguide._util import rss_mib
    from lmguide.timing import PROMPT, time_call

    before = rss_mib()
    start = time.perf_counter()
    engine = engines.open_default(name, threads)
    load_s = time.perf_counter() - start
    ids = engine.encode(PROMPT)
    speed = engine.decode_speed(ids, new_tokens, repeats)
    prompt = (ids * 64)[:512]
    prefill = time_call(lambda: (engine.reset(), engine.prefill(prompt)), repeats=repeats, warmup=1)
    peak = peak_rss_mib()
    return {"engine": engine.kind, "load s": load_s, **speed, "prompt tokens/s": 512 / prefill.median,
            "weights read per token MiB": engine.weight_bytes / MIB, "file MiB": engine.file_mib(),
            "peak RSS MiB": peak, "model RAM MiB": peak - before}


def score_row(name: str, threads: int = 2) -> dict:
    """Bits per byte on the whole Austen test split (the one window rule) and the peak RSS while scoring."""
    from lmguide import data, engines
    from lmguide import eval as lm_eval

    engine = engines.open_default(name, threads)
    r = lm_eval.split_bits_per_byte(engine, engine.tokenizer, "test", key=name)
    start = engine.tokenizer.bos_token_id if engine.tokenizer.bos_token_id is not None else engine.tokenizer.eos_token_id
    return {"bits per byte": r["bits_per_byte"], "bytes": r["bytes"], "window": r["window"], "stride": r["stride"],
            "seconds": r["seconds"], "first token": engine.tokenizer.piece(start) if start is not None else "",
            "tokens": len(engine.tokenizer(data.austen("test"), add_special_tokens=False)["input_ids"]),
            "peak RSS MiB while scoring": peak_rss_mib()}


def serve_row(name: str, threads: int = 2) -> dict:
    """Serving figures: time to first token and per-token time at prompts of :data:`SERVE_LENGTHS` tokens, and
    :data:`SERVE_REQUESTS` support requests answered in turn (at most :data:`SERVE_TOKENS` tokens each)."""
    from lmguide import engines, serving
    from lmguide.timing import PROMPT

    engine = engines.open_default(name, threads)
    by_length = serving.latency_by_prompt_length(engine, engine.encode(PROMPT), SERVE_LENGTHS, repeats=2)
    requests = serving.request_latencies(engine, serving.support_requests(SERVE_REQUESTS), SERVE_TOKENS)
    return {"by prompt length": by_length, "requests": requests, "new tokens at most": SERVE_TOKENS,
            "summary": serving.latency_summary([r["total s"] for r in requests]), "peak RSS MiB": peak_rss_mib()}


def part_row(name: str, threads: int = 2) -> dict:
    """Bits per byte on the part of the test split a quick comparison table scores every model on
    (``measure.quality.QUICK_PART``), so a quick table can set the ladder beside live rows."""
    from lmguide import engines
    from lmguide.measure import quality

    engine = engines.open_default(name, threads)
    r = quality.austen_bits_per_byte(engine, engine.tokenizer, max_chars=quality.QUICK_MAX_CHARS)
    return {"bits per byte": r["value"], "bytes": r["bytes"], "part": quality.QUICK_PART["causal-lm"]}


def code_answers(name: str, threads: int = 2) -> dict:
    """Greedy answers of zoo model ``name`` to every code task (``lmguide.code_tasks``), each run in the sandbox."""
    from lmguide import code_tasks, engines

    engine = engines.open_default(name, threads)

    def progress(i, n, row):
        print(f"  {name} {i}/{n} {row['id']}: {row['status']} ({row['seconds']:.0f} s)", flush=True)

    rows = code_tasks.answer_all(engine, code_tasks.load_tasks(), progress=progress)
    return {"engine": engine.kind, "precision": getattr(engine, "precision", None) or "float32",
            "max new tokens": code_tasks.MAX_NEW_TOKENS, "rows": rows}


def entity_answers(name: str, threads: int = 2) -> dict:
    """Greedy answers of zoo model ``name`` to notebook 08's real and made-up entity questions, in its chat
    template, at most :data:`ENTITY_TOKENS` tokens, each with its mean token log-probability under the model."""
    from lmguide import engines, probes

    engine = engines.open_default(name, threads)
    answers = {}
    for q in probes.entity_questions():
        ids = engine.prompt_ids(q["question"], chat=True)
        tokens = engine.answer_ids(ids, ENTITY_TOKENS)
        logprobs = engine.continuation_logprobs(ids, tokens) if tokens else []
        answers[q["id"]] = {"answer": engine.decode(tokens).strip(), "ids": tokens,
                            "mean log-prob": sum(logprobs) / len(logprobs) if logprobs else None}
    return {"engine": engine.kind, "answers": answers}


def router_answers(name: str, threads: int = 2) -> dict:
    """One side of notebook 07's router (``"reader"`` or a chat model) answering all its questions, timed."""
    from lmguide import router

    def progress(i, n, qid, a):
        if i % 12 == 0 or i == n:
            print(f"  {name} {i}/{n} {qid}: {a['seconds']:.1f} s", flush=True)

    return router.side_answers(name, threads, progress=progress)


def chat_answers(name: str, questions=QUESTIONS, max_new_tokens: int = CHAT_TOKENS, threads: int = 2) -> dict:
    """Greedy answers of zoo model ``name`` to ``questions`` in its own chat template, with seconds each."""
    from lmguide import engines

    engine = engines.open_default(name, threads)
    answers = []
    for q in questions:
        start = time.perf_counter()
        text = "".join(engine.stream_text(q, max_new_tokens, chat=True))
        answers.append({"question": q, "answer": text.strip(), "seconds": time.perf_counter() - start})
    return {"engine": engine.kind, "answers": answers}


def _this():
    """This module by its import name: a worker process cannot find functions of ``__main__``."""
    import importlib

    return importlib.import_module("lmguide.recipes.ladder")


def card(name: str, repeats: int = 3, parts=("decode", "score", "part", "serve"), earlier: dict | None = None) -> dict:
    """The measurements of one ladder model (each part in a fresh process), with what they ran on; parts not
    asked for are kept from ``earlier`` (the card's training.json), so one part can be re-measured alone."""
    e = zoo.entry(name)
    info = dict(earlier or {})
    info.update({"model": name, "file sha256": next(iter(e.files.values())), "machine": hardware.machine(),
                 "measured": time.strftime("%Y-%m-%d"), "command": f"python -m lmguide.recipes.ladder --model {name}"})
    if "decode" in parts:
        bandwidth = hardware.memory_bandwidth()
        decode = workers.run_or_raise(f"timing {name}", _this().decode_row, name, repeats=repeats)
        bound = hardware.decode_bound(decode["weights read per token MiB"] * MIB, bandwidth["GB/s"])
        info["memory bandwidth GB/s"] = bandwidth["GB/s"]
        info["decode"] = {**decode, "bound tokens/s": bound, "% of bound": 100 * decode["tokens/s"] / bound}
    if "score" in parts:
        info["test split"] = workers.run_or_raise(f"scoring {name}", _this().score_row, name)
    if "part" in parts:
        info["test split part"] = workers.run_or_raise(f"scoring part of the split with {name}", _this().part_row, name)
    if "serve" in parts:
        info["serving"] = workers.run_or_raise(f"serving with {name}", _this().serve_row, name)
    return info


def card_section(info: dict) -> str:
    """The card's "Measured" section, from what :func:`card` stored."""
    d, s, m = info["decode"], info["test split"], info["machine"]
    return (f"## Measured (`{info['command']}`, {info['measured']})\n\n"
            f"On {m['cpu']}, {m['cores']} cores, 2 threads, llama.cpp (llama-cpp-python), "
            f"memory bandwidth {info['memory bandwidth GB/s']:.1f} GB/s (a 256 MiB copy):\n\n"
            "| what | value |\n|---|---|\n"
            f"| bits per byte, whole Austen test split ({s['bytes']:,} bytes, {s['tokens']:,} tokens) | "
            f"{s['bits per byte']:.4f} |\n"
            + (f"| bits per byte, {info['test split part']['part']} (a quick table's part) | "
               f"{info['test split part']['bits per byte']:.4f} |\n" if "test split part" in info else "") +
            f"| window / stride (tokens), first token | {s['window']} / {s['stride']}, `{s['first token']}` |\n"
            f"| scoring time | {s['seconds']:.0f} s |\n"
            f"| decode | {d['tokens/s']:.1f} tokens/s ({d['% of bound']:.0f}% of the bandwidth bound "
            f"{d['bound tokens/s']:.1f}) |\n"
            f"| time to first token (short prompt) | {d['first token ms']:.0f} ms |\n"
            f"| prompt processing (512 tokens) | {d['prompt tokens/s']:.0f} tokens/s |\n"
            f"| load | {d['load s']:.1f} s |\n"
            f"| peak RSS decoding / scoring (the process, Python and torch included) | {d['peak RSS MiB']:,.0f} / "
            f"{s['peak RSS MiB while scoring']:,.0f} MiB |\n"
            + serving_lines(info.get("serving")) + "\n"
            "Qwen's tokenizer has no BOS token, so the text starts after its end-of-text token (the rule's "
            "fallback); SmolLM2 and AustenGPT start after their own BOS/EOS token. Bits per byte divides by the "
            "text's bytes, so the different vocabularies do not matter.\n")


def serving_lines(serving: dict | None) -> str:
    """The serving rows of the card's table (none before ``--part serve`` ran)."""
    if not serving:
        return ""
    longest, summary = serving["by prompt length"][-1], serving["summary"]
    return (f"| time to first token / per-token time at a {longest['prompt tokens']:,}-token prompt | "
            f"{longest['first token ms']:,.0f} ms / {longest['per token ms']:.0f} ms |\n"
            f"| {summary['requests']} support requests in turn (passage + question, at most "
            f"{serving['new tokens at most']} tokens each): p50 / p95 latency | {summary['p50 s']:.2f} s / "
            f"{summary['p95 s']:.2f} s |\n")


def write_card(folder: Path, info: dict) -> None:
    (folder / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    readme = folder / "README.md"
    text = readme.read_text()
    text = text.split("\n## Measured (")[0].rstrip() + "\n\n" + card_section(info)
    readme.write_text(text)


def store_answers(file: Path, flag: str, doing: str, function: str, models, extra: dict, command: str | None = None) -> dict:
    """Run ``function`` of this module for each of ``models``, each in a fresh process, and store what they
    answered in ``file`` with the machine, the date and the command that made it."""
    stored = {"machine": hardware.machine(), "measured": time.strftime("%Y-%m-%d"),
              "command": command or f"python -m lmguide.recipes.ladder {flag}", **extra,
              "models": {n: workers.run_or_raise(f"{doing} {n}", getattr(_this(), function), n) for n in models}}
    write_json_atomic(file, stored, indent=1)
    return stored


def extras() -> dict:
    """The stored answers notebooks 07-09 read: flag -> (file, what the job is called, function, models, extra)."""
    from lmguide import code_tasks, router, sandbox

    return {
        "--code": (code_tasks.ANSWERS_FILE, "code tasks with", "code_answers", CODE_MODELS, {"sandbox": sandbox.enforced()}),
        "--entities": (ENTITY_FILE, "entity questions to", "entity_answers", LADDER,
                       {"max new tokens": ENTITY_TOKENS, "decoding": "greedy"}),
        "--router": (router.ANSWERS_FILE, "router questions with", "router_answers", ("reader",) + router.GENERATORS,
                     {"decoding": "greedy", "example": router.EXAMPLE, "system prompt": router.SYSTEM_PROMPT}),
    }


def store_extra(flag: str, command: str | None = None) -> dict:
    """Make and store one of :func:`extras` (``"--code"``, ``"--entities"`` or ``"--router"``); print its summary."""
    from lmguide import code_tasks, router

    file, doing, function, models, extra = extras()[flag]
    stored = store_answers(file, flag, doing, function, models, extra, command)
    if flag == "--code":
        for n, m in stored["models"].items():
            print(f"{n}: pass@1 {code_tasks.pass_at_1(m['rows']):.2f}", flush=True)
    elif flag == "--entities":
        print({n: sum(a["mean log-prob"] is not None for a in m["answers"].values()) for n, m in stored["models"].items()})
    else:
        print(router.compare(router.answers_frame(stored)).round(3).to_string(), flush=True)
    return stored


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmguide.recipes.ladder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=LADDER, action="append", help="measure this ladder model into its card")
    parser.add_argument("--chat", action="store_true", help="store the first chat of notebook 00")
    parser.add_argument("--code", action="store_true", help="store the three chat models' answers to the code tasks")
    parser.add_argument("--entities", action="store_true",
                        help="store the ladder's answers to notebook 08's real and made-up entity questions")
    parser.add_argument("--router", action="store_true",
                        help="store the reader's and the three chat models' answers to notebook 07's router questions")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--part", choices=("decode", "score", "part", "serve"), action="append",
                        help="re-measure only this part, keeping the rest of the card (default: both)")
    args = parser.parse_args(argv)
    for name in args.model or []:
        file = zoo.WEIGHTS / name / "training.json"
        earlier = json.loads(file.read_text()) if file.is_file() else None
        info = card(name, args.repeats, tuple(args.part or ("decode", "score", "part", "serve")), earlier)
        write_card(zoo.WEIGHTS / name, info)
        print(card_section(info), flush=True)
    if args.chat:
        stored = store_answers(CHAT_FILE, "--chat", "asking", "chat_answers", CHAT_MODELS, {"max new tokens": CHAT_TOKENS})
        print(json.dumps(stored["models"], indent=1))
    for flag in extras():
        if getattr(args, flag[2:]):
            store_extra(flag)
    if not (args.model or args.chat or args.code or args.entities or args.router):
        parser.error("give --model NAME (repeatable), --chat, --code, --entities and/or --router")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
