"""Fine-tuning a causal LM with transformers' Trainer on a CPU, fully or with LoRA (notebook 04).

The pieces the article's Trainer snippet leaves out, each one line here:

    tokenizer = ensure_pad_token(tokenizer)                 # GPT-2 style tokenizers have none
    train = CausalLMDataset(tokenizer, texts, block_size)   # text -> fixed-length blocks of ids
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)   # pads and builds labels
    args = training_arguments(out_dir, max_steps=...)       # use_cpu=True, report_to=[]
    trainer = make_trainer(model, args, train, held_out, tokenizer)

``add_peft_lora`` wraps a model with peft's LoRA and checks how many layers it wrapped (peft skips
target names that match nothing without a word). ``step_cost`` times one optimizer step and
accounts for its memory; ``measure_in_subprocess`` does the same in a fresh process
(``lmguide.workers``) and adds that process's peak RSS, for models too big to fine-tune inside a
notebook.
"""
from __future__ import annotations

import contextlib
import time

import torch

from lmguide._util import peak_rss_mib, quiet_peft, rss_mib  # quiet_peft: notebook 04 uses it from here

def ensure_pad_token(tokenizer):
    """Give the tokenizer a pad token (its EOS token) when it has none; returns the tokenizer."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an EOS token; add one with "
                             "tokenizer.add_special_tokens({'pad_token': '<pad>'}) and resize the embeddings")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class CausalLMDataset(torch.utils.data.Dataset):
    """Texts as blocks of ``block_size`` token ids for next-token training.

    Each text is tokenized and followed by the EOS token, all of them are concatenated, and the
    stream is cut into blocks (the short tail is dropped), as transformers' ``run_clm`` example
    does. Every example is ``{"input_ids": [...]}``; the collator makes the labels.
    """

    def __init__(self, tokenizer, texts, block_size: int):
        if isinstance(texts, str):
            texts = [texts]
        if block_size < 2:
            raise ValueError(f"block_size must be >= 2 (got {block_size}); a block needs an input and a target")
        eos = tokenizer.eos_token_id
        stream = []
        for text in texts:
            stream += tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            stream += [eos] if eos is not None else []
        n = len(stream) // block_size
        if n == 0:
            raise ValueError(f"the texts hold {len(stream)} tokens, fewer than one block of {block_size}; "
                             f"give more text or a smaller block_size")
        self.blocks = [stream[i * block_size:(i + 1) * block_size] for i in range(n)]
        self.block_size, self.tokens = block_size, n * block_size

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return {"input_ids": list(self.blocks[i])}


def collator(tokenizer):
    """transformers' causal-LM collator: pads a batch and copies input_ids to labels (pad -> -100).

    It masks *every* position holding the pad token id; with pad = EOS that includes the EOS
    between documents, so the model is never trained to end a document. Fine here; a model
    that must learn to stop needs a pad token of its own.
    """
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(ensure_pad_token(tokenizer), mlm=False)


def training_arguments(output_dir, **overrides):
    """``TrainingArguments`` for a CPU run that writes nothing but what you ask for.

    ``use_cpu=True`` (transformers 5 removed ``no_cuda``), ``report_to=[]`` (no W&B/TensorBoard),
    no checkpoints, no tqdm bar on stderr, seeded. Anything else goes in ``overrides``.
    """
    from transformers import TrainingArguments

    settings = dict(output_dir=str(output_dir), use_cpu=True, report_to=[], save_strategy="no",
                    disable_tqdm=True, seed=0, data_seed=0, dataloader_num_workers=0,
                    per_device_train_batch_size=8, per_device_eval_batch_size=8, learning_rate=1e-3,
                    weight_decay=0.0, warmup_steps=0, lr_scheduler_type="linear", logging_steps=5)
    settings.update(overrides)
    return TrainingArguments(**settings)


def make_trainer(model, args, train_dataset, eval_dataset=None, tokenizer=None, progress: bool = False):
    """A ``Trainer`` with the causal-LM collator that logs to ``trainer.state.log_history`` only.

    Trainer's own printer would print a dict per log step; a notebook shows the table instead.
    ``progress=True`` keeps Trainer's tqdm bar (for recipes; pass ``disable_tqdm=False`` too).
    """
    from transformers import PrinterCallback, ProgressCallback, Trainer

    with quiet_peft():
        trainer = Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                          data_collator=collator(tokenizer))
    for callback in (PrinterCallback,) if progress else (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    return trainer


def train(trainer):
    """``trainer.train()`` with peft's FutureWarning kept quiet; returns the TrainOutput."""
    with quiet_peft():
        return trainer.train()


