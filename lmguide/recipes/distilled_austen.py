"""Distil austen-gpt-large into a 3-layer student, with the no-teacher control beside it.

    python -m lmguide.recipes.distilled_austen --out lmguide/weights/austen-gpt-distilled
    torchrun --nproc_per_node 2 -m lmguide.recipes.distilled_austen --out DIR    # same steps, 2 processes

Two runs share everything but the loss: the same student (every other teacher layer copied,
:func:`lmguide.distill.student_from_teacher`), data, batches, steps, learning rate and seed.
``kd`` learns from ``alpha * soft + (1 - alpha) * hard`` (:func:`lmguide.distill.distillation_loss`);
``control`` from the hard labels alone (alpha = 0). Only the ``kd`` student's weights are saved
(fp16 safetensors) and registered in the zoo; both runs' scores go into ``training.json`` and
the model card. ``--runs control`` or ``--runs kd`` runs one of them, adding it to the same report.
A run saves a checkpoint every ``--save-every`` steps; ``--resume`` continues from it.

``--seeds 0,1,2`` repeats the comparison with other seeds and adds a third run, ``control-compute``:
the control given the distillation run's compute (:func:`lmguide.distill.kd_compute_ratio` times
the steps, its schedule stretched to match). Nothing is saved but the scores, into OUT/seeds.json
(seed 0's ``kd`` and ``control`` are copied from OUT/training.json when its config matches)::

    python -m lmguide.recipes.distilled_austen --out lmguide/weights/austen-gpt-distilled --seeds 1 --threads 1
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from lmguide import zoo
from lmguide.recipes import distributed
from lmguide.tokenization import ENDOFTEXT as EOS

NAME = "austen-gpt-distilled"
TEACHER = "austen-gpt-large"


@dataclasses.dataclass
class DistillConfig:
    teacher: str = TEACHER       # zoo name or folder
    n_layer: int = 3             # student blocks (teacher: 8); 3 keeps < 50% of the parameters
    init: str = "copy"           # "copy" (every other teacher layer) or "random"
    steps: int = 1200
    batch_size: int = 8          # sequences per step, summed over all processes
    n_ctx: int = 256
    lr: float = 5e-4             # peak, after linear warm-up, cosine decay to lr / 10
    warmup: int = 50
    weight_decay: float = 0.1
    temperature: float = 2.0
    alpha: float = 0.5           # weight of the teacher's (soft) loss in the kd run
    dropout: float = 0.0         # the student is far smaller than the data: no dropout
    eval_every: int = 300
    save_every: int = 100
    seed: int = 0
    bf16: bool = True            # bfloat16 autocast where the device has it


def load_teacher(name_or_folder: str):
    """The teacher as (model, tokenizer), float32, eval mode, frozen."""
    import lmguide

    model, tokenizer = lmguide.load(name_or_folder)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.float().eval(), tokenizer


def train_ids(tokenizer, text: str) -> torch.Tensor:
    """The training text as token ids, chapters separated by EOS as the teacher was trained."""
    return torch.tensor(tokenizer(text.replace("\n\n", EOS), verbose=False)["input_ids"], dtype=torch.long)


def global_batch(ids: torch.Tensor, generator: torch.Generator, batch_size: int, n_ctx: int) -> torch.Tensor:
    """``batch_size`` random windows of ``n_ctx + 1`` tokens: (B, n_ctx + 1), the same on every rank."""
    starts = torch.randint(0, len(ids) - n_ctx - 1, (batch_size,), generator=generator)
    return torch.stack([ids[s:s + n_ctx + 1] for s in starts.tolist()])


def lr_factor(step: int, cfg: DistillConfig) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def make_student(teacher, cfg: DistillConfig):
    from lmguide.distill import student_from_teacher

    student = student_from_teacher(teacher, cfg.n_layer, init=cfg.init, seed=cfg.seed)
    student.config.resid_pdrop = student.config.embd_pdrop = cfg.dropout
    for module in student.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = cfg.dropout
    return student.float().train()


def bits_per_byte(model, tokenizer, text: str) -> float:
    from lmguide.eval import bits_per_byte as bpb

    return bpb(model, tokenizer, text)


def train_student(cfg: DistillConfig, alpha: float, teacher, tokenizer, ids: torch.Tensor, val_text: str,
                  run: distributed.Run, checkpoint: Path | None = None, resume: bool = False, log=None,
                  step_losses: list | None = None, bar: bool = True):
    """Train one student for ``cfg.steps`` steps; alpha = 0 never runs the teacher.

    Returns (student, history, seconds). ``val_text=None`` skips the evaluations; ``step_losses``
    (a list) receives every step's hard (cross-entropy) loss over the whole global batch, the one
    loss both runs share; ``bar=False`` hides the progress bar.
    """
    from lmguide.distill import distillation_loss

    log = log or (lambda msg: distributed.log(run, msg))
    torch.manual_seed(cfg.seed)
    student = make_student(teacher, cfg)
    decay = [p for p in student.parameters() if p.dim() >= 2]
    no_decay = [p for p in student.parameters() if p.dim() < 2]
    model = distributed.wrap(student, run)
    teacher = teacher.to(run.device)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
    generator = torch.Generator().manual_seed(cfg.seed)
    history, start, t0, seen = [], 0, time.perf_counter(), 0.0
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        student.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history, start, seen = state["history"], state["step"], state["seconds"]
        log(f"resumed from {checkpoint.name} at step {start}")
    bar = distributed.progress(range(start, cfg.steps), run, desc=f"alpha {alpha:g}", initial=start,
                               total=cfg.steps, mininterval=10, disable=not (bar and run.is_main))
    for step in bar:
        batch = distributed.shard(global_batch(ids, generator, cfg.batch_size, cfg.n_ctx), run)
        inputs, labels = batch[:, :-1], batch[:, 1:]  # (b, T) each
        with distributed.autocast(run, cfg.bf16):
            logits = model(inputs).logits  # (b, T, V)
            if alpha > 0:
                with torch.no_grad():
                    teacher_logits = teacher(inputs).logits
        if alpha > 0:
            losses = distillation_loss(logits, teacher_logits, labels, cfg.temperature, alpha)
        else:
            hard = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
            losses = {"loss": hard, "hard": hard}
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        done = step + 1
        if step_losses is not None:
            step_losses.append(distributed.mean(losses["hard"], run))
        if done % 20 == 0 or done == cfg.steps:
            bar.set_postfix(hard=f"{distributed.mean(losses['hard'], run):.3f}", refresh=False)
        if val_text is not None and (done % cfg.eval_every == 0 or done == cfg.steps):
            hard = distributed.mean(losses["hard"], run)
            if run.is_main:
                val = bits_per_byte(student, tokenizer, val_text)
                student.train()
                minutes = (seen + time.perf_counter() - t0) / 60
                history.append({"step": done, "train_hard_loss": round(hard, 4),
                                "val_bits_per_byte": round(val, 4), "minutes": round(minutes, 1)})
                log(f"alpha {alpha:g}  step {done:5d}  hard loss {hard:.3f}  val bpb {val:.4f}  {minutes:.1f} min")
            distributed.barrier(run)
        if checkpoint is not None and run.is_main and done % cfg.save_every == 0 and done < cfg.steps:
            torch.save({"model": student.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "generator": generator.get_state(),
                        "history": history, "step": done,
                        "seconds": seen + time.perf_counter() - t0}, checkpoint)
    bar.close()
    return student, history, seen + time.perf_counter() - t0


def as_shipped(model):
    """The model as it will be loaded back: weights rounded to fp16, computed in fp32."""
    import copy

    return copy.deepcopy(model).half().float().eval()


def run_recipe(cfg: DistillConfig, out: Path, runs: list[str], resume: bool = False, ship: bool = True) -> dict:
    import lmguide

    run = distributed.init()
    teacher, tokenizer = load_teacher(cfg.teacher)
    ids = train_ids(tokenizer, lmguide.data.austen("train"))
    val_text, test_text = lmguide.data.austen("val"), lmguide.data.austen("test")
    out.mkdir(parents=True, exist_ok=True)
    report_file = out / "training.json"
    distributed.log(run, f"teacher {cfg.teacher}: {sum(p.numel() for p in teacher.parameters()):,d} "
                         f"parameters; train {len(ids):,d} tokens; {run.world_size} process(es) on "
                         f"{run.device}; bf16 autocast {distributed.bf16_supported(run.device) and cfg.bf16}")
    for name in runs:
        alpha = cfg.alpha if name == "kd" else 0.0
        student, history, seconds = train_student(cfg, alpha, teacher, tokenizer, ids, val_text, run,
                                                  checkpoint=out / f"checkpoint-{name}.pt", resume=resume)
        if run.is_main:
            shipped = as_shipped(student)
            result = {"alpha": alpha, "temperature": cfg.temperature if alpha else None,
                      "parameters": sum(p.numel() for p in student.parameters()),
                      "val_bits_per_byte": round(bits_per_byte(shipped, tokenizer, val_text), 4),
                      "test_bits_per_byte": round(bits_per_byte(shipped, tokenizer, test_text), 4),
                      "wall_minutes": round(seconds / 60, 1), "history": history}
            distributed.log(run, f"{name}: val bpb {result['val_bits_per_byte']}, test bpb "
                                 f"{result['test_bits_per_byte']}, {result['wall_minutes']} min")
            if name == "kd":
                student.half().save_pretrained(out)
                zoo.save_tokenizer(tokenizer, out)
            report = json.loads(report_file.read_text()) if report_file.exists() else {}
            if report.get("config", dataclasses.asdict(cfg)) != dataclasses.asdict(cfg):
                report = {}  # a report from other settings: start again
            report.setdefault("runs", {})[name] = result
            if "teacher_test_bits_per_byte" not in report:  # the teacher's scores, once per report
                scores = {"teacher_val_bits_per_byte": round(bits_per_byte(teacher, tokenizer, val_text), 4),
                          "teacher_test_bits_per_byte": round(bits_per_byte(teacher, tokenizer, test_text), 4)}
                # read again: a run in another process may have written its result meanwhile
                report = json.loads(report_file.read_text()) if report_file.exists() else {}
                if report.get("config", dataclasses.asdict(cfg)) != dataclasses.asdict(cfg):
                    report = {}
                report.setdefault("runs", {})[name] = result
                report.update(scores)
            report.update({"config": dataclasses.asdict(cfg), "teacher_parameters":
                           sum(p.numel() for p in teacher.parameters()),
                           "train_tokens": len(ids), "world_size": run.world_size, "device": str(run.device),
                           "bf16": distributed.bf16_supported(run.device) and cfg.bf16,
                           "torch": torch.__version__, "threads": torch.get_num_threads()})
            report_file.write_text(json.dumps(report, indent=2) + "\n")
            (out / f"checkpoint-{name}.pt").unlink(missing_ok=True)
        distributed.barrier(run)
    report = json.loads(report_file.read_text()) if run.is_main else {}
    if run.is_main and (out / "model.safetensors").exists():
        write_card(out, report)
        if ship:
            register(out)
    distributed.close(run)
    return report


SEED_RUNS = ("kd", "control", "control-compute")


def compute_matched_steps(cfg: DistillConfig, teacher) -> int:
    """The control's steps at the distillation run's compute (forward + backward FLOPs)."""
    from lmguide.distill import kd_compute_ratio

    return round(cfg.steps * kd_compute_ratio(teacher, make_student(teacher, cfg), cfg.n_ctx))


def run_seeds(cfg: DistillConfig, out: Path, seeds: list[int], runs: list[str]) -> dict:
    """Train ``runs`` for each seed; add test and val bits per byte (fp16 weights) to OUT/seeds.json."""
    import fcntl

    import lmguide

    run = distributed.Run()
    teacher, tokenizer = load_teacher(cfg.teacher)
    ids = train_ids(tokenizer, lmguide.data.austen("train"))
    val_text, test_text = lmguide.data.austen("val"), lmguide.data.austen("test")
    long_steps = compute_matched_steps(cfg, teacher)
    shipped_report = out / "training.json"
    shipped = json.loads(shipped_report.read_text()) if shipped_report.exists() else {}
    for seed in seeds:
        for name in runs:
            key = f"{seed}/{name}"
            steps = long_steps if name == "control-compute" else cfg.steps
            this = dataclasses.replace(cfg, seed=seed, steps=steps)
            base = dataclasses.asdict(dataclasses.replace(this, steps=cfg.steps))
            if name in ("kd", "control") and shipped.get("config") == base:
                r = shipped["runs"][name]
                result = {"steps": steps, "val_bits_per_byte": r["val_bits_per_byte"],
                          "test_bits_per_byte": r["test_bits_per_byte"], "wall_minutes": r["wall_minutes"],
                          "source": "training.json (the shipped run)"}
            else:
                alpha = cfg.alpha if name == "kd" else 0.0
                student, _, seconds = train_student(this, alpha, teacher, tokenizer, ids, None, run, bar=False)
                model = as_shipped(student)
                result = {"steps": steps, "val_bits_per_byte": round(bits_per_byte(model, tokenizer, val_text), 4),
                          "test_bits_per_byte": round(bits_per_byte(model, tokenizer, test_text), 4),
                          "wall_minutes": round(seconds / 60, 1), "source": "this recipe, --seeds"}
            print(f"seed {seed} {name}: {result}", flush=True)
            with open(out / ".seeds.lock", "w") as lock:   # two processes may run different seeds at once
                fcntl.flock(lock, fcntl.LOCK_EX)
                target = out / "seeds.json"
                report = json.loads(target.read_text()) if target.exists() else {}
                if report.get("config") != dataclasses.asdict(cfg):
                    report = {"config": dataclasses.asdict(cfg), "runs": {}}
                report.update({"compute ratio": round(long_steps / cfg.steps, 3), "control-compute steps": long_steps,
                               "teacher_test_bits_per_byte": shipped.get("teacher_test_bits_per_byte"),
                               "command": command(cfg) + " --seeds SEED --threads 1",
                               "processes": "one per seed, run side by side",
                               "torch": torch.__version__, "threads": torch.get_num_threads(),
                               "bf16": distributed.bf16_supported(run.device) and cfg.bf16})
                report["runs"][key] = result
                report["runs"] = dict(sorted(report["runs"].items()))
                target.write_text(json.dumps(report, indent=2) + "\n")
    (out / ".seeds.lock").unlink(missing_ok=True)
    return json.loads((out / "seeds.json").read_text())


def command(cfg: DistillConfig) -> str:
    defaults = DistillConfig()
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in dataclasses.asdict(cfg).items()
             if v != getattr(defaults, k) and k != "teacher"]
    return " ".join(["python -m lmguide.recipes.distilled_austen --out lmguide/weights/" + NAME] + flags)


def write_card(out: Path, report: dict) -> None:
    """README.md: what the student is, how it was made, and how it scores against the teacher and the control."""
    cfg, runs = report["config"], report["runs"]
    rows = [f"| {TEACHER} (teacher) | {report['teacher_parameters']:,d} | - | "
            f"{report['teacher_val_bits_per_byte']:.4f} | {report['teacher_test_bits_per_byte']:.4f} | 100.0% |"]
    for name, label in (("kd", f"{NAME} (kd, alpha {cfg['alpha']}, T {cfg['temperature']})"),
                        ("control", "control (same student, no teacher)")):
        if name in runs:
            r = runs[name]
            rows.append(f"| {label} | {r['parameters']:,d} | {r['wall_minutes']} | {r['val_bits_per_byte']:.4f} | "
                        f"{r['test_bits_per_byte']:.4f} | "
                        f"{100 * report['teacher_test_bits_per_byte'] / r['test_bits_per_byte']:.1f}% |")
    curves = []
    for name, r in runs.items():
        curves += [f"| {name} | {h['step']} | {h['train_hard_loss']:.3f} | {h['val_bits_per_byte']:.4f} | "
                   f"{h['minutes']} |" for h in r["history"]]
    verdict = ""
    if {"kd", "control"} <= set(runs):
        gap = runs["control"]["test_bits_per_byte"] - runs["kd"]["test_bits_per_byte"]
        verdict = (f"\nOn the test split the distilled student is {abs(gap):.4f} bits per byte "
                   f"{'better' if gap > 0 else 'worse'} than the control trained without the teacher "
                   "(seed 0; the seeds table below repeats it).\n")
    text = f"""# {NAME}

