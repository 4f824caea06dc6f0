"""Decoding from scratch vs model.generate, filter properties, and the input checks."""

import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide.sampling import (apply_temperature, beam_search, check_temperature, generate_text, greedy_generate,
                              sample_generate, sample_next_token, top_k_filter, top_p_filter)

torch.set_num_threads(1)
EOS = 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(123)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100,
                        bos_token_id=EOS, eos_token_id=EOS, pad_token_id=EOS)  # ids inside the tiny vocab
    return GPT2LMHeadModel(config).eval()


def prompt(seed, T=6, B=1):
    return torch.randint(1, 100, (B, T), generator=torch.Generator().manual_seed(seed))  # (B, T), no EOS


def hf_generate(model, ids, **kwargs):
    return model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kwargs)


logit_lists = st.lists(st.floats(-20, 20, width=32), min_size=1, max_size=30)


# --- filters: properties -----------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(-3, 3), min_size=1, max_size=30), data=st.data())
def test_top_k_keeps_exactly_k_largest_even_with_ties(values, data):
    # small integers make ties common; ties at the cut go to the lower token id
    logits = torch.tensor(values, dtype=torch.float32)
    k = data.draw(st.integers(1, len(values)))
    out = top_k_filter(logits, k)
    kept = torch.isfinite(out)
    assert int(kept.sum()) == k
    assert torch.equal(out[kept], logits[kept])  # kept values untouched
    assert (out[~kept] == float("-inf")).all()
    if k < len(values):
        assert logits[kept].min() >= logits[~kept].max()
        cut = logits[kept].min()
        tied_kept = kept.nonzero().flatten()[logits[kept] == cut]
        tied_dropped = (~kept).nonzero().flatten()[logits[~kept] == cut]
        if len(tied_dropped):
            assert tied_kept.max() < tied_dropped.min()  # lower ids win the tie


def test_top_k_larger_than_vocab_keeps_everything_and_works_on_batches():
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    assert torch.equal(top_k_filter(logits, 10), logits)
    assert torch.isfinite(top_k_filter(logits, 1)).tolist() == [[False, True, False], [False, False, True]]


@settings(max_examples=100, deadline=None)
@given(values=logit_lists, p=st.floats(0.001, 1.0))
def test_top_p_keeps_the_smallest_set_reaching_p(values, p):
    logits = torch.tensor(values, dtype=torch.float32)
    out = top_p_filter(logits, p)
    kept = torch.isfinite(out)
    probs = torch.softmax(logits.double(), dim=-1)
    assert kept[logits.argmax()]  # the top token always survives
    assert torch.equal(out[kept], logits[kept])
    if (~kept).any():
        assert logits[kept].min() >= logits[~kept].max()  # a top set, not any set
    mass = probs[kept].sum().item()
    assert mass >= p - 1e-5  # reaches p ...
    if kept.sum() > 1:
        assert mass - probs[kept].min().item() < p + 1e-5  # ... and one token fewer would not


def test_top_p_worked_example():
    logits = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]).log()
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [True, True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [True, True, False, False, False]
    assert torch.isfinite(top_p_filter(logits, 1e-6)).tolist() == [True, False, False, False, False]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(-10, 10, width=32), min_size=2, max_size=30))
def test_small_temperature_tends_to_argmax(values):
    logits = torch.tensor(values, dtype=torch.float32)
    best = int(logits.argmax())
    p_at = [torch.softmax(apply_temperature(logits, t), -1)[best].item() for t in (2.0, 1.0, 0.1)]
    assert p_at[0] <= p_at[1] + 1e-6 <= p_at[2] + 2e-6  # colder -> more mass on the favourite
    top2 = logits.topk(2).values
    assume(top2[0] - top2[1] >= 0.1)  # a clear favourite
    assert torch.softmax(apply_temperature(logits, 1e-3), -1)[best] > 0.999
    assert int(sample_next_token(logits[None], temperature=1e-3)) == best


