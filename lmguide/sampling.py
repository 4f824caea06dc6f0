"""Decoding from scratch: how a language model turns next-token scores into text.

Filters (temperature, top-k, top-p) act on one step's logits; the loops
(greedy, sampling, beam search) call the model again and again. The tests
check the loops against ``model.generate`` token for token.

transformers 5 notes: the key/value cache is passed as ``model(..., cache=...)``
and comes back as ``output.cache`` (a ``DynamicCache``); the older name
``past_key_values`` still works but raises a FutureWarning (it goes in 5.40), which the test suite
turns into an error.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lmguide.eval import context_length  # noqa: F401  (None when the config does not say)


# --- input checks: one sentence each, naming the bad value and the fix ------------------------
def check_temperature(t, fix: str = "use greedy decoding for temperature 0") -> None:
    """Raise a one-sentence ``ValueError`` unless the temperature ``t`` is > 0 (NaN is refused too);
    ``fix`` is what the message tells the reader to do instead (distillation's: T = 1 is the plain softmax)."""
    if not t > 0:
        raise ValueError(f"temperature must be > 0 (got {t}); {fix}")


def _check_top_k(k):
    if k is not None and (isinstance(k, bool) or int(k) != k or k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (got {k}); use top_k=None to keep every token")


def _check_top_p(p):
    if p is not None and not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (got {p}); use top_p=None to keep every token")


def _check_generation_inputs(model, input_ids, max_new_tokens):
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, tokens), got {tuple(input_ids.shape)}; "
                         "add a batch dimension with input_ids[None]")
    if input_ids.shape[1] == 0:
        raise ValueError("the prompt is empty (0 tokens); give the model at least one token to continue")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1 (got {max_new_tokens}); ask for at least one new token")
    n_ctx, T = context_length(model), input_ids.shape[1]
    if n_ctx is not None and T + max_new_tokens > n_ctx:
        raise ValueError(f"prompt length {T} + max_new_tokens {max_new_tokens} = {T + max_new_tokens} exceeds "
                         f"the model's context of {n_ctx} tokens; shorten the prompt or ask for at most "
                         f"{max(n_ctx - T, 0)} new tokens")


# --- one step: reshape the next-token distribution --------------------------------------------
def apply_temperature(logits, t: float):
    """Divide logits by ``t``: t < 1 sharpens the distribution, t > 1 flattens it."""
    check_temperature(t)
    return logits / t


def top_k_filter(logits, k: int):
    """Keep the ``k`` largest logits (last dim), set the rest to -inf.

    Exactly ``k`` survive even when values tie at the cut: ties go to the lower token id
    (a stable sort). HF's ``TopKLogitsWarper`` instead keeps every tied value.
    """
    _check_top_k(k)
    k = min(int(k), logits.size(-1))
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices  # (..., V) best first
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order[..., :k], True)
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits, p: float):
    """Nucleus filter: keep the smallest set of top tokens whose probability reaches ``p``.

    The top token is always kept. Ties are ordered by token id (stable sort).
    """
    _check_top_p(p)
    if p == 1:
        return logits  # everything is needed to reach 100%; skip float round-off in the cumsum
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)  # (..., V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of all better tokens
    drop_sorted = mass_before >= p  # p already reached without this token (never the top one: 0 < p)
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(logits, temperature: float = 1.0, top_k=None, top_p=None, generator=None):
    """Draw one token id per row of ``logits`` (B, V) -> (B,), after temperature, top-k, top-p."""
    check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)
    logits = apply_temperature(logits.float(), temperature)  # same order as HF: temperature, top-k, top-p
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    flat = probs.reshape(-1, probs.size(-1))  # multinomial wants (rows, V)
    return torch.multinomial(flat, num_samples=1, generator=generator).view(probs.shape[:-1])


# --- the loop: run the model, choose a token, append, repeat ----------------------------------
@torch.no_grad()
def _generate(model, input_ids, max_new_tokens, choose, use_cache=True, attention_mask=None, eos_token_id=None):
    """Shared by greedy and sampling: ``choose`` maps last-position logits (B, V) to ids (B,)."""
    _check_generation_inputs(model, input_ids, max_new_tokens)
    ids = input_ids
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask  # (B, T) 1 = real token
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)  # rows that emitted EOS
    cache = None
    for _ in range(max_new_tokens):
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)  # left padding must not shift positions
        if cache is None:  # first step, or no cache: feed the whole sequence
            out = model(ids, attention_mask=mask, position_ids=positions, use_cache=use_cache)
        else:  # cached keys/values cover the past: feed only the newest token
            out = model(ids[:, -1:], attention_mask=mask, position_ids=positions[:, -1:], cache=cache,
                        use_cache=True)
        cache = out.cache if use_cache else None
        next_id = choose(out.logits[:, -1, :])  # (B,)
        if eos_token_id is not None:
            next_id = torch.where(done, eos_token_id, next_id)  # finished rows are padded with EOS
            done = done | (next_id == eos_token_id)
        ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, T+1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)  # (B, T+1)
        if done.all():
            break
    return ids


def greedy_generate(model, input_ids, max_new_tokens, use_cache=True, attention_mask=None, eos_token_id=None):
    """Always take the most likely token; returns (B, T + new) ids, like ``model.generate(do_sample=False)``.

    Args:
        use_cache: reuse past keys/values (same tokens, less work) or recompute every step.
        attention_mask: (B, T) 0/1 for left-padded batches; all ones if omitted.
        eos_token_id: stop a row when it emits this id (later slots are filled with it);
            ``None`` always generates ``max_new_tokens``.
    """
    return _generate(model, input_ids, max_new_tokens, lambda logits: logits.argmax(dim=-1),
                     use_cache, attention_mask, eos_token_id)


