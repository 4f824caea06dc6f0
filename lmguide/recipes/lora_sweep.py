"""Full fine-tuning vs LoRA across learning rates and seeds: how much each forgets for what it learns.

    python -m lmguide.recipes.lora_sweep            # ~10 min on 2 CPU threads -> lmguide/assets/finetune/lora_sweep.json

Notebook 04 trains both methods once, 16 steps at one learning rate: that compares a setting, not
the methods. Here each method (full, and LoRA r=8 on ``c_attn`` and ``c_proj`` as in the notebook)
trains ``austen-gpt-small`` on the support texts at each of its learning rates in ``RATES`` (LoRA
is trained with higher rates, as it usually is), with every seed in ``SEEDS``, scored on held-out text at each step in ``CHECKPOINTS``: every (run, step) is
one point (support bits per byte learnt, Austen bits per byte forgotten). The notebook compares
the methods at equal learning along each seed's frontier
(:func:`lmguide.finetune.forgetting_at`). Batches, data order and LoRA's initialisation follow
the seed; everything else is the notebook's setup (Trainer, AdamW, linear decay, batch 8 x 128).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

PARENT = "austen-gpt-small"
TARGETS = ["c_attn", "c_proj"]
RATES = {"full": (2.5e-4, 5e-4, 2e-3), "LoRA": (2e-3, 4e-3, 8e-3)}   # 2e-3: notebook 04's rate, for both
SEEDS = (0, 1, 2)
CHECKPOINTS = (8, 16, 32, 64)
AUSTEN_CHARS = 40_000    # 5x the notebook's probe: forgetting is the smaller number, so it needs the longer text
OUT = Path(__file__).resolve().parents[1] / "assets" / "finetune" / "lora_sweep.json"


def held_out() -> dict:
    from lmguide.data import austen, support

    return {"support": support("test"), "austen": austen("test")[:AUSTEN_CHARS]}


def scores(model, tokenizer, texts: dict) -> dict:
    from lmguide.eval import bits_per_byte

    was_training = model.training
    model.eval()
    out = {k: round(bits_per_byte(model, tokenizer, text, window=512), 5) for k, text in texts.items()}
    model.train(was_training)
    return out


def one_run(small, tokenizer, method: str, lr: float, seed: int, texts: dict, batch: int, block: int,
            checkpoints=CHECKPOINTS) -> list[dict]:
    """Train one copy of ``small``; the held-out scores at each checkpoint step."""
    import torch
    from transformers import TrainerCallback

    from lmguide import finetune

    class ScoreAt(TrainerCallback):
        def __init__(self):
            self.rows = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in checkpoints:
                self.rows.append({"step": state.global_step, **scores(model, tokenizer, texts)})

    torch.manual_seed(seed)
    model = copy.deepcopy(small).train()
    if method == "LoRA":
        model = finetune.add_peft_lora(model, TARGETS, r=8, alpha=16, expect=3 * small.config.n_layer)   # c_proj: attention and MLP
    train = finetune.CausalLMDataset(tokenizer, finetune.support_texts("train"), block)
    with tempfile.TemporaryDirectory() as tmp:
        args = finetune.training_arguments(tmp, max_steps=max(checkpoints), per_device_train_batch_size=batch,
                                           learning_rate=lr, seed=seed, data_seed=seed, logging_steps=10**6)
        trainer = finetune.make_trainer(model, args, train, None, tokenizer)
        callback = ScoreAt()
        trainer.add_callback(callback)
        finetune.train(trainer)
    return callback.rows


def sweep(rates=RATES, seeds=SEEDS, checkpoints=CHECKPOINTS, batch: int = 8, block: int = 128,
          log=print, done=(), save=None) -> dict:
    """Every run of the sweep; ``done`` (earlier points) are kept and their runs skipped; ``save(result)``
    is called after each run, so an interrupted sweep continues where it stopped."""
    import torch
    import transformers

    import lmguide

    lmguide.setup(seed=0, threads=2)
    small, tokenizer = lmguide.load(PARENT)
    texts = held_out()
    before = scores(small, tokenizer, texts)
    points, t0 = list(done), time.perf_counter()
    finished = {(p["method"], p["learning rate"], p["seed"]) for p in points}

    def result(complete: bool) -> dict:
        return {"command": "python -m lmguide.recipes.lora_sweep", "parent": PARENT, "complete": complete,
                "LoRA": {"targets": TARGETS, "r": 8, "alpha": 16}, "rates": {k: list(v) for k, v in rates.items()},
                "seeds": list(seeds), "checkpoints": list(checkpoints), "batch": batch, "block": block,
                "held-out": {"support": "lmguide.data.support('test') (whole split)",
                             "austen": f"lmguide.data.austen('test')[:{AUSTEN_CHARS}]",
                             "bits per byte": "lmguide.eval.bits_per_byte(model, tokenizer, text, window=512)"},
                "before": before, "points": points, "minutes this session": round((time.perf_counter() - t0) / 60, 1),
                "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                            "torch": torch.__version__, "transformers": transformers.__version__}}

    for method in ("full", "LoRA"):
        for lr in rates[method]:
            for seed in seeds:
                if (method, lr, seed) in finished:
                    continue
                rows = one_run(small, tokenizer, method, lr, seed, texts, batch, block, checkpoints)
                for row in rows:
                    points.append({"method": method, "learning rate": lr, "seed": seed, **row,
                                   "learnt": round(before["support"] - row["support"], 5),
                                   "forgot": round(row["austen"] - before["austen"], 5)})
                last = points[-1]
                log(f"{method:4s} lr {lr:g} seed {seed}: learnt {last['learnt']:+.3f}, forgot {last['forgot']:+.3f} "
                    f"bits/byte at step {last['step']}  ({(time.perf_counter() - t0) / 60:.1f} min)")
                if save:
                    save(result(False))
    return result(True)


def load(file: Path | None = None) -> dict:
    """The stored sweep (or ``file``)."""
    return json.loads(Path(file or OUT).read_text())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rates", default=None, help="comma-separated learning rates, the same for both methods "
                                                       "(default: each method's in RATES)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--checkpoints", default=",".join(map(str, CHECKPOINTS)), help="steps at which to score")
    parser.add_argument("--restart", action="store_true", help="ignore the runs an earlier, interrupted sweep stored")
    args = parser.parse_args(argv)
    rates = RATES if args.rates is None else {m: tuple(float(x) for x in args.rates.split(",")) for m in RATES}
    command = " ".join(["python -m lmguide.recipes.lora_sweep", *(sys.argv[1:] if argv is None else argv)]).strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = []
    if args.out.exists() and not args.restart:
        done = [p for p in load(args.out)["points"] if p["learning rate"] in rates[p["method"]]]

    def save(result):
        args.out.write_text(json.dumps({**result, "command": command}, indent=1) + "\n")

    result = sweep(rates, [int(x) for x in args.seeds.split(",")], tuple(int(x) for x in args.checkpoints.split(",")),
                   done=done, save=save)
    save(result)
    print(f"wrote {len(result['points'])} points to {args.out}")
    return result


if __name__ == "__main__":
    main()