def test_sample_next_token_respects_filters_and_seed():
    logits = torch.tensor([1.0, 4.0, 0.5, 3.0, 2.0, -1.0]).repeat(2000, 1)  # (2000, V): many draws at once
    draws = sample_next_token(logits, top_k=3, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (2000,) and set(draws.tolist()) == {1, 3, 4}  # the top 3, and all of them
    again = sample_next_token(logits, top_k=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    assert set(sample_next_token(logits, top_p=1e-3).tolist()) == {1}
    assert set(sample_next_token(logits, top_k=1, temperature=5.0).tolist()) == {1}


# --- loops vs model.generate -------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_with_and_without_cache_equals_hf(model, seed):
    ids = prompt(seed)
    cached = greedy_generate(model, ids, 15)
    uncached = greedy_generate(model, ids, 15, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, hf_generate(model, ids, max_new_tokens=15, eos_token_id=None))
    assert cached.shape == (1, 6 + 15) and torch.equal(cached[:, :6], ids)


def test_greedy_stops_at_eos_like_hf(model):
    ids = prompt(0)
    free = greedy_generate(model, ids, 15)
    eos = int(free[0, 6 + 3])  # make the 4th generated token the "EOS" so the stop really happens
    mine = greedy_generate(model, ids, 15, eos_token_id=eos)
    assert mine.shape[1] < free.shape[1] and int(mine[0, -1]) == eos
    assert torch.equal(mine, hf_generate(model, ids, max_new_tokens=15, eos_token_id=eos, pad_token_id=eos))


def test_greedy_left_padded_batch_equals_hf(model):
    ids = prompt(3, T=7, B=2)
    mask = torch.ones_like(ids)
    ids[1, :3], mask[1, :3] = EOS, 0  # row 1 is a 4-token prompt, left-padded
    mine = greedy_generate(model, ids, 10, attention_mask=mask, eos_token_id=EOS)
    theirs = model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False)
    assert torch.equal(mine, theirs)
    alone = greedy_generate(model, ids[1:, 3:], 10, eos_token_id=EOS)  # the same prompt, unpadded
    assert torch.equal(mine[1, 7:7 + alone.shape[1] - 4], alone[0, 4:])  # padding changed nothing


def test_sampling_is_reproducible_and_cache_independent(model):
    ids = prompt(4)

    def run(seed, **kwargs):
        return sample_generate(model, ids, 12, temperature=0.9, top_k=20, top_p=0.9,
                               generator=torch.Generator().manual_seed(seed), **kwargs)

    assert torch.equal(run(7), run(7))
    assert torch.equal(run(7), run(7, use_cache=False))
    assert not torch.equal(run(7), run(8))  # a different seed gives a different continuation
    greedy = greedy_generate(model, ids, 12)
    assert torch.equal(sample_generate(model, ids, 12, top_k=1), greedy)  # top-1 sampling is greedy


@pytest.mark.parametrize("num_beams", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 5])
def test_beam_search_equals_hf_without_eos(model, num_beams, seed):
    ids = prompt(seed)
    mine = beam_search(model, ids, num_beams, 12)
    assert torch.equal(mine, beam_search(model, ids, num_beams, 12, use_cache=False))
    theirs = hf_generate(model, ids, num_beams=num_beams, early_stopping=True, max_new_tokens=12,
                         eos_token_id=None)
    assert torch.equal(mine, theirs)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_search_equals_hf_with_eos(model, length_penalty):
    stopped_early = 0
    for seed in range(4):
        ids = prompt(seed)
        free = beam_search(model, ids, 3, 12)
        for eos in {int(free[0, 6 + 2]), int(free[0, 6 + 5])}:  # tokens the beams do produce
            mine = beam_search(model, ids, 3, 12, length_penalty=length_penalty, eos_token_id=eos)
            theirs = hf_generate(model, ids, num_beams=3, early_stopping=True, max_new_tokens=12,
                                 length_penalty=length_penalty, eos_token_id=eos, pad_token_id=eos)
            assert torch.equal(mine, theirs), (seed, eos)
            stopped_early += mine.shape[1] < 6 + 12
    if length_penalty <= 1.0:  # (a strong length penalty prefers the hypothesis that runs to the end)
        assert stopped_early > 0  # the EOS path was really exercised


def test_one_beam_is_greedy(model):
    ids = prompt(6)
    assert torch.equal(beam_search(model, ids, 1, 10), greedy_generate(model, ids, 10))


# --- generate_text -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer_and_model():
    from lmguide.tokenization import train_bpe
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune " * 20
    tok = train_bpe(text, vocab_size=300)
    torch.manual_seed(123)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tok),
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    return tok, GPT2LMHeadModel(config).eval()


