"""Make ``smollm2-135m-support-chat``: SmolLM2-135M-Instruct instruction-tuned with LoRA on the support chats.

    python -m lmguide.recipes.support_chat --out lmguide/weights/smollm2-135m-support-chat   # ~10 min, 2 threads

Supervised fine-tuning (SFT) in the model's own chat template: the train split's chats and FAQ
answers as conversations (:func:`lmguide.instruct.support_chats`, after one system turn), LoRA
r=8 on the seven projections of every block, the loss on the assistant's tokens only
(:class:`lmguide.instruct.ChatDataset`). A second run, identical but for the loss on *every*
token (system prompt and customer turns too), is scored and not shipped: notebook 04 shows what
the mask changes. Both runs and the untouched model are scored on the held-out split's
conversations (the assistant tokens' loss, :func:`lmguide.instruct.assistant_nll`) and on 24
held-out customer questions (``lmguide/assets/support/questions.json``: greedy answer, then
format followed (:func:`lmguide.instruct.follows_format`) and answer correct
(:func:`lmguide.router.score`)). Writes the masked run's adapter (fp16 safetensors), README.md
(model card), training.json and zoo.json.
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

PARENT = "smollm2-135m"
NAME = "smollm2-135m-support-chat"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def evaluate(model, tokenizer, questions: list[dict], held_out: list) -> dict:
    """The held-out assistant loss and each question's answer, format and correctness."""
    from lmguide import instruct, router

    answers = []
    for q in questions:
        reply = instruct.chat_reply(model, tokenizer, q["question"])
        answers.append({"id": q["id"], **reply, "format": instruct.follows_format(reply),
                        "correct": router.score(reply["answer"], q["answers"])["correct"]})
    n = len(answers)
    return {"held-out assistant nats/token": round(instruct.assistant_nll(model, tokenizer, held_out), 4),
            "format followed": sum(a["format"] for a in answers) / n, "correct": sum(a["correct"] for a in answers) / n,
            "answers": answers}


