"""Train the AustenGPT models: a byte-level BPE tokenizer and a GPT-2 architecture LM.

    python -m lmguide.train --preset large --out lmguide/weights/austen-gpt-large

Everything is seeded; the same command on the same torch version gives the
same weights. Only the ``train`` split is read, so val/test stay unseen.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

EOS = "<|endoftext|>"


@dataclasses.dataclass
class TrainConfig:
    vocab_size: int = 4096    # BPE merges learned on the train split
    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 256
    n_ctx: int = 256          # context window in tokens
    dropout: float = 0.0      # on embeddings and residual branches; attention dropout stays 0
    batch_size: int = 16      # sequences per step
    steps: int = 4000
    lr: float = 3e-3          # peak learning rate, after linear warm-up
    min_lr: float = 1e-4      # cosine decay ends here
    warmup: int = 200
    weight_decay: float = 0.1
    eval_every: int = 500
    seed: int = 1234
    bf16: bool = True         # bfloat16 autocast for the matmuls (CPUs with avx512_bf16 or AMX)


PRESETS = {
    "large": TrainConfig(n_layer=8, n_head=8, n_embd=256, dropout=0.1, steps=3000, lr=2e-3,
                         warmup=300),
    "small": TrainConfig(n_layer=4, n_head=5, n_embd=160, dropout=0.1, steps=2000, lr=3e-3,
                         warmup=300),
    "tiny": TrainConfig(vocab_size=512, n_layer=2, n_head=2, n_embd=32, n_ctx=64, steps=30,
                        batch_size=4, warmup=5, eval_every=15),
}


def train_tokenizer(text: str, vocab_size: int):
    """A GPT-2 style byte-level BPE, learned from ``text``; returns a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    chunks = [text[i:i + 100_000] for i in range(0, len(text), 100_000)]
    tok.train_from_iterator(chunks, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
        model_max_length=None,
    )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def build_model(cfg: TrainConfig, vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size, n_positions=cfg.n_ctx, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
        # attention dropout would push SDPA onto its slow path on CPU (measured ~2x slower)
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    return GPT2LMHeadModel(config)


@torch.no_grad()
def windows_loss(model, ids: np.ndarray, n_ctx: int, bf16: bool) -> float:
    """Mean next-token loss (nats) over non-overlapping windows of ``ids``."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, n_ctx):
        x = torch.from_numpy(ids[start:start + n_ctx + 1].astype(np.int64))[None]
        if x.shape[1] < 2:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float()[0], x[0, 1:], reduction="sum")
        total, count = total + loss.item(), count + x.shape[1] - 1
    model.train()
    return total / count


def save(model, tokenizer, out: Path, report: dict) -> None:
    """Write the weights as fp16 safetensors (training stays fp32), the tokenizer and a report."""
    out.mkdir(parents=True, exist_ok=True)
    if report.get("partial") is None:  # final save: reload the best weights written during training
        from transformers import GPT2LMHeadModel

        best = GPT2LMHeadModel.from_pretrained(out, dtype=torch.float16)
        model.load_state_dict(best.state_dict())
    half = copy.deepcopy(model).to(torch.float16).eval()
    half.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")


def train(cfg: TrainConfig, out: Path, text: str, val_text: str, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    t0 = time.perf_counter()
    tokenizer = train_tokenizer(text, cfg.vocab_size)
    eos = tokenizer.eos_token_id
    ids = np.array(tokenizer(text.replace("\n\n", EOS))["input_ids"], dtype=np.int32)
    val_ids = np.array(tokenizer(val_text)["input_ids"], dtype=np.int32)
    val_bytes = len(val_text.encode("utf-8"))
    log(f"tokenizer: {len(tokenizer)} tokens; train {len(ids):,d} tokens "
        f"({len(text.encode()) / len(ids):.2f} bytes/token), eos id {eos}")

    model = build_model(cfg, len(tokenizer))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=False,
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    history, best = [], (float("inf"), 0)
    model.train()
    bar = tqdm(range(cfg.steps), desc="training", mininterval=5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        starts = torch.randint(0, len(ids) - cfg.n_ctx - 1, (cfg.batch_size,), generator=gen).numpy()
        batch = torch.from_numpy(np.stack([ids[s:s + cfg.n_ctx + 1] for s in starts]).astype(np.int64))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(batch[:, :-1]).logits  # (B, T, vocab)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            val_loss = windows_loss(model, val_ids, cfg.n_ctx, cfg.bf16)
            bpb = val_loss * len(val_ids) / val_bytes / math.log(2)
            elapsed = time.perf_counter() - t0
            history.append({"step": step + 1, "train_loss": round(loss.item(), 4),
                            "val_bits_per_byte": round(bpb, 4), "minutes": round(elapsed / 60, 1)})
            if bpb < best[0]:  # keep (on disk) the weights with the best held-out (val) score
                best = (bpb, step + 1)
                save(model, tokenizer, out, {"config": dataclasses.asdict(cfg), "steps_done": step + 1,
                                             "best_step": step + 1, "best_val_bits_per_byte": round(bpb, 4),
                                             "history": history, "partial": True})
            log(f"step {step + 1:5d}  train loss {loss.item():.3f}  val bpb {bpb:.3f}  "
                f"{elapsed / 60:.1f} min  {(step + 1) * cfg.batch_size * cfg.n_ctx / elapsed:.0f} tok/s")
    wall = time.perf_counter() - t0

    report = {
        "config": dataclasses.asdict(cfg), "parameters": n_params, "train_tokens": int(len(ids)),
        "steps_done": cfg.steps, "wall_minutes": round(wall / 60, 1), "best_step": best[1],
        "best_val_bits_per_byte": round(best[0], 4), "torch": torch.__version__, "threads": torch.get_num_threads(), "history": history,
    }
    save(model, tokenizer, out, report)
    log(f"saved to {out} after {wall / 60:.1f} min")
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="large")
    parser.add_argument("--out", type=Path, required=True, help="folder for weights and tokenizer")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    from lmguide.data import austen

    torch.set_num_threads(args.threads)
    cfg = PRESETS[args.preset]
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    train(cfg, args.out, austen("train"), austen("val"))


if __name__ == "__main__":
    main()
