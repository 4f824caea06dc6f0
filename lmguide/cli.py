"""The ``lmguide`` command: prepare models, list them, check the setup, train.

    lmguide models prepare      # one-time work: convert, verify, measure held-out scores (idempotent)
    lmguide models list         # the zoo table
    lmguide doctor              # versions, threads, network, cache; what to fix
    lmguide train --preset large --out DIR      # = python -m lmguide.recipes.austen_gpt
    lmguide bench --models ... --repeats N --threads N --csv OUT --json OUT
    lmguide generate MODEL PROMPT [--chat] [--max-new-tokens N] [--temperature T --seed S] [--draft DRAFT --k K]
    lmguide course init DIR     # nbgrader course folder; `lmguide course html OUT`: HTML pages
"""
from __future__ import annotations

import argparse
import os
import platform
import sys


def _prepare(args) -> int:
    from lmguide import makers, zoo

    failed = 0
    for name in zoo.names():
        left_out = makers.left_out(zoo.ENTRIES[name])
        if left_out:  # the optional size ladder, skipped on purpose: not a failure
            print(f"{name}: {left_out}")
            continue
        try:
            folder = zoo.prepare(name, force=args.force and zoo.ENTRIES[name].origin == "made",
                                 log=lambda message: print(message, flush=True))
            print(f"{name}: ok ({folder})")
        except zoo.ModelNotAvailable as exc:
            failed += 1
            print(f"{name}: NOT READY: {exc}")
    if args.measure and not failed:
        _measure_heldout()
    return 1 if failed else 0


def _measure_heldout() -> None:
    """Fill the cache of the base models' whole-test-split bits per byte that the notebooks read (once; minutes for SmolLM2)."""
    import torch

    from lmguide import eval as lm_eval
    from lmguide import zoo

    torch.set_num_threads(min(2, os.cpu_count() or 2))
    for name, e in zoo.ENTRIES.items():
        # variants are measured by the notebooks that make them; the ladder's GGUF files run in llama.cpp, not torch
        if e.kind != "causal-lm" or e.parent or e.chunks:
            continue
        model, tokenizer = zoo.load(name)
        r = lm_eval.split_bits_per_byte(model, tokenizer, "test", key=name)
        how = "cached" if r["cached"] else f"measured in {r['seconds']:.0f} s"
        print(f"{name}: {r['bits_per_byte']:.4f} bits per byte on the whole test split ({how})", flush=True)
        del model


def _list(args) -> int:
    from lmguide import makers, zoo

    table = zoo.table()
    if args.csv:
        print(table.to_csv(), end="")
    else:
        print(table.to_string())
        state, advice = makers.ladder_state()
        print(f"\nsize ladder (requirements-ladder.txt): {state}" + (f"; {advice}" if advice else ""))
    return 0


def doctor_report() -> list[tuple[str, str, str]]:
    """``(check, state, advice)`` rows; advice is empty when nothing needs doing."""
    import torch
    import transformers

    from lmguide import __version__, data, makers, zoo

    rows = [
        ("python", platform.python_version(), "" if sys.version_info >= (3, 10) else "use Python 3.10 or newer"),
        ("lmguide", __version__, ""),
        ("torch", torch.__version__, "" if torch.__version__.startswith("2.13.0") else "the course is tested with torch 2.13.0 (CPU build)"),
        ("transformers", transformers.__version__, "" if transformers.__version__.startswith("5.") else "install transformers 5.x"),
        ("cpu cores / torch threads", f"{os.cpu_count()} / {torch.get_num_threads()}", ""),
    ]
    online = zoo.hub_reachable()
    rows.append(("Hugging Face Hub", "reachable" if online else "offline",
                 "" if online else "fine: every notebook runs offline; Hub models (gpt2, ...) need a network"))
    try:
        n = len(data.chapters("all"))
        rows.append(("Austen corpus", f"{n} chapters, sha256 ok", ""))
    except Exception as exc:  # damaged install
        rows.append(("Austen corpus", "damaged", str(exc)))
    rows.append(("model cache", str(zoo.cache_dir()), ""))
    rows.append(("size ladder", *makers.ladder_state()))
    for name in zoo.names():
        left_out = makers.left_out(zoo.ENTRIES[name])
        if left_out:  # the optional ladder, left out on purpose: nothing to fix
            rows.append((f"model {name}", left_out, ""))
            continue
        try:
            zoo.path(name, prepare=False)
            rows.append((f"model {name}", "ready", ""))
        except zoo.ModelNotAvailable as exc:
            rows.append((f"model {name}", "not ready", str(exc)))
    return rows


