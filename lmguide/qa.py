"""Extractive question answering: the answer is a span copied out of the context.

A QA head on an encoder (MiniLM + one linear layer) gives every token two logits:
how much the answer *starts* there and how much it *ends* there. Decoding picks the
pair with the largest ``start + end`` among legal spans (start <= end, both in the
context, at most ``max_answer_len`` tokens); taking the two argmaxes separately can
give an end before the start, or a span inside the question.

Contexts longer than the window are cut into overlapping windows (``stride`` tokens
shared between neighbours, so an answer cut by one border is whole in the next); the
best span over all windows wins, mapped back to characters with the offset mapping.

No-answer rule: position 0 ([CLS]) is where training points when the answer is not
in a window, so ``null_score = start[0] + end[0]``. Over windows we keep the smallest
null score (a question is unanswerable only if every window says so) and answer ""
when ``null_score > score + null_margin``. ``null_margin=math.inf`` never abstains
(use it for SQuAD v1.1, where every question has an answer).

The question files (building, checking and loading the SQuAD-format data) are plumbing and
live in ``lmguide.qa_data``. SQuAD (the Stanford Question Answering Dataset) is the standard
extractive QA benchmark; "SQuAD format" is its JSON layout, which our data follows.

Metrics follow the official SQuAD v1.1 script (lowercase, drop punctuation and the
articles a/an/the, collapse spaces; F1 over word bags; best over gold answers), except
that two answers that normalise to nothing count as equal (F1 1, as in SQuAD v2), so
that an exact match always has F1 1.
"""
from __future__ import annotations

import collections
import math
import re
import string

import torch

from lmguide.qa_data import iter_questions

# ---------------------------------------------------------------------------- metrics

_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no a/an/the, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the two answers are equal after normalisation, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    """Harmonic mean of word precision and recall between two answers, in [0, 1]."""
    pred_words, true_words = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred_words or not true_words:
        return float(pred_words == true_words)  # both empty: equal; one empty: nothing in common
    common = collections.Counter(pred_words) & collections.Counter(true_words)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_words), overlap / len(true_words)
    return 2 * precision * recall / (precision + recall)


def squad_evaluate(predictions: dict[str, str], dataset: dict) -> dict:
    """Exact match and F1 in percent (best over each question's gold answers), plus the count."""
    questions = list(iter_questions(dataset))
    known = {q["id"] for q in questions}
    unknown = sorted(set(predictions) - known)
    missing = [q["id"] for q in questions if q["id"] not in predictions]
    if not questions:
        raise ValueError("the dataset has no questions; pass a SQuAD dict such as load_split('dev')")
    if unknown:
        raise ValueError(f"predictions has {len(unknown)} id(s) not in the dataset (first: {unknown[0]!r}); "
                         f"evaluate on the dataset you predicted from")
    if missing:
        raise ValueError(f"predictions lack {len(missing)} of {len(questions)} question ids (first: "
                         f"{missing[0]!r}); predict every question or evaluate on a smaller dataset")
    em = sum(max(exact_match(predictions[q["id"]], a) for a in q["answers"]) for q in questions)
    f1 = sum(max(f1_score(predictions[q["id"]], a) for a in q["answers"]) for q in questions)
    return {"exact_match": 100 * em / len(questions), "f1": 100 * f1 / len(questions), "count": len(questions)}


# ---------------------------------------------------------------------- span decoding


def best_span(start_logits, end_logits, context_mask, max_answer_len: int = 30,
              top_n: int | None = 20) -> tuple[int, int, float]:
    """The legal token span (start, end) with the largest start + end logit, and that score.

    Legal: start <= end, both where ``context_mask`` is True, end - start + 1 <= max_answer_len.
    ``top_n`` pairs only the top_n starts with the top_n ends (the usual shortcut); if none of
    those pairs is legal, or ``top_n`` is None, every pair is searched, so a legal span always comes back.
    """
    start = torch.as_tensor(start_logits, dtype=torch.float32)
    end = torch.as_tensor(end_logits, dtype=torch.float32)
    mask = torch.as_tensor(context_mask, dtype=torch.bool)
    if start.dim() != 1 or end.shape != start.shape or mask.shape != start.shape:
        raise ValueError(f"best_span needs three 1-D sequences of one length (got {tuple(start.shape)}, "
                         f"{tuple(end.shape)}, {tuple(mask.shape)}); pass one window's logits at a time")
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len must be >= 1 (got {max_answer_len})")
    if not mask.any():
        raise ValueError("context_mask has no True position, so there is no span to choose; "
                         "mark the context tokens (sequence id 1) as True")
    if not (torch.isfinite(start).all() and torch.isfinite(end).all()):
        raise ValueError("the logits contain inf or nan; check the model output before decoding")
    positions = torch.arange(start.shape[0])
    length = positions[None, :] - positions[:, None] + 1           # (T, T): tokens in span i..j
    legal = (length >= 1) & (length <= max_answer_len) & mask[:, None] & mask[None, :]  # (T, T)
    if top_n:
        k = min(top_n, int(mask.sum()))
        top_starts = start.masked_fill(~mask, -math.inf).topk(k).indices   # (k,)
        top_ends = end.masked_fill(~mask, -math.inf).topk(k).indices       # (k,)
        shortlist = torch.zeros_like(legal)
        shortlist[top_starts[:, None], top_ends[None, :]] = True
        if (legal & shortlist).any():
            legal = legal & shortlist
    scores = (start[:, None] + end[None, :]).masked_fill(~legal, -math.inf)  # (T, T)
    s, e = divmod(int(scores.argmax()), start.shape[0])
    return s, e, float(scores[s, e])