def loss_history(trainer):
    """Training and evaluation loss by step, from ``trainer.state.log_history``, as a DataFrame."""
    import pandas as pd

    rows = {}
    for record in trainer.state.log_history:
        step = record.get("step")
        if "loss" in record:
            rows.setdefault(step, {})["train loss"] = record["loss"]
        if "eval_loss" in record:
            rows.setdefault(step, {})["eval loss"] = record["eval_loss"]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("step").sort_index()


# --- the support domain: what notebook 04 and its recipe train and score on ----------------------
AUSTEN_PROBE_CHARS = 8_000
SUPPORT_PROMPTS = (
    "Customer: My kettle shows E4. What should I do?\nAgent:",
    "Customer: The app cannot find my Wi-Fi network.\nAgent:",
    "Customer: How long is the warranty on the K2?\nAgent:",
    "Customer: How do I cancel Kettlewise Plus?\nAgent:",
)


def support_texts(split: str = "train") -> list[str]:
    """The support documents of ``split`` as texts (title line, then the body)."""
    from lmguide.data import support_documents

    return [f"{d['title']}\n{d['text']}" for d in support_documents(split)]


def held_out_texts() -> dict:
    """The two held-out texts a domain fine-tune is scored on: the new domain and what it may forget.

    ``support``: the whole held-out support split. ``austen``: the first ``AUSTEN_PROBE_CHARS``
    characters of the held-out Austen split (the whole split takes SmolLM2 minutes on 2 cores).
    """
    from lmguide.data import austen, support

    return {"support": support("test"), "austen": austen("test")[:AUSTEN_PROBE_CHARS]}


def least_forgetting(points, learnt: float) -> float:
    """The least forgetting among ``points`` that learnt at least ``learnt``; NaN when none got that far.

    ``points``: rows with ``"learnt"`` (held-out bits per byte gained on the new domain) and ``"forgot"``
    (bits per byte lost on the old one), e.g. one method's runs at several learning rates and steps.
    Read as a function of ``learnt`` it is the method's frontier: the best trade it has shown. Two
    methods compared at the same ``learnt`` are compared at equal learning, whatever steps or learning
    rate each needed to get there.
    """
    reached = [p["forgot"] for p in points if p["learnt"] >= learnt]
    return min(reached) if reached else float("nan")


# --- LoRA through peft ------------------------------------------------------------------------
def add_peft_lora(model, target_modules, r: int = 8, alpha: int = 16, dropout: float = 0.0,
             fan_in_fan_out: bool | None = None, expect: int | None = None, init_lora_weights=True):
    """Wrap ``model`` with peft's LoRA on ``target_modules``; returns a new ``PeftModel`` (the from-scratch
    version that changes a model in place is in :mod:`lmguide.lora`).

    ``fan_in_fan_out`` defaults to True for GPT-2's ``Conv1D`` layers (their weight is stored
    (in, out)). peft wraps whatever matches and skips target names that match nothing, so
    the number of wrapped modules is checked: against ``expect`` when given, and every name
    must match at least one module.
    """
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    from lmguide.lora import matching_modules

    target_modules = list(target_modules)
    missing = [t for t in target_modules if not matching_modules(model, [t])]
    if missing:
        raise ValueError(f"no module of this {type(model).__name__} is called {missing[0]!r}; "
                         f"linear layers it has: {', '.join(sorted(linear_layer_names(model)))}")
    wrapped = matching_modules(model, target_modules)
    if expect is not None and len(wrapped) != expect:
        raise ValueError(f"LoRA would wrap {len(wrapped)} modules, not the {expect} expected: {', '.join(wrapped)}")
    if fan_in_fan_out is None:
        fan_in_fan_out = isinstance(model.get_submodule(wrapped[0]), Conv1D)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        fan_in_fan_out=fan_in_fan_out, bias="none", init_lora_weights=init_lora_weights)
    with quiet_peft():
        peft_model = get_peft_model(model, config)
    n = sum(1 for _, m in peft_model.named_modules() if hasattr(m, "lora_A") and len(getattr(m, "lora_A", ())))
    if n != len(wrapped):
        raise RuntimeError(f"peft wrapped {n} modules but {len(wrapped)} match {target_modules}")
    return peft_model


def linear_layer_names(model) -> set[str]:
    """The short names of the model's Linear/Conv1D layers (what ``target_modules`` can name)."""
    from transformers.pytorch_utils import Conv1D

    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D))}


