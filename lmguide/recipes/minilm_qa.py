"""Recipe: minilm-qa, MiniLM fine-tuned for extractive QA on the lmguide QA set, then score it on the dev set.

    python -m lmguide.recipes.minilm_qa --out lmguide/weights/minilm-qa

(the defaults are the recipe of the shipped model: 4 epochs, lr 1e-4, 10% unanswerable, 2 threads;
about 18 minutes per epoch on 2 CPU cores).

Steps: cut each (question, context) into windows of ``max_length`` tokens and mark the
answer's first and last token in each window ([CLS] when the answer is not wholly in it);
ask a tenth of the questions again of a passage without their answer, labelled [CLS], so
that the no-answer score is trained too; put a new 2-output linear head (start, end) on the
all-MiniLM-L6-v2 encoder; train with AdamW and a linear warm-up/decay schedule; decode the
dev set with ``lmguide.qa`` (also after every epoch, for the model card); save float16
safetensors, the tokenizer, ``README.md`` (model card), ``training.json`` and ``zoo.json``
(so that ``lmguide.zoo`` lists the folder when it is ``lmguide/weights/minilm-qa``).
Windows are 384 tokens, not 256: some passages are longer than 256, and each batch is cut to
its longest window, so the unused padding costs nothing.
Only local folders are read (``HF_HUB_OFFLINE=1``); the same command gives the same weights.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmguide import qa, qa_data, zoo
from lmguide.qa_data import DATA_DIR



def new_qa_model(base_dir: str | Path, seed: int = 1234):
    """The base encoder's weights under a new, seeded, random QA head (start and end logits)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    config = AutoConfig.from_pretrained(base_dir, local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_config(config)
    # Load the encoder ourselves rather than via from_pretrained, which would print a report
    # saying the QA head is new (we know) and the pooler is unused (QA reads token vectors).
    state = load_file(str(Path(base_dir) / "model.safetensors"))
    encoder = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    model.base_model.load_state_dict(encoder, strict=True)
    return model