def check_pair(question, context, tokenizer, max_length: int, stride: int) -> None:
    """Raise one clear ValueError for an empty question or context, or a question too long for the window."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"the question is empty ({question!r}); ask it in words, e.g. 'Who is Mr Darcy?'")
    if not isinstance(context, str) or not context.strip():
        raise ValueError(f"the context is empty ({context!r}); pass the passage that should hold the answer")
    n_question = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = max_length - n_question - tokenizer.num_special_tokens_to_add(pair=True)
    if room <= stride:  # the tokenizer would panic (a Rust error, not a Python one)
        raise ValueError(f"the question takes {n_question} tokens, leaving {room} context tokens per window of "
                         f"max_length={max_length}, not more than stride={stride}; shorten the question, "
                         f"raise max_length or lower stride")


@torch.no_grad()
def answer_many(pairs: list[tuple[str, str]], model, tokenizer, max_length: int = 384, stride: int = 128,
                max_answer_len: int = 30, null_margin: float = 0.0, top_n: int | None = 20,
                batch_size: int = 16) -> list[dict]:
    """Answer each (question, context) pair; one result dict per pair, as in ``answer_question``."""
    pairs = list(pairs)
    for question, context in pairs:
        check_pair(question, context, tokenizer, max_length, stride)
    if not pairs:
        return []
    enc = tokenizer([q for q, _ in pairs], [c for _, c in pairs], truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=True, return_tensors="pt")
    pair_of_window = enc.pop("overflow_to_sample_mapping").tolist()   # (W,) which pair each window is from
    offsets = enc.pop("offset_mapping").tolist()                      # (W, T, 2) character span of each token
    model.eval()
    device = next(model.parameters()).device
    starts, ends = [], []
    for i in range(0, len(pair_of_window), batch_size):
        out = model(**{name: v[i:i + batch_size].to(device) for name, v in enc.items()})
        starts.append(out.start_logits.float().cpu())                 # (b, T)
        ends.append(out.end_logits.float().cpu())
    start_logits, end_logits = torch.cat(starts), torch.cat(ends)     # (W, T)

    best = [None] * len(pairs)          # per pair: (score, start char, end char)
    null = [math.inf] * len(pairs)      # per pair: smallest [CLS] score over its windows
    for w, p in enumerate(pair_of_window):
        context_mask = [sid == 1 for sid in enc.sequence_ids(w)]
        s, e, score = best_span(start_logits[w], end_logits[w], context_mask, max_answer_len, top_n)
        null[p] = min(null[p], float(start_logits[w, 0] + end_logits[w, 0]))
        if best[p] is None or score > best[p][0]:
            best[p] = (score, offsets[w][s][0], offsets[w][e][1])
    results = []
    for (question, context), (score, a, b), null_score in zip(pairs, best, null):
        answer = "" if null_score > score + null_margin else context[a:b]
        results.append({"answer": answer, "start": a, "end": b, "score": score, "null_score": null_score})
    return results


def answer_question(question: str, context: str, model, tokenizer, max_length: int = 384, stride: int = 128,
                    max_answer_len: int = 30, null_margin: float = 0.0, top_n: int | None = 20) -> dict:
    """Answer one question from ``context``.

    Returns ``{"answer", "start", "end", "score", "null_score"}``: ``start``/``end`` are the
    character offsets of the best span (``context[start:end]``), given even when ``answer``
    is "" because the no-answer rule (module docstring) chose to abstain.
    """
    return answer_many([(question, context)], model, tokenizer, max_length=max_length, stride=stride,
                       max_answer_len=max_answer_len, null_margin=null_margin, top_n=top_n)[0]


# ------------------------------------------------------------------ training labels


def prepare_train_features(dataset: dict, tokenizer, max_length: int = 384, stride: int = 128) -> dict:
    """Tokenize every question with its context into windows; label the answer's token span.

    Returns tensors ``input_ids``, ``token_type_ids``, ``attention_mask`` (W, max_length) and
    ``start_positions``, ``end_positions`` (W,), plus ``question_index`` (W,): which question
    each window came from. A window that does not hold the whole answer (or a question with
    no answer) is labelled (0, 0), the [CLS] token, which the no-answer rule in ``lmguide.qa`` reads.
    """
    questions = list(iter_questions(dataset))
    enc = tokenizer([q["question"] for q in questions], [q["context"] for q in questions],
                    truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding="max_length", return_tensors="pt")
    question_index = enc.pop("overflow_to_sample_mapping")  # (W,)
    offsets = enc.pop("offset_mapping").tolist()            # (W, T, 2) characters of each token
    starts, ends = [], []
    for w, q in enumerate(question_index.tolist()):
        context_tokens = [i for i, sid in enumerate(enc.sequence_ids(w)) if sid == 1]
        first, last = context_tokens[0], context_tokens[-1]
        a_start = questions[q]["answer_starts"][0] if questions[q]["answers"] else -1
        a_end = a_start + len(questions[q]["answers"][0]) if questions[q]["answers"] else -1
        if a_start < 0 or offsets[w][first][0] > a_start or offsets[w][last][1] < a_end:
            starts.append(0)  # answer not wholly in this window: point at [CLS]
            ends.append(0)
        else:
            starts.append(max(i for i in context_tokens if offsets[w][i][0] <= a_start))
            ends.append(min(i for i in context_tokens if offsets[w][i][1] >= a_end))
    return {**enc, "start_positions": torch.tensor(starts), "end_positions": torch.tensor(ends),
            "question_index": question_index}
