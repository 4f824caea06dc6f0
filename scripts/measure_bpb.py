"""Bits per byte of every causal LM in the zoo on a whole held-out Austen split (a benchmark: prints figures).

    python scripts/measure_bpb.py [--split test] [--json out.json] [--threads 2]

The rule is ``lmguide.eval``'s (the one the model cards, training and notebooks use); figures
are cached in the user cache by model fingerprint, so a second run is instant. The first run
of the whole test split takes a few minutes on 2 cores, most of it SmolLM2.
"""
from __future__ import annotations

import argparse
import json

import torch

import lmguide as lg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    lg.setup(threads=args.threads)
    print(f"{args.split} split, torch threads {torch.get_num_threads()}")
    results = {}
    for name, entry in lg.zoo.ENTRIES.items():
        if entry.kind != "causal-lm":
            continue
        model, tok = lg.load(name)
        r = lg.eval.split_bits_per_byte(model, tok, args.split, key=name)
        results[name] = {**r, "parameters": entry.parameters}
        print(f"{name:24s} {r['bits_per_byte']:.4f} bits/byte  ({entry.parameters / 1e6:.1f} M params, window "
              f"{r['window']}, stride {r['stride']}, {r['bytes']:,d} bytes, "
              f"{'cached' if r['cached'] else str(r['seconds']) + ' s'})", flush=True)
        del model
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"split": args.split, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