def test_generate_text_greedy_equals_hf_generate(tokenizer_and_model):
    tok, lm = tokenizer_and_model
    text = generate_text(lm, tok, "It is a truth", max_new_tokens=10)
    enc = tok("It is a truth", return_tensors="pt")
    ids = lm.generate(**enc, max_new_tokens=10, do_sample=False)
    assert isinstance(text, str) and text == tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_generate_text_sample_and_beam(tokenizer_and_model):
    tok, lm = tokenizer_and_model
    a = generate_text(lm, tok, "a single man", strategy="sample", temperature=1.2, top_p=0.9, seed=3)
    assert a == generate_text(lm, tok, "a single man", strategy="sample", temperature=1.2, top_p=0.9, seed=3)
    beam = generate_text(lm, tok, "a single man", strategy="beam", num_beams=3, max_new_tokens=8)
    enc = tok("a single man", return_tensors="pt")
    ids = lm.generate(**enc, max_new_tokens=8, do_sample=False, num_beams=3, early_stopping=True)
    assert beam == tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


# --- bad inputs: one clear sentence each ---------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda m: sample_next_token(torch.zeros(1, 5), temperature=0),
     r"temperature must be > 0 \(got 0\); use greedy decoding for temperature 0"),
    (lambda m: apply_temperature(torch.zeros(5), -1.0), r"got -1.0\); use greedy decoding"),
    (lambda m: apply_temperature(torch.zeros(5), float("nan")), r"got nan\); use greedy decoding"),
    (lambda m: check_temperature(0, fix="T = 1 is the plain softmax"), r"\(got 0\); T = 1 is the plain softmax"),
    (lambda m: top_k_filter(torch.zeros(5), 0), r"top_k must be an integer >= 1 \(got 0\); use top_k=None"),
    (lambda m: top_k_filter(torch.zeros(5), 2.5), r"top_k must be an integer >= 1 \(got 2.5\)"),
    (lambda m: top_p_filter(torch.zeros(5), 0.0), r"top_p must be in \(0, 1\] \(got 0.0\); use top_p=None"),
    (lambda m: top_p_filter(torch.zeros(5), 1.5), r"top_p must be in \(0, 1\] \(got 1.5\)"),
    (lambda m: sample_generate(m, prompt(0), 5, top_p=2), r"top_p must be in \(0, 1\]"),
    (lambda m: greedy_generate(m, torch.zeros(1, 0, dtype=torch.long), 5), r"prompt is empty \(0 tokens\)"),
    (lambda m: greedy_generate(m, prompt(0)[0], 5), r"shape \(batch, tokens\).*input_ids\[None\]"),
    (lambda m: greedy_generate(m, prompt(0), 0), r"max_new_tokens must be >= 1 \(got 0\)"),
    (lambda m: greedy_generate(m, prompt(0, T=60), 10),
     r"prompt length 60 \+ max_new_tokens 10 = 70 exceeds the model's context of 64 tokens.*at most 4 new tokens"),
    (lambda m: beam_search(m, prompt(0), 0, 5), r"num_beams must be >= 1 \(got 0\)"),
    (lambda m: beam_search(m, prompt(0, B=2), 2, 5), r"one prompt \(got a batch of 2\)"),
    (lambda m: beam_search(m, prompt(0, T=60), 2, 5), r"exceeds the model's context"),
])
def test_bad_inputs_raise_one_clear_sentence(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_generate_text_bad_inputs(tokenizer_and_model):
    tok, lm = tokenizer_and_model
    with pytest.raises(ValueError, match="prompt is empty"):
        generate_text(lm, tok, "")
    with pytest.raises(ValueError, match="strategy must be 'greedy', 'sample' or 'beam' \\(got 'topk'\\)"):
        generate_text(lm, tok, "hi", strategy="topk")
    with pytest.raises(ValueError, match="use greedy decoding for temperature 0"):
        generate_text(lm, tok, "hi", strategy="sample", temperature=0)


def test_one_context_length_none_when_unknown_and_scoring_then_asks_for_a_window():
    from types import SimpleNamespace

    from lmguide import eval as lm_eval
    from lmguide import sampling

    gpt2_like = SimpleNamespace(config=SimpleNamespace(n_positions=256))
    llama_like = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192))
    unknown = SimpleNamespace(config=SimpleNamespace())
    assert sampling.context_length is lm_eval.context_length  # one function, not two
    assert lm_eval.context_length(gpt2_like) == 256 and lm_eval.context_length(llama_like) == 8192
    assert lm_eval.context_length(unknown) is None
    assert lm_eval.window_rule(gpt2_like) == (256, 128) and lm_eval.window_rule(llama_like) == (1024, 512)
    with pytest.raises(ValueError, match="context length .* pass window"):
        lm_eval.window_rule(unknown)
