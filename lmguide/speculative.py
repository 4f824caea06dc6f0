"""Speculative decoding, greedy: a small draft model guesses, a large target model checks (notebook 09).

    out = speculative.generate(target, draft, prompt_ids, max_new_tokens=64, k=4)
    out.tokens                     # exactly what target.generate(prompt_ids, 64) gives, up to near-ties
    out.acceptance, out.rounds     # share of drafted tokens the target kept; verify calls made
    speculative.generate_by_text(target, draft, target_prompt, draft_prompt, 64, k=4)  # different tokenizers
    speculative.generate_proposed(target, speculative.prompt_lookup, prompt_ids, 64)   # drafts copied from the prompt
    speculative.expected_tokens_per_round(a, k), speculative.predicted_speedup(a, k, draft_step, verify, step)

Each **round**: the draft proposes ``k`` tokens one at a time (cheap steps); the target reads the last
token it has not yet seen together with all ``k`` proposals in **one** call, which gives its own
greedy choice after each of them; the longest run of proposals that agrees with those choices is
kept, plus the target's own token after that run (so a round always adds at least one token, and a
draft that is always wrong still yields the target's text, one token a round). Rejected positions are
cut from both caches (:meth:`lmguide.engines.Engine.truncate`). Every kept token is the target's
argmax in its verify call, so the text is the target's greedy text; it can differ from
``target.generate`` only where a k-token call and a one-token call round differently and the top two
logits are nearly tied (:func:`first_difference` reports the margin there).

Two engines with the same tokenizer draft **by token id** (:func:`generate`); otherwise the draft's
text is re-tokenized for the target (:func:`generate_by_text`), as transformers' universal assisted
decoding does: the draft reads the text so far in its own tokens, its proposal is decoded to text and
encoded by the target's tokenizer, and the target keeps what agrees with its own choices.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from lmguide.engines.base import Engine, as_token_ids


@dataclass
class Result:
    """What one speculative run produced and how: the new tokens (the target's ids) and its counts."""
    tokens: list[int] = field(default_factory=list)
    rounds: int = 0          # verify calls of the target
    proposed: int = 0        # draft tokens offered to the target
    accepted: int = 0        # of those, kept
    seconds: float = 0.0
    accepted_per_round: list[int] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        """Share of the drafted tokens the target kept (0 when nothing was drafted)."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_round(self) -> float:
        return len(self.tokens) / self.rounds if self.rounds else 0.0


def _finish(target: Engine, prompt_length: int, out: Result, start: float) -> Result:
    """Leave the target's cache as plain decoding would (the prompt and every new token but the last: a last
    round's extra kept tokens, cut by max_new_tokens or an EOS, are dropped) and stop the clock."""
    target.truncate(min(target.n_cached, prompt_length + len(out.tokens) - 1))
    out.seconds = time.perf_counter() - start
    return out


def _keep(out: Result, target: Engine, proposal: list[int], n: int, own: int, room: int, stop_at_eos: bool) -> bool:
    """Count one round in ``out`` and append its kept tokens (the ``n`` agreeing proposals, then the target's
    own), at most ``room`` of them; True when an EOS token ended the text."""
    out.rounds += 1
    out.proposed += len(proposal)
    out.accepted += n
    out.accepted_per_round.append(n)
    for token in (proposal[:n] + [own])[:room]:
        out.tokens.append(token)
        if stop_at_eos and token == target.eos_token_id:
            return True
    return False


def _begin(max_new_tokens: int, k: int, *prompts) -> list[list[int]]:
    """Check the arguments and turn each engine's prompt into a list of ids (one sentence on what is wrong)."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1 (got {k}); it is how many tokens the draft proposes a round")
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1 (got {max_new_tokens})")
    prompts = [as_token_ids(p).tolist() for p in prompts]
    if not all(prompts):
        raise ValueError("the prompt is empty (0 tokens); give the models at least one token to continue")
    return prompts


def same_tokenizer(a: Engine, b: Engine, probe: str = "Speculative decoding, 1 2 3: ok?") -> bool:
    """Whether two engines' tokenizers agree (same vocabulary size, same ids for a probe text, same EOS):
    the condition for drafting by token id."""
    return (len(a.tokenizer) == len(b.tokenizer) and a.eos_token_id == b.eos_token_id
            and a.encode(probe) == b.encode(probe))


def _propose(draft: Engine, unseen: list[int], k: int) -> list[int]:
    """The draft reads its ``unseen`` tokens and proposes ``k`` greedy tokens; its cache then holds all but the
    last proposal (that one is fed next round only if it is kept)."""
    logits = draft.eval(unseen)[-1]
    proposal = [int(logits.argmax())]
    for _ in range(k - 1):
        proposal.append(int(draft.eval(proposal[-1:])[-1].argmax()))
    return proposal


def _verify(target: Engine, last: int, proposal: list[int]) -> tuple[int, int]:
    """One target call on ``[last] + proposal``: how many proposals agree with its greedy choices, and its own next
    token after them. The cache is cut back to the kept tokens."""
    before = target.n_cached
    rows = target.eval([last] + proposal)  # row i: the target's prediction after [last] + proposal[:i]
    choices = rows.argmax(dim=-1).tolist()
    n = 0
    while n < len(proposal) and proposal[n] == choices[n]:
        n += 1
    target.truncate(before + 1 + n)  # keep last and the n agreeing proposals; the rest leaves no trace
    return n, choices[n]


def generate(target: Engine, draft: Engine, prompt_ids, max_new_tokens: int, k: int = 4,
             stop_at_eos: bool = True) -> Result:
    """Greedy speculative decoding by token id (the two engines share a tokenizer: :func:`same_tokenizer`)."""
    (prompt,) = _begin(max_new_tokens, k, prompt_ids)
    start = time.perf_counter()
    out = Result()
    target.reset(), draft.reset()
    if len(prompt) > 1:  # both caches hold all but the last prompt token, which the first round reads
        target.prefill(prompt[:-1]), draft.prefill(prompt[:-1])
    last, draft_unseen = prompt[-1], [prompt[-1]]
    while len(out.tokens) < max_new_tokens:
        room = max_new_tokens - len(out.tokens)
        proposal = _propose(draft, draft_unseen, min(k, room))
        n, own = _verify(target, last, proposal)
        # the draft's cache holds last + proposal[:-1]; keep last + the agreeing ones it has seen
        draft.truncate(draft.n_cached - (len(proposal) - 1) + min(n, len(proposal) - 1))
        draft_unseen = proposal[len(proposal) - 1:n] + [own]  # the last proposal, if kept, then own
        if _keep(out, target, proposal, n, own, room, stop_at_eos):
            break
        last = own
    return _finish(target, len(prompt), out, start)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def generate_by_text(target: Engine, draft: Engine, target_prompt_ids, draft_prompt_ids, max_new_tokens: int,
                     k: int = 4, stop_at_eos: bool = True) -> Result:
    """Greedy speculative decoding across tokenizers: each engine has its own prompt ids (the same request in
    each one's format); the draft reads the text generated so far in its own tokens and proposes ``k`` of
    them, which are decoded and encoded again in the target's tokens before the target checks them."""
    t_prompt, d_prompt = _begin(max_new_tokens, k, target_prompt_ids, draft_prompt_ids)
    start = time.perf_counter()
    out = Result()
    target.reset(), draft.reset()
    if len(t_prompt) > 1:
        target.prefill(t_prompt[:-1])
    last, d_cached = t_prompt[-1], []  # d_cached: the draft ids its cache holds
    while len(out.tokens) < max_new_tokens:
        room = max_new_tokens - len(out.tokens)
        text = target.decode(out.tokens)
        d_ids = d_prompt + (draft.tokenizer.encode(text, add_special_tokens=False) if text else [])
        keep = min(_common_prefix(d_cached, d_ids), len(d_ids) - 1)  # re-read at least the last token
        draft.truncate(keep)
        proposal_d = _propose(draft, d_ids[keep:], k)
        d_cached = d_ids + proposal_d[:-1]
        proposal_text = draft.decode(proposal_d)
        proposal = target.tokenizer.encode(proposal_text, add_special_tokens=False)[:k] if proposal_text else []
        if proposal:
            n, own = _verify(target, last, proposal)
        else:  # the draft proposed nothing the target can read: one plain target step
            n, own = 0, int(target.eval([last])[-1].argmax())
        if _keep(out, target, proposal, n, own, room, stop_at_eos):
            break
        last = own
    return _finish(target, len(t_prompt), out, start)


def prompt_lookup(ids: list[int], k: int, max_ngram: int = 2) -> list[int]:
    """A draft without a model: find the last ``n`` tokens (n = ``max_ngram`` down to 1) earlier in ``ids``,
    at their first occurrence, and propose the ``k`` tokens that followed them there ([] when none did).
    Pays on text that copies its prompt: editing code, quoting a passage."""
    for n in range(min(max_ngram, len(ids) - 1), 0, -1):
        tail = ids[-n:]
        for i in range(len(ids) - n):
            if ids[i:i + n] == tail:
                return ids[i + n:i + n + k]
    return []


def generate_proposed(target: Engine, propose, prompt_ids, max_new_tokens: int, k: int = 4,
                      stop_at_eos: bool = True) -> Result:
    """Greedy speculative decoding with a proposer instead of a draft model: ``propose(ids, k)`` gets every id so
    far (prompt and new) and returns up to ``k`` guesses (e.g. :func:`prompt_lookup`); with none, the round is
    one plain target step."""
    (prompt,) = _begin(max_new_tokens, k, prompt_ids)
    start = time.perf_counter()
    out = Result()
    target.reset()
    if len(prompt) > 1:
        target.prefill(prompt[:-1])
    last = prompt[-1]
    while len(out.tokens) < max_new_tokens:
        room = max_new_tokens - len(out.tokens)
        proposal = [int(t) for t in propose(prompt + out.tokens, min(k, room))][:min(k, room)]
        if proposal:
            n, own = _verify(target, last, proposal)
        else:
            n, own = 0, int(target.eval([last])[-1].argmax())
        if _keep(out, target, proposal, n, own, room, stop_at_eos):
            break
        last = own
    return _finish(target, len(prompt), out, start)


def first_difference(target: Engine, prompt_ids, a: list[int], b: list[int]) -> dict | None:
    """Where two token sequences after the same prompt first differ, and the target's top-2 logit margin there
    (a near-tie explains a difference between a k-token and a one-token call); None when one is a prefix of
    the other."""
    n = _common_prefix(a, b)
    if n == min(len(a), len(b)):
        return None
    target.reset()
    logits = target.prefill(as_token_ids(list(as_token_ids(prompt_ids).tolist()) + a[:n]))
    top2 = torch.topk(logits.float(), 2).values
    return {"position": n, "a": a[n], "b": b[n], "top-2 margin": float(top2[0] - top2[1])}


# ---------------------------------------------------------------------------- the standard formula
def expected_tokens_per_round(acceptance: float, k: int) -> float:
    """Tokens a round adds when each drafted token is accepted with probability ``a`` independently:
    (1 - a^(k+1)) / (1 - a), from 1 (a = 0) to k + 1 (a = 1)."""
    if not 0 <= acceptance <= 1:
        raise ValueError(f"acceptance must be between 0 and 1 (got {acceptance})")
    if acceptance == 1:
        return float(k + 1)
    return (1 - acceptance ** (k + 1)) / (1 - acceptance)


def predicted_speedup(acceptance: float, k: int, draft_step_s: float, verify_s: float, target_step_s: float) -> float:
    """Speed-up over plain target decoding: tokens per round / (k draft steps + one verify of k tokens),
    against one token per target step."""
    round_s = k * draft_step_s + verify_s
    return expected_tokens_per_round(acceptance, k) / round_s * target_step_s


# ---------------------------------------------------------------------------- measuring it
def verify_seconds(engine: Engine, prompt_ids, n: int, repeats: int = 3):
    """:class:`lmguide.timing.Timing` of one call reading ``n`` tokens after the prompt (what verifying n - 1
    proposals costs; :meth:`lmguide.engines.Engine.time_step` rolls the cache back after each); n = 1 is one
    decode step."""
    prompt = as_token_ids(prompt_ids).tolist()
    engine.reset()
    engine.prefill(prompt)
    return engine.time_step(repeats=repeats, warmup=1, token_id=prompt[-1], tokens=n)


def sweep(target: Engine, draft, target_ids, ks=(1, 2, 4, 8), new_tokens: int = 64, repeats: int = 3,
          draft_ids=None) -> list[dict]:
    """Speculative decoding against plain greedy decoding of the same ``new_tokens``, for each k in ``ks``:
    acceptance, tokens per round, median seconds and spread of ``repeats`` runs (after a warm-up), speed-up,
    and whether the text is the plain one (else where it first differs and the target's top-2 margin there).
    ``draft`` is an engine (by id when the tokenizers agree, else by text from ``draft_ids``) or a proposer
    function for :func:`generate_proposed`."""
    from lmguide.timing import time_call

    plain = time_call(lambda: list(target.generate(target_ids, new_tokens)), repeats=repeats, warmup=1)
    want = plain.result
    if callable(draft) and not isinstance(draft, Engine):
        run = lambda k: generate_proposed(target, draft, target_ids, new_tokens, k)  # noqa: E731
    elif same_tokenizer(target, draft):
        run = lambda k: generate(target, draft, target_ids, new_tokens, k)  # noqa: E731
    else:
        if draft_ids is None:
            raise ValueError("the two tokenizers differ: give draft_ids, the same request in the draft's tokens")
        run = lambda k: generate_by_text(target, draft, target_ids, draft_ids, new_tokens, k)  # noqa: E731
    rows = []
    for k in ks:
        timing = time_call(lambda: run(k), repeats=repeats, warmup=1)
        out = timing.result
        diff = first_difference(target, target_ids, out.tokens, want) if out.tokens != want else None
        rows.append({"k": k, "acceptance": out.acceptance, "tokens per round": out.tokens_per_round,
                     "tokens": len(out.tokens), "seconds": timing.median, "spread": timing.spread,
                     "plain seconds": plain.median, "plain spread": plain.spread,
                     "speed-up": (len(out.tokens) / timing.median) / (len(want) / plain.median),
                     "same text": out.tokens == want, "first difference": diff})
    return rows
