"""Make the int8 variants of the zoo's models and measure every precision for their model cards.

    python -m lmguide.recipes.quantized --out lmguide/weights/austen-gpt-large-int8
    python -m lmguide.recipes.quantized --variant smollm2-135m-int8 --out lmguide/weights/smollm2-135m-int8 --measure

- ``austen-gpt-large-int8`` ships its weights (int8 codes + scales in safetensors, ~7 MiB).
- ``minilm-qa-int8`` and ``smollm2-135m-int8`` are too big for git (~33 and ~129 MiB): their
  folder holds only ``zoo.json`` with ``make="lmguide.recipes.quantized:make_int8"``, the card and
  ``training.json``; ``lmguide models prepare`` makes the weights in the user cache from the
  parent model (deterministic: the same parent gives the same bytes).

``--measure`` loads the parent once per precision (fp32, bf16, fp16, torch's dynamic int8, our
int8 and int4), measures size (MiB), latency and quality on the whole held-out split (caching the
score in the user cache, so notebook 05 reads it back), and writes the table into
``training.json`` and ``README.md``. For SmolLM2 that takes minutes per precision on 2 threads.
The lesson code (quantizers, ``QuantLinear``) is ``lmguide.quantize``; the measurements are
``lmguide.measure.precision``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmguide import quantize, zoo
from lmguide.measure.precision import measure_precision

VARIANTS = {"austen-gpt-large-int8": "austen-gpt-large", "minilm-qa-int8": "minilm-qa",
            "smollm2-135m-int8": "smollm2-135m"}
SHIPPED = ("austen-gpt-large-int8",)  # small enough for git; the others are made at prepare time
MAKE = "lmguide.recipes.quantized:make_int8"
LOADER = "lmguide.quantize:load_quantized"


def make_int8(entry, out_dir: Path) -> None:
    """A zoo make step: quantize ``entry.parent`` to int8 (``QuantLinear`` per row) into ``out_dir``."""
    model, tokenizer = zoo.load(entry.parent)
    quantize.quantize_model(model, bits=8)
    quantize.save_quantized(model, tokenizer, out_dir)


def _card(name: str, parent: str, info: dict) -> str:
    lines = [
        f"# {name}", "",
        f"`{parent}` with every linear layer (and the tied output head, which the input embedding",
        "shares) quantized to int8: one float32 scale per output row, codes in safetensors, the other",
        "tensors (layer norms, biases, position embeddings) in float16. Loaded by",
        f"`{LOADER}` (a skeleton from config.json, then the integer tensors; no pickles).", "",
        f"Made by `{info['command']}`" + (" (weights made at `lmguide models prepare` time: too big for git)."
                                         if name not in SHIPPED else "."), "",
    ]
    rows = info.get("results")
    if rows:
        import pandas as pd

        table = pd.DataFrame(rows).set_index(["model", "precision"])
        lines += [f"Measured {info['measured']} on {info['threads']} torch threads ({info['cpu']}), "
                  f"wall time {info['wall seconds']:.0f} s; sizes in MiB (2**20 bytes); quality is bits per byte on the "
                  "whole Austen test split (lower is better) or SQuAD dev F1, always answering (higher is better):", "",
                  "```", table.round(3).to_string(), "```", ""]
    return "\n".join(lines)


def write_variant(name: str, out: Path, measure: bool = False, precisions=quantize.PRECISIONS,
                  progress: bool = True) -> dict:
    """Make (or register) the variant ``name`` in ``out``; with ``measure`` add the results table to its card."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    parent = VARIANTS[name]
    began = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = f"python -m lmguide.recipes.quantized --variant {name} --out lmguide/weights/{name}"
    shipped = name in SHIPPED
    if shipped:
        model, tokenizer = zoo.load(parent)
        quantize.quantize_model(model, bits=8)
        quantize.save_quantized(model, tokenizer, out)
        del model
    info = {"variant": name, "parent": parent, "command": command, "bits": 8, "scales": "one float32 per output row",
            "threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability()}
    previous = out / "training.json"
    if previous.is_file() and not measure:  # keep the measurements of an earlier --measure run
        old = json.loads(previous.read_text())
        info.update({k: old[k] for k in ("results", "measured", "wall seconds") if k in old})
    if measure:
        rows = []
        for precision in tqdm(precisions, desc=f"measuring {parent}", unit="precision", disable=not progress):
            rows.append(measure_precision(parent, precision))
            tqdm.write(f"{precision}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in rows[-1].items() if k not in ("model", "precision")))
        info.update({"results": rows, "measured": time.strftime("%Y-%m-%d"),
                     "wall seconds": round(time.perf_counter() - began, 1)})
    e = zoo.entry(parent)
    zoo.write_entry(
        out, name=name, kind=e.kind, licence=e.licence,
        description=f"{parent} quantized to int8 (per-row scales) by lmguide.quantize",
        source="lmguide (quantized by this project)" if shipped else f"made from {parent} when prepared",
        parent=parent, recipe=command, loader=LOADER, make="" if shipped else MAKE, parameters=e.parameters)
    previous.write_text(json.dumps(info, indent=2) + "\n")
    (out / "README.md").write_text(_card(name, parent, info))
    return info


def write_card(name: str, out: Path) -> Path:
    """Re-write the variant's ``README.md`` from its ``training.json`` (no model loaded, nothing measured)."""
    out = Path(out)
    info = json.loads((out / "training.json").read_text())
    card = out / "README.md"
    card.write_text(_card(name, VARIANTS[name], info))
    return card


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="austen-gpt-large-int8", choices=sorted(VARIANTS))
    parser.add_argument("--out", type=Path, required=True, help="the variant's folder (lmguide/weights/NAME to ship)")
    parser.add_argument("--measure", action="store_true", help="measure every precision of the parent for the card")
    parser.add_argument("--precisions", nargs="+", default=list(quantize.PRECISIONS), choices=quantize.PRECISIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--card-only", action="store_true", help="only re-write README.md from training.json")
    args = parser.parse_args(argv)
    if args.card_only:
        print(f"wrote {write_card(args.variant, args.out)}")
        return json.loads((args.out / "training.json").read_text())
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    info = write_variant(args.variant, args.out, args.measure, tuple(args.precisions))
    print(f"wrote {args.out} ({args.variant}, parent {info['parent']})")
    return info


if __name__ == "__main__":
    main()
