"""Make ``PARENT-support``: a LoRA adapter that teaches a zoo generator the Kettlewise support domain.

    python -m lmguide.recipes.lora_support --out lmguide/weights/austen-gpt-small-support
    python -m lmguide.recipes.lora_support --parent smollm2-135m --out DIR     # the same for SmolLM2

Seeded; LoRA r=8 on every linear layer of every block (GPT-2: c_attn, c_proj, c_fc; Llama: the
seven projections); trained with transformers' Trainer on the train split of
``lmguide.data.support_documents``; scored before and after on the held-out support split and a
slice of held-out Austen (``lmguide.finetune.held_out_texts``), with the same prompts and seed.
Writes the adapter (safetensors, fp16), README.md (model card), training.json and zoo.json.

``--costs-only`` measures one training step of SmolLM2, full and LoRA, each in a fresh process
(with its peak RSS) into OUT/step_cost.json, and ``--register-only`` adds it to training.json:
notebook 04 quotes it, because full fine-tuning of SmolLM2 does not fit in its memory budget.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"],
           "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
COST_MODEL = "smollm2-135m"
COST_SHAPE = (2, 64)  # batch, sequence length of the step-cost measurements (the notebook uses the same)


def answers(model, tokenizer, seed: int) -> list[dict]:
    from lmguide.finetune import SUPPORT_PROMPTS
    from lmguide.sampling import generate_text

    return [{"prompt": p, "answer": generate_text(model, tokenizer, p, max_new_tokens=30, strategy="sample",
                                                  temperature=0.7, top_p=0.9, seed=seed).strip()}
            for p in SUPPORT_PROMPTS]


def scores(model, tokenizer) -> dict:
    """Held-out bits per byte (window 512, or the model's context when shorter)."""
    from lmguide.eval import bits_per_byte
    from lmguide.finetune import held_out_texts

    return {k: bits_per_byte(model, tokenizer, text, window=512) for k, text in held_out_texts().items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parent", default="austen-gpt-small", help="the zoo generator to adapt")
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--costs", action="store_true", help="also measure full vs LoRA step cost")
    parser.add_argument("--costs-only", action="store_true",
                        help="only measure the step costs (a fresh process each, in turn) into OUT/step_cost.json")
    parser.add_argument("--register-only", action="store_true",
                        help="rewrite README.md and zoo.json from an earlier run's training.json "
                             "(adding OUT/step_cost.json from --costs-only to it)")
    args = parser.parse_args(argv)
    if args.costs_only:
        args.out.mkdir(parents=True, exist_ok=True)
        costs = measure_costs()
        (args.out / "step_cost.json").write_text(json.dumps(costs, indent=1) + "\n")
        return costs
    if args.register_only:
        report = json.loads((args.out / "training.json").read_text())
        extra = args.out / "step_cost.json"
        if extra.is_file():
            report["step cost"] = json.loads(extra.read_text())
            report["step cost command"] = f"python -m lmguide.recipes.lora_support --out {args.out} --costs-only"
            (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
            extra.unlink()
        write_card(args.out, report)
        register(args.out, report)
        return report

    import torch
    import transformers

    import lmguide
    from lmguide import finetune, lora

    t_start = time.perf_counter()
    lmguide.setup(seed=args.seed, threads=2)
    model, tokenizer = lmguide.load(args.parent)
    targets = TARGETS[model.config.model_type]
    train = finetune.CausalLMDataset(tokenizer, finetune.support_texts("train"), args.block)
    test = finetune.CausalLMDataset(tokenizer, finetune.support_texts("test"), args.block)
    print(f"train: {len(train)} blocks of {args.block} tokens; held-out: {len(test)} blocks", flush=True)
    before = {"bits per byte": scores(model, tokenizer), "answers": answers(model, tokenizer, args.seed)}
    print("before:", before["bits per byte"], flush=True)

    torch.manual_seed(args.seed)
    peft_model = finetune.add_peft_lora(model, targets, r=args.rank, alpha=2 * args.rank,
                                   expect=model.config.num_hidden_layers * (len(targets) + (model.config.model_type == "gpt2")))
    counts = finetune.count_parameters(peft_model)
    with tempfile.TemporaryDirectory() as tmp:
        targs = finetune.training_arguments(
            tmp, max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=args.lr,
            eval_strategy="steps", eval_steps=10, logging_steps=5, disable_tqdm=False, seed=args.seed)
        trainer = finetune.make_trainer(peft_model, targs, train, test, tokenizer, progress=True)
        t0 = time.perf_counter()
        finetune.train(trainer)
        train_s = time.perf_counter() - t0
    history = finetune.loss_history(trainer)
    peft_model.eval()
    after = {"bits per byte": scores(peft_model, tokenizer), "answers": answers(peft_model, tokenizer, args.seed)}
    print("after:", after["bits per byte"], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    files = lora.save_adapter(peft_model, args.out, args.parent)
    report = {
        "command": "python -m lmguide.recipes.lora_support " + " ".join(sys.argv[1:] if argv is None else argv),
        "name": f"{args.parent}-support", "parent": args.parent, "targets": targets, "rank": args.rank, "alpha": 2 * args.rank,
        "steps": args.steps, "batch": args.batch, "block": args.block, "learning rate": args.lr,
        "seed": args.seed, "train blocks": len(train), "held-out blocks": len(test),
        "parameters": counts, "train seconds": round(train_s, 1),
        "loss history": {int(k): {c: (None if v != v else round(v, 4)) for c, v in row.items()}
                         for k, row in history.to_dict(orient="index").items()},
        "before": before, "after": after,
        "held-out": {"support": "lmguide.data.support('test')",
                     "austen": f"lmguide.data.austen('test')[:{finetune.AUSTEN_PROBE_CHARS}]",
                     "bits per byte": "lmguide.eval.bits_per_byte(model, tokenizer, text, window=512)"},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "threads": torch.get_num_threads()},
    }
    report["wall seconds"] = round(time.perf_counter() - t_start, 1)
    (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    write_card(args.out, report)
    if args.costs:
        del model, peft_model, trainer
        report["step cost"] = measure_costs()
        report["wall seconds"] = round(time.perf_counter() - t_start, 1)
        (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
        write_card(args.out, report)
    register(args.out, report)
    print(f"wrote {', '.join(files)} to {args.out}")
    return report


def measure_costs() -> dict:
    """One AdamW step of the parent, LoRA (q_proj, v_proj) and full, each in a fresh process, one after the other."""
    from lmguide import finetune

    print(f"measuring one LoRA and one full training step of {COST_MODEL}, each in a fresh process", flush=True)
    return {mode: finetune.measure_in_subprocess(COST_MODEL, mode, *COST_SHAPE, 3) for mode in ("lora", "full")}


def register(out: Path, r: dict) -> None:
    from lmguide import zoo

    parent = r["parent"]
    zoo.write_entry(out, name=r["name"], kind="causal-lm", licence=zoo.ENTRIES[parent].licence,
                    description=f"{parent} + a LoRA adapter (r={r['rank']}, {', '.join(r['targets'])}) "
                                "for the Kettlewise support texts",
                    source="lmguide (LoRA trained by this project on its support texts)", parent=parent,
                    recipe=r["command"], loader="lmguide.lora:load_adapter", make="",
                    parameters=zoo.ENTRIES[parent].parameters)  # what lmguide.load returns: the parent, merged


def write_card(out: Path, r: dict) -> None:
    b, a = r["before"]["bits per byte"], r["after"]["bits per byte"]
    rows = "\n".join(f"| {k} | {b[k]:.3f} | {a[k]:.3f} |" for k in b)
    qa = "\n\n".join(f"**{x['prompt'].splitlines()[0]}**\n\n- before: {x['answer']!r}\n- after: {y['answer']!r}"
                     for x, y in zip(r["before"]["answers"], r["after"]["answers"]))
    cost = ""
    if "step cost" in r:
        made = f"\nMeasured with `{r['step cost command']}`.\n" if "step cost command" in r else ""
        cost = ("\n## One training step of SmolLM2-135M (batch %d x %d tokens, AdamW, fresh process each)\n" % COST_SHAPE + made +
                "\nThe two processes ran one after the other on the same machine: compare them with each other, "
                "not with timings from elsewhere.\n\n"
                "| | trainable | s/step (median) | peak RSS MiB | tensor account MiB |\n|---|---|---|---|---|\n"
                + "\n".join(f"| {m} | {c['trainable']:,} | {c['s/step']:.2f} | {c['peak RSS MiB']:.0f} | {c['total MiB']:.0f} |"
                            for m, c in r["step cost"].items()) + "\n")
    text = f"""# {r['name']}

A LoRA adapter for `{r['parent']}` trained on the Kettlewise K2 support texts that the lmguide
team wrote (`lmguide/assets/support/`, data card there). `lmguide.load("{r['name']}")` returns
`{r['parent']}` with the adapter merged in.

Made with:

    {r['command'] or 'python -m lmguide.recipes.lora_support'}

- LoRA r={r['rank']}, alpha={r['alpha']}, on {', '.join(r['targets'])} of every block:
  {r['parameters']['trainable']:,} trainable of {r['parameters']['total']:,} parameters.
- {r['steps']} steps of batch {r['batch']} x {r['block']} tokens ({r['train blocks']} training blocks),
  AdamW, learning rate {r['learning rate']} decaying linearly, seed {r['seed']}; {r['train seconds']:.0f} s of
  training on {r['machine']['threads']} CPU threads (torch {r['machine']['torch']}, transformers {r['machine']['transformers']})
  of a machine shared with other jobs, so the time is an upper bound.
- Stored in fp16 (safetensors).

## Held-out bits per byte (lower is better)

| text | before | after |
|---|---|---|
{rows}

`support` is the whole held-out support split; `austen` the first {r['held-out']['austen'].split('[:')[1].rstrip(']')}
characters of held-out Austen (what the adapter may make the model forget). Window 512 (or the
model's context when shorter), stride half the window.

## The same prompts, the same seed (temperature 0.7, top-p 0.9, 30 tokens)

{qa}
{cost}
Limits: ~2,700 words of training text about one made-up product. The adapter learns the product's
vocabulary and facts it saw; it has not learnt to be right about anything else, and it can state
made-up details with confidence. Not for real customer service.
"""
    (out / "README.md").write_text(text)


if __name__ == "__main__":
    main()