def _doctor(args) -> int:
    rows = doctor_report()
    width = max(len(r[0]) for r in rows)
    for check, state, advice in rows:
        print(f"{check.ljust(width)}  {state}" + (f"\n{' ' * width}  -> {advice}" if advice else ""))
    problems = [r for r in rows if r[2] and r[0].startswith(("model", "Austen"))]
    print("\nAll good." if not problems else f"\n{len(problems)} thing(s) to fix: see the arrows above.")
    return 1 if problems else 0


def _train(args) -> int:
    from lmguide.recipes import austen_gpt

    austen_gpt.main(args.rest)
    return 0


def _generate(args) -> int:
    """``lmguide generate MODEL PROMPT``: the model's answer streamed to stdout, token by token; a bad name
    or value gets one sentence on stderr and exit status 2."""
    from lmguide import zoo

    try:
        return _stream_answer(args)
    except (ValueError, zoo.ModelNotAvailable) as exc:
        print(f"lmguide generate: error: {exc}", file=sys.stderr)
        return 2


def _check_causal(name: str) -> None:
    from lmguide import zoo

    if name not in zoo.ENTRIES or zoo.ENTRIES[name].kind != "causal-lm":
        causal = [n for n, e in zoo.ENTRIES.items() if e.kind == "causal-lm"]
        raise ValueError(f"{name!r} is not a causal language model in the zoo; choose from {', '.join(causal)}")


def _stream_answer(args) -> int:
    from lmguide import engines

    _check_causal(args.model)
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1 (got {args.max_new_tokens})")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (got {args.temperature}); 0 is greedy decoding")
    if args.seed is not None and args.temperature == 0:
        raise ValueError("--seed only matters with sampling; give --temperature above 0 too (greedy needs no seed)")
    if args.draft is not None:
        return _speculative_answer(args)
    engine = engines.open_default(args.model)
    sampling = {"temperature": args.temperature, "seed": args.seed if args.seed is not None else 0}
    for piece in engine.stream_text(args.prompt, args.max_new_tokens, chat=args.chat, **sampling):
        print(piece, end="", flush=True)
    print()
    return 0


def _speculative_answer(args) -> int:
    """``--draft``: the target's greedy answer (what the plain command prints), drafted by a smaller model;
    acceptance, speed and memory on stderr."""
    from lmguide import engines, speculative
    from lmguide._util import peak_rss_mib

    _check_causal(args.draft)
    if args.temperature != 0:
        raise ValueError(f"--draft decodes greedily (got --temperature {args.temperature}); leave out --temperature")
    if args.k < 1:
        raise ValueError(f"--k must be >= 1 (got {args.k}); it is how many tokens the draft proposes a round")
    target, draft = engines.open_default(args.model), engines.open_default(args.draft)
    target_ids = target.prompt_ids(args.prompt, args.chat)
    by_id = speculative.same_tokenizer(target, draft)
    if by_id:
        out = speculative.generate(target, draft, target_ids, args.max_new_tokens, k=args.k)
    else:
        out = speculative.generate_by_text(target, draft, target_ids, draft.prompt_ids(args.prompt, args.chat),
                                           args.max_new_tokens, k=args.k)
    tokens = out.tokens[:-1] if out.tokens and out.tokens[-1] == target.eos_token_id else out.tokens
    print(target.decode(tokens), flush=True)
    print(f"draft {args.draft} ({'by token id' if by_id else 'by text: different tokenizers'}, k={args.k}): "
          f"{out.accepted}/{out.proposed} drafted tokens accepted ({out.acceptance:.0%}); {len(out.tokens)} tokens in "
          f"{out.rounds} target calls, {len(out.tokens) / out.seconds:.1f} tokens/s; peak RSS {peak_rss_mib():,.0f} MiB "
          "(both models)", file=sys.stderr)
    return 0