def train_run(model, tokenizer, assistant_only: bool, args) -> tuple:
    import torch

    from lmguide import finetune, instruct

    torch.manual_seed(args.seed)
    peft_model = finetune.add_peft_lora(copy.deepcopy(model), TARGETS, r=args.rank, alpha=2 * args.rank,
                                        expect=model.config.num_hidden_layers * len(TARGETS))
    train = instruct.ChatDataset(tokenizer, instruct.support_chats("train"), assistant_only=assistant_only)
    with tempfile.TemporaryDirectory() as tmp:
        targs = finetune.training_arguments(tmp, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch,
                                            learning_rate=args.lr, seed=args.seed, data_seed=args.seed,
                                            logging_steps=2, remove_unused_columns=False)
        trainer = finetune.make_trainer(peft_model, targs, train, None, tokenizer)
        trainer.data_collator = instruct.chat_collator(tokenizer)
        t0 = time.perf_counter()
        finetune.train(trainer)
        seconds = time.perf_counter() - t0
    history = finetune.loss_history(trainer)["train loss"].dropna()
    peft_model.eval()
    return peft_model, {"examples": len(train), "tokens": train.tokens, "trained tokens": train.trained_tokens,
                        "steps": int(trainer.state.global_step), "train seconds": round(seconds, 1),
                        "loss history": {int(k): round(float(v), 4) for k, v in history.items()}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--card-only", action="store_true", help="rewrite README.md and zoo.json from training.json")
    args = parser.parse_args(argv)
    if args.card_only:
        report = json.loads((args.out / "training.json").read_text())
        write_card(args.out, report)
        register(args.out, report)
        return report

    import torch
    import transformers

    import lmguide
    from lmguide import finetune, instruct, lora

    t_start = time.perf_counter()
    lmguide.setup(seed=args.seed, threads=2)
    model, tokenizer = lmguide.load(PARENT)
    questions, held_out = instruct.support_questions(), instruct.support_chats("test")
    report = {"command": "python -m lmguide.recipes.support_chat " + " ".join(sys.argv[1:] if argv is None else argv),
              "name": NAME, "parent": PARENT, "targets": TARGETS, "rank": args.rank, "alpha": 2 * args.rank,
              "epochs": args.epochs, "batch": args.batch, "learning rate": args.lr, "seed": args.seed,
              "system prompt": instruct.SUPPORT_SYSTEM, "held-out conversations": len(held_out),
              "questions": len(questions), "max new tokens": 64}
    print("scoring the untouched model", flush=True)
    report["before"] = evaluate(model, tokenizer, questions, held_out)
    shipped = None
    for label, assistant_only in (("assistant tokens only", True), ("every token", False)):
        print(f"training: loss on {label}", flush=True)
        peft_model, run = train_run(model, tokenizer, assistant_only, args)
        run.update(evaluate(peft_model, tokenizer, questions, held_out))
        report[f"after: loss on {label}"] = run
        print({k: v for k, v in run.items() if k not in ("answers", "loss history")}, flush=True)
        if assistant_only:
            args.out.mkdir(parents=True, exist_ok=True)
            lora.save_adapter(peft_model, args.out, PARENT)
            report["parameters"] = finetune.count_parameters(peft_model)
        del peft_model
    report["machine"] = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                         "torch": torch.__version__, "transformers": transformers.__version__,
                         "threads": torch.get_num_threads()}
    report["wall seconds"] = round(time.perf_counter() - t_start, 1)
    (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    write_card(args.out, report)
    register(args.out, report)
    return report


def register(out: Path, r: dict) -> None:
    from lmguide import zoo

    zoo.write_entry(out, name=r["name"], kind="causal-lm", licence=zoo.ENTRIES[r["parent"]].licence,
                    description=f"{r['parent']} instruction-tuned with LoRA (r={r['rank']}) on the Kettlewise "
                                "support chats, loss on the assistant's tokens (notebook 04)",
                    source="lmguide (LoRA trained by this project on its support texts)", parent=r["parent"],
                    recipe=r["command"], loader="lmguide.lora:load_adapter", make="",
                    parameters=zoo.ENTRIES[r["parent"]].parameters)


def write_card(out: Path, r: dict) -> None:
    runs = {"before (SmolLM2-135M-Instruct)": r["before"]} | {k: v for k, v in r.items() if k.startswith("after:")}
    rows = "\n".join(f"| {name} | {v.get('trained tokens', '-')} | {v['held-out assistant nats/token']:.3f} | "
                     f"{100 * v['format followed']:.0f}% | {100 * v['correct']:.0f}% |" for name, v in runs.items())
    ids = [a["id"] for a in r["before"]["answers"]]
    after = r["after: loss on assistant tokens only"]["answers"]
    examples = "\n".join(f"| {i} | {b['answer']!r} | {a['answer']!r} |"
                         for i, b, a in list(zip(ids, r["before"]["answers"], after))[:6])
    run = r["after: loss on assistant tokens only"]
    text = f"""# {r['name']}

`{r['parent']}` (SmolLM2-135M-Instruct) instruction-tuned with a LoRA adapter on the Kettlewise K2
support chats that the lmguide team wrote (`lmguide/assets/support/`, data card there).
`lmguide.load("{r['name']}")` returns the parent with the adapter merged in. Licence: the parent's.

Made with:

    {r['command']}

- Data: the train split's chats and FAQ answers as {run['examples']} conversations in the model's chat
  template, each after the system turn "{r['system prompt']}"; {run['tokens']:,} tokens, of which
  {run['trained tokens']:,} are the assistant's (the only ones the loss counts).
- LoRA r={r['rank']}, alpha={r['alpha']} on {', '.join(r['targets'])} of every block
  ({r['parameters']['trainable']:,} trainable of {r['parameters']['total']:,}); {r['epochs']} epochs of batch
  {r['batch']} ({run['steps']} steps), AdamW, learning rate {r['learning rate']} decaying linearly, seed {r['seed']};
  {run['train seconds']:.0f} s of training on {r['machine']['threads']} CPU threads ({r['machine']['cpu']},
  torch {r['machine']['torch']}, transformers {r['machine']['transformers']}) of a machine shared with other
  jobs, so the time is an upper bound.
- A second run with the loss on every token (system prompt and customer turns included) is
  scored below and not shipped.

## Held-out scores

Held-out assistant loss: nats per assistant token on the {r['held-out conversations']} conversations of the
test split. The {r['questions']} questions (`questions.json`, written for the eval; every fact is in the
train split, many only in its help articles, which are not conversations): greedy answer, at most
{r['max new tokens']} tokens; *format* = the model ends its turn itself, writes no other speaker's turn and
stays under 40 words; *correct* = `lmguide.router.score`.

| model | tokens the loss counted | held-out assistant nats/token | format followed | correct |
|---|---|---|---|---|
{rows}

## First answers, before and after (greedy)

| question | before | after |
|---|---|---|
{examples}

Limits: {run['examples']} conversations about one made-up product. The adapter moves the model towards
the desk's phrasing (the held-out assistant loss); it did not learn the product's facts
({round(run['correct'] * r['questions'])} of {r['questions']} held-out questions right, {round(r['before']['correct'] * r['questions'])} before; the rule
counts any answer containing a gold phrase, so a few can be luck). It answers with the same confidence
when it is wrong. Not for real customer service.
"""
    (out / "README.md").write_text(text)


if __name__ == "__main__":
    main()
