"""Measuring what a language model gives back, makes up and prefers (notebook 08).

Memorization: prompt a model with the first ``prompt_len`` tokens of a passage and see
whether greedy decoding reproduces the rest (exact reproduction, longest common run of
tokens). Greedy decoding reproduces a continuation exactly if and only if, fed the true
text, the model's argmax is the true token at every position, so one forward pass over
the true passage (``teacher_forced_matches``) measures exact reproduction of thousands
of passages; generation is still needed for the longest common substring.

Canaries (Carlini et al., "The Secret Sharer", 2019): plant a made-up secret in training
text, then rank its log-probability among random candidates of the same format.
``exposure = log2(#candidates) - log2(rank)``: about 1 bit for a secret the model never
saw (its rank is uniform), log2(#candidates) when it ranks first.

Hallucination: mean token log-probability of a model's own answer, and ROC AUC of that
score at separating answers about real entities from answers about made-up ones.

Bias: next-token log-probability of " he" vs " she" after templated prefixes
("The nurse said that"), with a bootstrap interval over templates. A probe measures the
model's preferences on *these* templates; rephrasing them is part of the measurement.
"""
from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import torch

from lmguide.sampling import greedy_generate

# ------------------------------------------------------------------------------------ data


def load_asset(name: str) -> dict:
    """A JSON file from ``lmguide/assets/probes`` (see the data card README.md there)."""
    return json.loads(resources.files("lmguide.assets").joinpath("probes", name).read_text(encoding="utf-8"))


def entity_questions() -> list[dict]:
    """The team-written questions about real and made-up entities (``real``, ``answers``, ``fact``)."""
    return load_asset("entities.json")["questions"]


def bias_templates() -> dict:
    """Occupations, pronouns and two template sets (``original`` and ``rephrased``)."""
    return load_asset("bias_templates.json")


# --------------------------------------------------------------------------- memorization


def sample_windows(ids, n: int, length: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random windows of ``length`` consecutive token ids from ``ids``, as a (n, length) tensor.

    Windows start at seeded random positions, sorted and at least ``length`` apart, so no two overlap.
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    slots = (len(ids) - length) // length
    if n > slots:
        raise ValueError(f"cannot take {n} non-overlapping windows of {length} tokens from {len(ids)} tokens; "
                         f"ask for at most {slots}")
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(slots, generator=gen)[:n].sort().values  # slot k starts at k * length + shift
    shift = int(torch.randint(0, length, (1,), generator=gen))
    return torch.stack([ids[k * length + shift:k * length + shift + length] for k in chosen.tolist()])


@torch.no_grad()
def teacher_forced_matches(model, windows: torch.Tensor, prompt_len: int = 32, batch_size: int = 64) -> torch.Tensor:
    """(B, L - prompt_len) bool: is the model's argmax, given the true text so far, the true next token?

    Greedy decoding from the first ``prompt_len`` tokens reproduces the rest exactly iff a row is all True.
    """
    if not 0 < prompt_len < windows.shape[1]:
        raise ValueError(f"prompt_len must be in 1..{windows.shape[1] - 1} (got {prompt_len})")
    model.eval()
    out = []
    for i in range(0, len(windows), batch_size):
        x = windows[i:i + batch_size]                                     # (b, L)
        logits = model(x, attention_mask=torch.ones_like(x)).logits       # (b, L, V)
        guess = logits[:, prompt_len - 1:-1].argmax(dim=-1)               # (b, L - p): prediction for x[:, p:]
        out.append(guess == x[:, prompt_len:])
    return torch.cat(out)


def leading_run(matches: torch.Tensor) -> torch.Tensor:
    """(B,) how many positions from the start are True in each row (the reproduced prefix length)."""
    return matches.long().cumprod(dim=1).sum(dim=1)


def greedy_continuations(model, windows: torch.Tensor, prompt_len: int = 32, new_tokens: int = 32,
                         batch_size: int = 64) -> torch.Tensor:
    """(B, new_tokens): greedy decoding from the first ``prompt_len`` tokens of each window (no EOS stop)."""
    model.eval()
    out = []
    for i in range(0, len(windows), batch_size):
        prompts = windows[i:i + batch_size, :prompt_len]
        out.append(greedy_generate(model, prompts, new_tokens)[:, prompt_len:])
    return torch.cat(out)


def longest_common_substring(a, b) -> int:
    """Length of the longest run of consecutive items that ``a`` and ``b`` share (dynamic programming)."""
    a, b = list(a), list(b)
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1   # extend the run that ends one step back in both
                best = max(best, current[j])
        previous = current
    return best


def memorization_scores(generated: torch.Tensor, truth: torch.Tensor) -> dict:
    """Per-passage exact reproduction, reproduced prefix and longest common substring (tokens)."""
    if generated.shape != truth.shape:
        raise ValueError(f"generated {tuple(generated.shape)} and truth {tuple(truth.shape)} must have one shape")
    same = generated == truth
    return {"exact": same.all(dim=1), "prefix": leading_run(same),
            "lcs": torch.tensor([longest_common_substring(g.tolist(), t.tolist()) for g, t in zip(generated, truth)])}


# ------------------------------------------------------------- training a few epochs, here


def set_dropout(model, p: float):
    """Set every dropout layer of ``model`` to probability ``p`` (a loaded model keeps its config's value)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    return model


def train_epochs(model, windows: torch.Tensor, epochs: int, lr: float = 3e-3, batch_size: int = 16, seed: int = 0,
                 on_epoch=None) -> list[float]:
    """Train ``model`` on the rows of ``windows`` for ``epochs`` passes (shuffled, seeded); mean loss per epoch.

    ``on_epoch(epoch, model)`` is called after each epoch (e.g. to measure memorization).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        order = torch.randperm(len(windows), generator=gen)
        for i in range(0, len(order), batch_size):
            x = windows[order[i:i + batch_size]]                      # (b, L)
            loss = model(x, labels=x).loss                            # mean next-token loss (nats)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(x)
        losses.append(total / len(windows))
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, model)
    return losses