A 3-layer student of `{TEACHER}`, made by knowledge distillation: it keeps the teacher's width,
vocabulary, tokenizer, embeddings and layers {_layers(cfg)}
(copied before training), then learns from the teacher's softened next-token distribution
mixed with the true next token. Licence: MIT (teacher and training text are MIT / public domain).

Made by (seeded; {report['world_size']} process(es) on {report['device']}, torch {report['torch']},
{report['threads']} threads, bf16 autocast {report['bf16']}):

    {command(DistillConfig(**cfg))}

| | |
|---|---|
| student | {cfg['n_layer']} layers x 256, {runs.get('kd', next(iter(runs.values())))['parameters']:,d} parameters (teacher {report['teacher_parameters']:,d}) |
| initialisation | `{cfg['init']}`: teacher layers {_layers(cfg)}, embeddings and final layer norm |
| data | `lmguide.data.austen("train")`, {report['train_tokens']:,d} tokens; random windows of {cfg['n_ctx']} tokens |
| training | {cfg['steps']} steps x {cfg['batch_size']} sequences; AdamW (0.9, 0.95), weight decay {cfg['weight_decay']}, peak LR {cfg['lr']} ({cfg['warmup']} warm-up steps, cosine to a tenth), dropout {cfg['dropout']}, seed {cfg['seed']} |
| loss (kd) | {cfg['alpha']} x KL(teacher_T, student_T) x T^2 + {1 - cfg['alpha']:g} x cross-entropy, T = {cfg['temperature']} (`lmguide.distill.distillation_loss`) |
| control | the same student, batches and steps, cross-entropy only (not shipped) |
| stored | fp16 safetensors; scores below are of the fp16 weights |