def _bench_argv(argv):
    """``lmguide bench ...``'s own arguments (argparse's REMAINDER would stop at the first option)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return argv[1:] if argv[:1] == ["bench"] else None


def _course(args) -> int:
    from lmguide import course

    return course.run(args)


def main(argv=None) -> int:
    bench_argv = _bench_argv(argv)
    if bench_argv is not None:
        from lmguide.measure import command

        status = command.main(bench_argv)
        if status == 0 and "--extras" in bench_argv and not {"-h", "--help"} & set(bench_argv):
            from lmguide.recipes import ladder

            for flag in ladder.extras():  # the answers the package ships for notebooks 07 and 08, this machine's
                ladder.store_extra(flag, "lmguide bench --extras")
        return status
    parser = argparse.ArgumentParser(prog="lmguide", description="lmguide: LLMs vs SLMs, offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="prepare or list the model zoo")
    msub = models.add_subparsers(dest="action", required=True)
    prep = msub.add_parser("prepare", help="one-time conversion and verification of every model")
    prep.add_argument("--force", action="store_true", help="redo conversions even if cached")
    prep.add_argument("--no-measure", dest="measure", action="store_false",
                      default=os.environ.get("LMGUIDE_NO_MEASURE", "") in ("", "0"),
                      help="skip measuring the held-out bits per byte the notebooks read (cached after the first "
                           "run; a notebook that needs one measures it then); LMGUIDE_NO_MEASURE=1 does the same")
    prep.set_defaults(func=_prepare)
    lst = msub.add_parser("list", help="print the zoo table")
    lst.add_argument("--csv", action="store_true", help="as CSV (every column)")
    lst.set_defaults(func=_list)
    sub.add_parser("doctor", help="check versions, threads, network and models").set_defaults(func=_doctor)
    tr = sub.add_parser("train", help="train an AustenGPT model (see python -m lmguide.recipes.austen_gpt -h)")
    tr.add_argument("rest", nargs=argparse.REMAINDER)
    tr.set_defaults(func=_train)
    ge = sub.add_parser("generate", help="a zoo language model continues (or, with --chat, answers) PROMPT",
                        description="Greedy by default (deterministic); tokens are printed as they come.")
    ge.add_argument("model", help="a causal language model of the zoo (lmguide models list)")
    ge.add_argument("prompt")
    ge.add_argument("--chat", action="store_true", help="send PROMPT as a user turn in the model's own chat template")
    ge.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="at most N new tokens (default 64)")
    ge.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 (default) is greedy; above 0 samples")
    ge.add_argument("--seed", type=int, metavar="S", help="seed for sampling (with --temperature above 0)")
    ge.add_argument("--draft", metavar="DRAFT", help="speculative decoding: a smaller zoo model drafts, MODEL checks "
                    "(greedy; the same text; acceptance and speed on stderr)")
    ge.add_argument("--k", type=int, default=4, metavar="K", help="tokens the draft proposes a round (default 4)")
    ge.set_defaults(func=_generate)
    # listed for --help only: main() hands "lmguide bench ..." to lmguide.measure.command before parsing
    sub.add_parser("bench", help="measure every zoo model: the comparison table (see lmguide bench -h)", add_help=False)
    co = sub.add_parser("course", help="nbgrader course folder (init DIR) or HTML pages (html OUT)")
    co.add_argument("action", choices=["init", "html"])
    co.add_argument("dir", help="the course folder (init) or the output folder (html)")
    co.add_argument("--notebooks", nargs="+", help="notebook files (default: every notebook in notebooks/)")
    co.add_argument("--force", action="store_true", help="init: rebuild an existing course folder")
    co.set_defaults(func=_course)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