def sample_generate(model, input_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                    generator=None, use_cache=True, attention_mask=None, eos_token_id=None):
    """Sample each token with :func:`sample_next_token`; pass a seeded ``torch.Generator`` to repeat a run."""
    check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)

    def choose(logits):
        return sample_next_token(logits, temperature, top_k, top_p, generator)

    return _generate(model, input_ids, max_new_tokens, choose, use_cache, attention_mask, eos_token_id)


@torch.no_grad()
def beam_search(model, input_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None,
                use_cache=True):
    """Keep the ``num_beams`` best partial sequences by total log-probability; returns the best, (1, T + new).

    Matches ``model.generate(input_ids, num_beams=num_beams, do_sample=False, early_stopping=True,
    length_penalty=length_penalty, eos_token_id=eos_token_id, max_new_tokens=max_new_tokens)``:
    a hypothesis finishes when one of the top ``num_beams`` candidates emits EOS (or at the last
    step); its score is sum(log p) / (generated length ** length_penalty); the search stops once
    ``num_beams`` hypotheses have finished (that is ``early_stopping=True``).
    """
    _check_generation_inputs(model, input_ids, max_new_tokens)
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1 (got {num_beams}); num_beams=1 is greedy decoding")
    if input_ids.shape[0] != 1:
        raise ValueError(f"beam_search takes one prompt (got a batch of {input_ids.shape[0]}); loop over prompts")
    beams = input_ids.repeat(num_beams, 1)  # (nb, T) identical copies of the prompt
    scores = torch.full((num_beams,), float("-inf"), device=input_ids.device)
    scores[0] = 0.0  # the copies are identical: let only the first one grow at step 1
    finished = []  # (score, sequence) of complete hypotheses, best first
    cache = None
    for step in range(max_new_tokens):
        mask = torch.ones_like(beams)  # (nb, T+step) no padding; passing it tells HF so
        if cache is None:
            out = model(beams, attention_mask=mask, use_cache=use_cache)
        else:
            out = model(beams[:, -1:], attention_mask=mask, cache=cache, use_cache=True)  # newest token only
        log_probs = F.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (nb, V)
        V = log_probs.size(-1)
        total = (scores[:, None] + log_probs).view(-1)  # (nb * V,) score of every one-token extension
        top_scores, top_idx = total.topk(2 * num_beams)  # 2x: spares in case some candidates end in EOS
        parent, token = top_idx // V, top_idx % V  # which beam it extends, with which token
        new_beams, new_scores, new_parents = [], [], []
        for rank in range(2 * num_beams):
            seq = torch.cat([beams[parent[rank]], token[rank:rank + 1]])
            if int(token[rank]) == eos_token_id or step == max_new_tokens - 1:
                if rank < num_beams:  # only the top num_beams candidates may finish
                    finished.append((top_scores[rank].item() / (step + 1) ** length_penalty, seq))
            elif len(new_beams) < num_beams:
                new_beams.append(seq)
                new_scores.append(top_scores[rank])
                new_parents.append(parent[rank])
        finished = sorted(finished, key=lambda h: h[0], reverse=True)[:num_beams]
        if len(finished) == num_beams:  # early_stopping=True: enough complete hypotheses
            break
        beams, scores = torch.stack(new_beams), torch.stack(new_scores)  # (nb, T+step+1), (nb,)
        if use_cache:
            cache = out.cache
            cache.reorder_cache(torch.stack(new_parents))  # each beam inherits its parent's keys/values
    return finished[0][1][None]


# --- convenience for notebooks -----------------------------------------------------------------
def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 40, temperature: float = 1.0,
                  top_k=None, top_p=None, seed: int = 0, strategy: str = "greedy", num_beams: int = 4) -> str:
    """Continue ``prompt`` with lmguide's own decoders; returns only the new text.

    ``strategy`` is "greedy", "sample" (uses temperature, top_k, top_p, seed) or "beam"
    (uses num_beams). Generation stops early at the tokenizer's EOS token.
    """
    if strategy not in ("greedy", "sample", "beam"):
        raise ValueError(f"strategy must be 'greedy', 'sample' or 'beam' (got {strategy!r}); pick one of those")
    if not prompt:
        raise ValueError("prompt is empty; give at least one word for the model to continue")
    if strategy == "sample":
        check_temperature(temperature)
        _check_top_k(top_k)
        _check_top_p(top_p)
    model.eval()
    device = next(model.parameters()).device
    enc = tokenizer(prompt, return_tensors="pt").to(device)
    ids, mask, eos = enc["input_ids"], enc["attention_mask"], tokenizer.eos_token_id
    if strategy == "greedy":
        out = greedy_generate(model, ids, max_new_tokens, attention_mask=mask, eos_token_id=eos)
    elif strategy == "sample":
        generator = torch.Generator(device=device).manual_seed(seed)
        out = sample_generate(model, ids, max_new_tokens, temperature, top_k, top_p, generator,
                              attention_mask=mask, eos_token_id=eos)
    else:
        out = beam_search(model, ids, num_beams, max_new_tokens, eos_token_id=eos)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