def fine_tune(model, features: dict, epochs: int, batch_size: int = 8, lr: float = 5e-5,
          warmup: float = 0.1, seed: int = 1234, progress: bool = True, after_epoch=None) -> list[float]:
    """Fine-tune ``model`` on ``features`` in place; returns the mean loss of each epoch.

    ``after_epoch(epoch, mean_loss)``, when given, runs after each epoch (with the model in
    eval mode; training resumes after it): ``main`` scores the dev set there.
    """
    n = len(features["input_ids"])
    steps = epochs * math.ceil(n / batch_size)
    warmup_steps = max(1, int(warmup * steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(   # linear up to lr, then linear down to 0
        optimizer, lambda s: min((s + 1) / warmup_steps, max(0.0, (steps - s) / (steps - warmup_steps + 1))))
    generator = torch.Generator().manual_seed(seed)
    names = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")
    model.train()
    history = []
    with tqdm(total=steps, desc="fine-tuning", unit="step", disable=not progress) as bar:
        for epoch in range(epochs):
            order, losses = torch.randperm(n, generator=generator), []
            for i in range(0, n, batch_size):
                batch = {k: features[k][order[i:i + batch_size]] for k in names}
                width = int(batch["attention_mask"].sum(dim=1).max())  # drop all-padding columns: faster
                for k in ("input_ids", "token_type_ids", "attention_mask"):
                    batch[k] = batch[k][:, :width]                      # (b, width)
                loss = model(**batch).loss  # mean of start and end cross-entropies
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
                bar.update()
            history.append(sum(losses) / len(losses))
            if after_epoch is not None:
                model.eval()
                with torch.no_grad():
                    after_epoch(epoch + 1, history[-1])
                model.train()
    model.eval()
    return history


def answer_all(model, tokenizer, dataset: dict, max_length: int = 384, stride: int = 128) -> tuple[list, dict]:
    """Answer every question of ``dataset``, never abstaining: the result dicts of
    ``qa.answer_many`` and the predictions by question id (what ``qa.squad_evaluate`` reads)."""
    questions = list(qa_data.iter_questions(dataset))
    results = qa.answer_many([(q["question"], q["context"]) for q in questions], model, tokenizer,
                             max_length=max_length, stride=stride, null_margin=math.inf)
    return results, {q["id"]: r["answer"] for q, r in zip(questions, results)}


def evaluate(model, tokenizer, dataset: dict, max_length: int = 384, stride: int = 128, seed: int = 1234) -> dict:
    """Dev-set exact match and F1 (percent, always answering: SQuAD v1.1 has no unanswerable
    questions), and how often the no-answer rule (margin 0) abstains on answerable questions and
    on half of them asked of a passage without the answer."""
    def abstained(results):
        return 100 * sum(r["null_score"] > r["score"] for r in results) / max(1, len(results))

    results, predictions = answer_all(model, tokenizer, dataset, max_length, stride)
    scores = qa.squad_evaluate(predictions, dataset)
    wrong_passage, _ = answer_all(model, tokenizer, qa_data.unanswerable(dataset, 0.5, seed), max_length, stride)
    return {**scores, "no_answer_when_answerable": abstained(results),
            "no_answer_when_unanswerable": abstained(wrong_passage), "unanswerable_count": len(wrong_passage)}


def model_card(info: dict) -> str:
    dev = info["dev"]
    return f"""# minilm-qa: all-MiniLM-L6-v2 fine-tuned for extractive QA

- Base model: `{info['base_model']}` (sentence-transformers/all-MiniLM-L6-v2, 6 layers, hidden 384)
- Task head: a new linear layer giving start and end logits per token (`BertForQuestionAnswering`)
- Training data: `{info['train_file']}` ({info['train_questions']} questions; sha256 `{info['train_sha256'][:16]}...`),
  hand-written questions on Austen passages and lmguide team texts, plus {info['unanswerable_questions']}
  of those questions paired with a passage without their answer (labelled "no answer", [CLS]);
  {info['train_windows']} windows in all
- Dev data: `{info['dev_file']}` ({dev['count']} questions on passages not used in training;
  sha256 `{info['dev_sha256'][:16]}...`)
- Training: {info['epochs']} epoch(s), batch {info['batch_size']}, AdamW lr {info['lr']} with linear warm-up/decay,
  max_length {info['max_length']}, stride {info['stride']}, seed {info['seed']}, {info['threads']} CPU thread(s)
- Wall time: {info['train_seconds']:.0f} s training ({info['windows_per_second']:.2f} windows/s), torch {info['torch']},
  transformers {info['transformers']}
- Dev exact match {dev['exact_match']:.1f}, F1 {dev['f1']:.1f} (SQuAD v1.1 metrics, `lmguide.qa` decoding, always answering)
- No-answer rule (null_margin 0): says "no answer" to {dev['no_answer_when_answerable']:.0f}% of answerable dev questions
  and to {dev['no_answer_when_unanswerable']:.0f}% of {dev['unanswerable_count']} dev questions asked of a passage without the answer
- File: `model.safetensors`, float16, {info['model_bytes'] / 1e6:.1f} MB
{epoch_table(info.get('dev_per_epoch', []))}
Load with `lmguide.load("minilm-qa")` (float32 on CPU). Decode with max_length {info['max_length']}
and stride {info['stride']}, as in training. Made by `python -m lmguide.recipes.minilm_qa`; see `training.json`.
"""


def epoch_table(curve: list[dict]) -> str:
    """Markdown table of training loss and dev scores after each epoch (empty when not scored)."""
    if not curve:
        return ""
    rows = "".join(f"| {c['epoch']} | {c['loss']:.3f} | {c['dev_exact_match']:.1f} | {c['dev_f1']:.1f} |\n" for c in curve)
    return ("\nAfter each epoch (float32 weights, before the float16 rounding of the shipped file):\n\n"
            "| epoch | mean training loss | dev exact match | dev F1 |\n|---|---|---|---|\n" + rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the fine-tuned model")
    parser.add_argument("--base", type=Path, help="base encoder folder (default: zoo 'minilm-l6')")
    parser.add_argument("--train", type=Path, default=DATA_DIR / "train.json")
    parser.add_argument("--dev", type=Path, default=DATA_DIR / "dev.json")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--stride", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--unanswerable", type=float, default=0.1,
                        help="add this fraction of questions again, paired with a passage without their answer")
    parser.add_argument("--score-epochs", action=argparse.BooleanOptionalAction, default=True,
                        help="score the dev set after every epoch (float32 weights; not counted as training time)")
    parser.add_argument("--limit", type=int, help="train on the first N questions only (a quick check)")
    parser.add_argument("--dev-limit", type=int, help="evaluate on the first N dev questions only")
    args = parser.parse_args(argv)

    os.environ["HF_HUB_OFFLINE"] = "1"  # documented: this run never touches the network
    import transformers
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    base_is_zoo = args.base is None
    if args.base is None:
        args.base = Path(zoo.path("minilm-l6"))
    train_set = qa_data.first_questions(qa_data.load_squad(args.train), args.limit)
    dev_set = qa_data.first_questions(qa_data.load_squad(args.dev), args.dev_limit)
    tokenizer = AutoTokenizer.from_pretrained(args.base, local_files_only=True)
    negatives = qa_data.unanswerable(train_set, args.unanswerable, args.seed)
    n_questions = len(list(qa_data.iter_questions(train_set)))
    n_negatives = len(list(qa_data.iter_questions(negatives)))
    features = qa.prepare_train_features({**train_set, "data": train_set["data"] + negatives["data"]},
                                      tokenizer, args.max_length, args.stride)
    n_windows = len(features["input_ids"])
    print(f"train: {n_questions} questions + {n_negatives} unanswerable -> {n_windows} windows "
          f"of <= {args.max_length} tokens")

    model = new_qa_model(args.base, args.seed)
    curve, scoring_seconds = [], 0.0  # dev scores after each epoch; time spent scoring (not training)

    def score_epoch(epoch: int, loss: float) -> None:
        nonlocal scoring_seconds
        tick = time.perf_counter()
        scores = qa.squad_evaluate(answer_all(model, tokenizer, dev_set, args.max_length, args.stride)[1], dev_set)
        curve.append({"epoch": epoch, "loss": round(loss, 4), "dev_exact_match": round(scores["exact_match"], 2),
                      "dev_f1": round(scores["f1"], 2)})
        tqdm.write(f"epoch {epoch}: loss {loss:.3f}, dev exact match {scores['exact_match']:.1f}, F1 {scores['f1']:.1f}")
        scoring_seconds += time.perf_counter() - tick

    began = time.perf_counter()
    history = fine_tune(model, features, args.epochs, args.batch_size, args.lr, seed=args.seed,
                    after_epoch=score_epoch if args.score_epochs else None)
    train_seconds = time.perf_counter() - began - scoring_seconds

    args.out.mkdir(parents=True, exist_ok=True)
    with zoo.progress_bars(False):  # no "Writing model shards" bar
        model.half().save_pretrained(args.out)  # float16 halves the file; we load it back as float32
    zoo.save_tokenizer(tokenizer, args.out)
    shipped, _ = zoo.load(args.out, kind="question-answering")  # score the weights as saved, rounding included
    dev = evaluate(shipped, tokenizer, dev_set, args.max_length, args.stride, args.seed)
    info = {
        # names, not machine paths: the card and report are committed with the weights
        "base_model": "minilm-l6" if base_is_zoo else args.base.name,
        "train_file": args.train.name, "dev_file": args.dev.name,
        "train_sha256": zoo.sha256(args.train), "dev_sha256": zoo.sha256(args.dev),
        "train_questions": n_questions, "unanswerable": args.unanswerable,
        "unanswerable_questions": n_negatives, "train_windows": n_windows, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "max_length": args.max_length, "stride": args.stride,
        "seed": args.seed, "threads": args.threads, "limit": args.limit, "dev_limit": args.dev_limit,
        "train_seconds": round(train_seconds, 1),
        "windows_per_second": round(args.epochs * n_windows / train_seconds, 3),
        "loss_per_epoch": [round(x, 4) for x in history], "dev_per_epoch": curve, "dev": dev,
        "model_bytes": (args.out / "model.safetensors").stat().st_size,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    (args.out / "README.md").write_text(model_card(info))
    zoo.write_entry(args.out, name=args.out.name, kind="question-answering", licence="Apache-2.0",
                    source="lmguide (all-MiniLM-L6-v2 fine-tuned by python -m lmguide.recipes.minilm_qa)",
                    description="MiniLM-QA: minilm-l6 fine-tuned by lmguide for extractive question answering",
                    parent="minilm-l6", recipe=f"python -m lmguide.recipes.minilm_qa --out lmguide/weights/{args.out.name}")
    print(f"dev: exact match {dev['exact_match']:.1f}, F1 {dev['f1']:.1f} on {dev['count']} questions; "
          f"{train_seconds:.0f} s training; saved to {args.out}")
    return info


if __name__ == "__main__":
    main()
