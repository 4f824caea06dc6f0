"""Training throughput of AustenGPT variants on this CPU (a benchmark: prints figures, asserts nothing).

    python scripts/bench_training.py [--steps 6] [--threads 2]

It times a few optimizer steps of the `large` preset with the choices the model card
discusses: fp32 vs bfloat16 autocast, and dropout on attention weights vs only on the
residual branches. Figures are tokens per second, median over the timed steps.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from lmguide.recipes.austen_gpt import PRESETS, build_model


def tokens_per_second(cfg, bf16: bool, attn_dropout: float, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(cfg, cfg.vocab_size)
    for block in model.transformer.h:  # build_model keeps attention dropout at 0; override to measure it
        block.attn.attn_dropout.p = attn_dropout
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.n_ctx + 1))
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return cfg.batch_size * cfg.n_ctx / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PRESETS["large"]
    variants = [
        ("fp32, dropout on residuals only", False, 0.0),
        ("bf16 autocast, dropout on residuals only (chosen)", True, 0.0),
        ("bf16 autocast, dropout also on attention weights", True, cfg.dropout),
    ]
    base = None
    print(f"large preset: {cfg.n_layer} layers x {cfg.n_embd}, ctx {cfg.n_ctx}, batch {cfg.batch_size}, "
          f"{torch.get_num_threads()} threads")
    for label, bf16, attn in variants:
        tps = tokens_per_second(cfg, bf16, attn, args.steps)
        base = base or tps
        print(f"{label:52s} {tps:8.0f} tokens/s  ({tps / base:.2f}x fp32)")


if __name__ == "__main__":
    main()