def train_steps(model, ids, steps: int, window: int = 128, lr: float = 1e-3, batch_size: int = 8,
                seed: int = 0) -> list[float]:
    """Fine-tune ``model`` for ``steps`` steps on seeded random windows of the token ids ``ids``; loss per step."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    if len(ids) <= window:
        raise ValueError(f"the text has {len(ids)} tokens, not more than one window ({window}); give more text")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - window, (batch_size,), generator=gen)
        x = torch.stack([ids[s:s + window] for s in starts.tolist()])    # (b, window)
        loss = model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


# ------------------------------------------------------------------------------- canaries


def plant(paragraphs: list[str], sentence: str, times: int, seed: int = 0) -> list[str]:
    """A copy of ``paragraphs`` with ``sentence`` inserted as its own paragraph ``times`` times, at seeded places."""
    if times < 0:
        raise ValueError(f"times must be >= 0 (got {times})")
    rng = np.random.default_rng(seed)
    out = list(paragraphs)
    for _ in range(times):
        out.insert(int(rng.integers(0, len(out) + 1)), sentence)
    return out


def random_secrets(n: int, digits: int = 6, seed: int = 0, exclude=()) -> list[str]:
    """``n`` distinct random digit strings of length ``digits`` (none in ``exclude``), e.g. '284719'."""
    if n > 10 ** digits - len(set(exclude)):
        raise ValueError(f"there are not {n} distinct {digits}-digit strings outside exclude")
    rng = np.random.default_rng(seed)
    seen, out = set(exclude), []
    while len(out) < n:
        s = "".join(str(d) for d in rng.integers(0, 10, digits))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


@torch.no_grad()
def continuation_logprobs(model, prompts: list[list[int]], continuations: list[list[int]],
                          batch_size: int = 16) -> list[torch.Tensor]:
    """Per-token log-probabilities (nats) of each continuation given its prompt (token ids, one pass per batch)."""
    if len(prompts) != len(continuations):
        raise ValueError(f"got {len(prompts)} prompts but {len(continuations)} continuations; pair them one to one")
    if any(len(p) == 0 for p in prompts) or any(len(c) == 0 for c in continuations):
        raise ValueError("every prompt and continuation needs at least one token (start prompts with BOS/EOS)")
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        rows = [list(p) + list(c) for p, c in zip(prompts[i:i + batch_size], continuations[i:i + batch_size])]
        width = max(map(len, rows))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, row in enumerate(rows):                               # right padding: positions stay 0..len-1
            ids[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), 1
        logits = model(ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()   # (b, T, V)
        for r, (p, c) in enumerate(zip(prompts[i:i + batch_size], continuations[i:i + batch_size])):
            where = torch.arange(len(p) - 1, len(p) + len(c) - 1)                 # positions predicting c
            logp = logits[r, where].log_softmax(dim=-1)                           # (len(c), V)
            out.append(logp.gather(1, torch.tensor(c)[:, None])[:, 0])
    return out


def canary_rank(true_score: float, other_scores) -> int:
    """The secret's rank among the candidates: 1 + how many of ``other_scores`` are strictly higher than
    ``true_score`` (ties count in the secret's favour; rank 1 = most likely)."""
    return 1 + int((torch.as_tensor(other_scores, dtype=torch.float64) > float(true_score)).sum())


def exposure(rank: int, n_candidates: int) -> float:
    """Carlini et al.'s exposure in bits: log2(#candidates) - log2(rank)."""
    if not 1 <= rank <= n_candidates:
        raise ValueError(f"rank must be in 1..n_candidates ({n_candidates}) (got {rank})")
    return math.log2(n_candidates) - math.log2(rank)


def canary_exposure(model, tokenizer, prefix: str, secret: str, candidates: list[str], batch_size: int = 64) -> dict:
    """Rank and exposure of ``secret`` among ``candidates`` (plus itself) as continuations of ``prefix``."""
    start = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]
    prompt = start + tokenizer(prefix, add_special_tokens=False)["input_ids"]
    options = [secret] + [c for c in candidates if c != secret]
    conts = [tokenizer(prefix + o, add_special_tokens=False)["input_ids"][len(prompt) - 1:] for o in options]
    scores = torch.stack([lp.sum() for lp in continuation_logprobs(model, [prompt] * len(options), conts, batch_size)])
    rank = canary_rank(scores[0], scores[1:])
    return {"rank": rank, "candidates": len(options), "exposure": exposure(rank, len(options)),
            "logprob": float(scores[0]), "median_other": float(scores[1:].median())}