def count_parameters(model) -> dict:
    """Trainable and total parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}


# --- what one training step costs ---------------------------------------------------------------
@contextlib.contextmanager
def saved_activation_bytes():
    """Count the bytes autograd saves for the backward pass inside the block (parameters excluded).

    Yields a dict whose ``"bytes"`` grows as tensors are saved; each storage counts once.
    """
    seen, total = set(), {"bytes": 0}
    params = set()

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen and ptr not in params:
            seen.add(ptr)
            total["bytes"] += t.untyped_storage().nbytes()
        return t

    total["_params"] = params
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def memory_account(model, batch: torch.Tensor) -> dict:
    """MiB of the tensors one AdamW training step on ``batch`` (B, T) needs, counted, not sampled.

    Weights, gradients of the trainable parameters, AdamW's two moment buffers for them, and the
    activations autograd saves in the forward pass for the backward pass. The process needs
    more (the Python runtime, torch's own buffers, temporaries): see ``measure_in_subprocess``.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.train()
    with quiet_peft(), saved_activation_bytes() as saved:
        saved["_params"].update(p.untyped_storage().data_ptr() for p in model.parameters())
        loss = model(input_ids=batch, labels=batch).loss
    del loss
    model.train(was_training)
    mib = 2 ** 20
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in trainable)
    return {"trainable": sum(p.numel() for p in trainable),
            "weights MiB": weights / mib, "grads MiB": grads / mib, "AdamW state MiB": 2 * grads / mib,
            "activations MiB": saved["bytes"] / mib, "total MiB": (weights + 3 * grads + saved["bytes"]) / mib}


def step_cost(model, batch: torch.Tensor, repeats: int = 3, warmup: int = 1) -> dict:
    """Median seconds of one AdamW step (forward, backward, update) on ``batch`` (B, T), and its
    :func:`memory_account`."""
    from lmguide.timing import time_call

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    was_training = model.training
    model.train()

    def step():
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    with quiet_peft():
        timing = time_call(step, repeats=repeats, warmup=warmup)
    model.train(was_training)
    return {**memory_account(model, batch), "s/step": timing.median, "spread": timing.spread, "runs": timing.seconds}


def compare_step_costs(setups: dict, repeats: int = 3, warmup: int = 1) -> "pd.DataFrame":
    """Time one AdamW step for several ``name -> (model, batch)`` set-ups, runs interleaved; one row each.

    Rounds run one step of every set-up (A, B, C, A, B, C, ...), so background load slows each
    alike. Columns: trainable parameters, median s/step, spread, and the memory account of
    :func:`step_cost` (MiB). The models are trained by this: pass copies you can throw away.
    """
    import pandas as pd

    from lmguide.timing import interleaved

    steps = {}
    for name, (model, batch) in setups.items():
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        model.train()

        def step(model=model, batch=batch, optimizer=optimizer):
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()

        steps[name] = step
    with quiet_peft():
        timings = interleaved(steps, repeats, warmup)
    rows = {}
    for name, (model, batch) in setups.items():
        rows[name] = {**memory_account(model, batch), "s/step": timings[name].median,
                      "spread": timings[name].spread}
    return pd.DataFrame.from_dict(rows, orient="index")


def measure_in_subprocess(model_name: str, mode: str, batch_size: int, seq_len: int, repeats: int = 3,
                          threads: int = 2) -> dict:
    """:func:`step_cost` for a zoo model in a fresh process of its own (``lmguide.workers``), plus that
    process's ``"peak RSS MiB"`` and the ``"training RAM MiB"`` it added to it by loading and training.

    For a step too big to take inside a notebook's memory budget (full fine-tuning of
    SmolLM2 in fp32 with AdamW needs about 4 x its 538 MB of weights).
    """
    from lmguide import workers

    if mode not in ("full", "lora"):
        raise ValueError(f"mode must be 'full' or 'lora' (got {mode!r})")
    return workers.run_or_raise(f"measuring {model_name} {mode}", step_cost_in_this_process, model_name, mode,
                                batch_size, seq_len, repeats, threads)


LORA_TARGETS = {"gpt2": ["c_attn", "c_proj"], "llama": ["q_proj", "v_proj"]}


def step_cost_in_this_process(model_name: str, mode: str, batch_size: int, seq_len: int, repeats: int = 3,
                              threads: int = 2) -> dict:
    """One zoo model, trained fully or with LoRA (:data:`LORA_TARGETS`): its :func:`step_cost` on seeded random
    ids and this process's peak RSS (MiB). Peak memory is the process's: run it through
    :func:`measure_in_subprocess`."""
    from lmguide import zoo

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    before = rss_mib()
    model, _ = zoo.load(model_name)
    if mode == "lora":
        targets = LORA_TARGETS.get(model.config.model_type)
        if targets is None:
            raise ValueError(f"no LoRA targets known for a {model.config.model_type} model; "
                             f"known: {', '.join(LORA_TARGETS)}")
        model = add_peft_lora(model, targets)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), generator=gen)
    t0 = time.perf_counter()
    cost = step_cost(model, batch, repeats=repeats)
    peak = peak_rss_mib()
    cost.update({"model": model_name, "mode": mode, "batch": batch_size, "seq": seq_len,
                 "wall s": time.perf_counter() - t0, "peak RSS MiB": peak, "training RAM MiB": peak - before})
    return cost
