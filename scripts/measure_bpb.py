"""Bits per byte of every causal LM in the zoo on a held-out Austen split (a benchmark: prints figures).

    python scripts/measure_bpb.py [--split test] [--chars N] [--json out.json]

The full test split takes a few minutes on 2 cores (most of it SmolLM2). Figures
in the AustenGPT model cards and closing notes come from this script.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import lmguide as lg
from lmguide.eval import bits_per_byte


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--chars", type=int, default=0, help="only the first N characters (0 = all)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    lg.setup(threads=args.threads)
    text = lg.data.austen(args.split)
    text = text[:args.chars] if args.chars else text
    print(f"{args.split} split: {len(text.encode()):,d} bytes, torch threads {torch.get_num_threads()}")
    results = {}
    for name, entry in lg.zoo.ENTRIES.items():
        if entry.kind != "causal-lm":
            continue
        model, tok = lg.load(name)
        window = min(lg.eval.context_length(model), 1024)
        t0 = time.perf_counter()
        bpb = bits_per_byte(model, tok, text, window=window, stride=window // 2)
        results[name] = {"bits_per_byte": round(bpb, 4), "parameters": entry.parameters,
                         "window": window, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name:18s} {bpb:.4f} bits/byte  ({entry.parameters / 1e6:.1f} M params, "
              f"window {window}, {results[name]['seconds']} s)", flush=True)
        del model
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"split": args.split, "bytes": len(text.encode()), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