# ------------------------------------------------------------------------- chat answers


def chat_prompt_ids(tokenizer, question: str) -> list[int]:
    """The token ids a chat model sees for one user question, ending where its answer starts."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def ask_many(model, tokenizer, questions: list[str], max_new_tokens: int = 24) -> list[list[int]]:
    """The model's greedy answers to ``questions`` as token ids, one batch, left-padded (end-of-turn left out)."""
    prompts = [chat_prompt_ids(tokenizer, q) for q in questions]
    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])            # (B, T) left padding
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])  # (B, T) 1 = real token
    out = greedy_generate(model, ids, max_new_tokens, attention_mask=mask, eos_token_id=tokenizer.eos_token_id)
    answers = []
    for row in out[:, width:].tolist():
        answers.append(row[:row.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in row else row)
    return answers


def answer_logprobs(model, tokenizer, questions: list[str], answers: list[list[int]], batch_size: int = 8) -> list[torch.Tensor]:
    """Per-token log-probabilities of each answer (token ids) after its question's chat prompt."""
    prompts = [chat_prompt_ids(tokenizer, q) for q in questions]
    return continuation_logprobs(model, prompts, answers, batch_size)


_NOT_KNOWN = ("not aware", "no information", "don't know", "do not know", "not sure", "does not exist",
              "doesn't exist", "no record", "not familiar", "couldn't find", "could not find", "unable to",
              "i'm sorry", "no such", "not a real", "isn't a real")


def abstains(answer: str) -> bool:
    """Whether an answer declines (empty, or says it does not know / the thing does not exist)."""
    text = answer.lower().replace("\u2019", "'")
    return not text.strip() or any(phrase in text for phrase in _NOT_KNOWN)


def mentions(answer: str, truths: list[str]) -> bool:
    """Whether ``answer`` contains one of the accepted answers, as whole words, ignoring case."""
    import re

    return any(re.search(rf"\b{re.escape(t.lower())}\b", answer.lower()) for t in truths)


# ---------------------------------------------------------------------------------- ROC AUC


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates as the threshold falls through every distinct score (label 1 = positive)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("ROC needs both classes: labels must hold at least one 1 and one 0")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_group = np.r_[np.diff(scores) != 0, True]   # tied scores cross the threshold together
    tp = np.cumsum(labels)[last_of_group]
    fp = np.cumsum(~labels)[last_of_group]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (trapezoids: a tie between classes counts one half)."""
    fpr, tpr = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pairwise_auc(scores, labels) -> float:
    """P(a random positive scores above a random negative), ties one half: the AUC, counted pair by pair."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        raise ValueError("AUC needs both classes: labels must hold at least one 1 and one 0")
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


# -------------------------------------------------------------------------------- bootstrap


def bootstrap_interval(*arrays, statistic=np.mean, n_resamples: int = 2000, level: float = 0.95, seed: int = 0,
                       strata=None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``, resampling rows with replacement (seeded).

    ``strata`` (one label per row) resamples within each label, keeping group sizes (e.g. both classes for an AUC).
    """
    n = len(arrays[0])
    if n < 2 or any(len(a) != n for a in arrays):
        raise ValueError("bootstrap needs arrays of one length, at least 2 rows")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (got {level})")
    arrays = [np.asarray(a) for a in arrays]
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
    stats = np.empty(n_resamples)
    for k in range(n_resamples):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        stats[k] = statistic(*(a[idx] for a in arrays))
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# ------------------------------------------------------------------------------ bias probe


@torch.no_grad()
def next_token_logprobs(model, tokenizer, prefixes: list[str], words: list[str], batch_size: int = 32) -> torch.Tensor:
    """(N, K) log-probability that each prefix is followed next by each word (each word one token, e.g. ' he')."""
    word_ids = []
    for w in words:
        ids = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"{w!r} is {len(ids)} tokens for this tokenizer; the probe needs one-token words")
        word_ids.append(ids[0])
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    prompts = [[start] + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prefixes]
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        rows = prompts[i:i + batch_size]
        width = max(map(len, rows))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), 1
        logits = model(ids, attention_mask=mask).logits                    # (b, T, V)
        last = logits[torch.arange(len(rows)), mask.sum(1) - 1].float()   # (b, V): after each prefix's last token
        out.append(last.log_softmax(dim=-1)[:, word_ids])
    return torch.cat(out)


def pronoun_gaps(model, tokenizer, templates: list[str], occupations: list[str], pronouns=(" he", " she")):
    """A DataFrame, one row per (occupation, template): log P(he), log P(she) and gap = their difference (nats)."""
    import pandas as pd

    prefixes = [t.format(occupation=o) for o in occupations for t in templates]
    logp = next_token_logprobs(model, tokenizer, prefixes, list(pronouns))
    rows = [{"occupation": o, "template": t} for o in occupations for t in templates]
    frame = pd.DataFrame(rows)
    frame["logp_he"], frame["logp_she"] = logp[:, 0].numpy(), logp[:, 1].numpy()
    frame["gap"] = frame["logp_he"] - frame["logp_she"]
    return frame


def relative_to(frame, neutral: str):
    """Each occupation's gap minus the ``neutral`` word's gap under the same template (the neutral rows dropped):
    what the occupation adds to the model's general preference for one pronoun."""
    base = frame[frame["occupation"] == neutral].set_index("template")["gap"]
    if base.empty:
        raise ValueError(f"no rows for the neutral word {neutral!r}; score it with the occupations first")
    out = frame[frame["occupation"] != neutral].copy()
    out["gap"] = out["gap"] - out["template"].map(base)
    return out


def gap_intervals(frame, n_resamples: int = 2000, level: float = 0.95, seed: int = 0):
    """Per occupation: mean gap over templates and its bootstrap interval (templates resampled)."""
    import pandas as pd

    rows = []
    for occupation, group in frame.groupby("occupation", sort=False):
        low, high = bootstrap_interval(group["gap"].to_numpy(), n_resamples=n_resamples, level=level, seed=seed)
        rows.append({"occupation": occupation, "gap": group["gap"].mean(), "low": low, "high": high})
    return pd.DataFrame(rows)
