"""``lmguide bench``: measure every zoo model the same way, print the comparison table and store it
for notebook 07 (with ``--extras``: thread scaling, decode engines and training steps; ``lmguide.cli`` then has
the ladder recipe re-make the router, code and entity answers the package ships).
"""
from __future__ import annotations

import time

from lmguide import hardware
from lmguide.measure import rows
from lmguide.measure.table import results_file, save_results, table


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="lmguide bench", description=(
        "Measure every zoo model the same way (each in its own process) and print the comparison table; "
        "the results are also stored in the user cache, where notebook 07 reads them."))
    p.add_argument("--models", nargs="+", metavar="NAME", help="zoo models to measure (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after one warm-up (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens generated per decode run (default 32)")
    p.add_argument("--quick", action="store_true", help="score quality on a small part of each task (fast, not cached as full)")
    p.add_argument("--extras", action="store_true",
                   help=("also thread scaling, SmolLM2's decode with bf16, int8, onnxruntime and batching, two training steps "
                         "(8 to 11 minutes on 2 cores), and the three chat models' answers to the router, code and entity "
                         "questions, stored in the package (about 45 minutes more; up to 2 GB of RAM)"))
    p.add_argument("--csv", metavar="OUT", help="write the table as CSV")
    p.add_argument("--json", metavar="OUT", help="write everything measured (machine, bandwidth, table) as JSON")
    p.add_argument("--no-save", action="store_true", help="do not store the results in the user cache")
    return p


def run(names=None, repeats: int = 3, threads: int = 2, new_tokens: int = 32, quick: bool = False,
        extras: bool = False, progress: bool = True) -> dict:
    """Everything ``lmguide bench`` measures, as one dict (machine, bandwidth, table and, with extras, more)."""
    import torch

    torch.set_num_threads(threads)
    results = {"machine": hardware.machine(), "bandwidth": hardware.memory_bandwidth(), "repeats": repeats, "quick": quick,
               "measured at": time.strftime("%Y-%m-%d %H:%M:%S")}
    frame = table(names, repeats=repeats, threads=threads, new_tokens=new_tokens, quick=quick, progress=progress,
                  bandwidth=results["bandwidth"])
    results["table"] = frame
    if extras:
        from lmguide import workers
        from lmguide.measure import decode

        results["decode variants"] = decode.decode_variants(repeats=repeats, threads=threads, progress=progress)
        results["thread scaling"] = workers.run_or_raise("thread scaling", hardware.scaling_table, repeats=repeats)
        results["train step"] = [rows.train_step(n, repeats=repeats, threads=threads)
                                 for n in ("austen-gpt-small", "smollm2-135m")]
    return results


def main(argv=None) -> int:
    """``lmguide bench ...``: returns the exit status (2 for bad arguments, with one sentence why)."""
    import sys

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line error (or the help)
        return int(exc.code or 0)
    from lmguide import zoo

    try:
        if args.repeats < 1:
            raise ValueError(f"--repeats must be >= 1 (got {args.repeats}); time at least one run")
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1 (got {args.threads})")
        if args.new_tokens < 2:
            raise ValueError(f"--new-tokens must be >= 2 (got {args.new_tokens})")
        unknown = [n for n in args.models or [] if n not in zoo.ENTRIES]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(zoo.names())}")
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"lmguide bench: error: {exc}", file=sys.stderr)
        return 2
    results = run(args.models, args.repeats, args.threads, args.new_tokens, args.quick, args.extras)
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {args.threads} torch threads, torch {m['torch']}, "
          f"transformers {m['transformers']}")
    print(f"memory bandwidth (copy of {results['bandwidth']['MiB copied']} MiB): {results['bandwidth']['GB/s']:.1f} GB/s "
          f"(spread {results['bandwidth']['spread']:.0%})")
    print(results["table"].round(3).to_string())
    print(f"\nhardware class rule: {hardware.hardware_rule()}")
    if args.csv:
        results["table"].to_csv(args.csv)
    if args.json:
        save_results(results, args.json)
    if not args.no_save:
        save_results(results)
        print(f"stored in {results_file()} (notebook 07 reads it)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