## Held-out quality

Bits per byte (`lmguide.eval.bits_per_byte`, window 256, stride 128) on the whole `val` and
`test` splits; retention = teacher bits per byte / student bits per byte (test).

| model | parameters | train minutes | val bits/byte | test bits/byte | retention |
|---|---|---|---|---|---|
{chr(10).join(rows)}
{verdict}
## Validation curve

| run | step | train hard loss | val bits per byte | minutes |
|---|---|---|---|---|
{chr(10).join(curves)}

Wall times are on a shared 2-core machine: upper bounds.
{seeds_section(out)}"""
    (out / "README.md").write_text(text)


def seeds_section(out: Path) -> str:
    """The card's table of ``seeds.json`` (when there is one): test bits per byte per seed and run, and the gaps."""
    file = out / "seeds.json"
    if not file.exists():
        return ""
    report = json.loads(file.read_text())
    seeds = sorted({int(k.split("/")[0]) for k in report["runs"]})
    rows = []
    for seed in seeds:
        r = {name: report["runs"].get(f"{seed}/{name}", {}).get("test_bits_per_byte") for name in SEED_RUNS}
        gaps = [f"{r[c] - r['kd']:+.4f}" if None not in (r[c], r["kd"]) else "-" for c in ("control", "control-compute")]
        rows.append(f"| {seed} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in r.values()) + f" | {' | '.join(gaps)} |")
    return f"""
## Seeds, and a control given the same compute (`seeds.json`)

A KD step runs the teacher forward as well: by Kaplan et al.'s count it costs {report['compute ratio']} plain
steps (`lmguide.distill.kd_compute_ratio`), so the equal-compute control trains {report['control-compute steps']}
steps (its schedule stretched to match). Made by `{report['command']}`; seed 0's kd and control are the runs
above. Test bits per byte (fp16 weights); gap = control - kd (positive: KD ahead).

| seed | kd | control (same steps) | control (same compute) | gap, same steps | gap, same compute |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def _layers(cfg: dict) -> str:
    from lmguide.distill import every_other_layer

    return ", ".join(map(str, every_other_layer(8, cfg["n_layer"])))


def register(out: Path) -> None:
    import lmguide

    cfg = json.loads((out / "training.json").read_text())["config"]
    kwargs = dict(name=NAME, kind="causal-lm", licence="MIT", source="lmguide (trained by this project)",
                  description=f"AustenGPT-distilled: a {cfg['n_layer']}-layer student of {TEACHER} made by "
                              "knowledge distillation (notebook 06)")
    lmguide.zoo.write_entry(out, parent=TEACHER, recipe=command(DistillConfig(**cfg)), **kwargs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the student, its card and report")
    parser.add_argument("--runs", default="kd,control", help="which runs, comma-separated: kd, control")
    parser.add_argument("--resume", action="store_true", help="continue from the folder's checkpoints")
    parser.add_argument("--no-ship", action="store_true", help="don't register the student in the zoo")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per process (default 2)")
    for f in dataclasses.fields(DistillConfig):
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if f.type in (bool, "bool") else type(f.default)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds: repeat kd, control and the equal-compute control "
                             "(or --runs) for each, scores only, into OUT/seeds.json")
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite README.md and the zoo entry from the folder's training.json")
    args = parser.parse_args(argv)
    if args.card_only:
        write_card(args.out, json.loads((args.out / "training.json").read_text()))
        if not args.no_ship:
            register(args.out)
        return
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if args.seeds is not None:
        runs = list(SEED_RUNS) if args.runs == parser.get_default("runs") else runs
        if not runs or any(r not in SEED_RUNS for r in runs):
            parser.error(f"with --seeds, --runs takes {', '.join(SEED_RUNS)} (got {args.runs!r})")
        torch.set_num_threads(args.threads)
        cfg = DistillConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)})
        run_seeds(cfg, args.out, [int(x) for x in args.seeds.split(",")], runs)
        return
    if not runs or any(r not in ("kd", "control") for r in runs):
        parser.error(f"--runs takes kd and/or control (got {args.runs!r})")
    torch.set_num_threads(args.threads)
    cfg = DistillConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)})
    run_recipe(cfg, args.out, runs, resume=args.resume, ship=not args.no_ship)


if __name__ == "__main__":
    main()
