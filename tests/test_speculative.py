"""Speculative decoding: the target's greedy text whatever the draft, k=1 as plain decoding, no trace of rejected
tokens, the same answers by text as by id, and the standard formula at its ends."""
import pytest
import torch

import lmguide as lg
from lmguide import engines, speculative
from lmguide.engines.torch import TorchEngine

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "It is a truth universally acknowledged, that a single man"


@pytest.fixture(scope="module")
def small():
    return engines.open_engine("austen-gpt-small")


@pytest.fixture(scope="module")
def large():
    return engines.open_engine("austen-gpt-large")


class Contrary(TorchEngine):
    """A draft that always proposes the token the target would *not* pick: its argmax is the target's
    argmax + 1 (the target is run inside it, so the disagreement is certain, not likely)."""

    def forward_tokens(self, ids):
        logits = super().forward_tokens(ids)
        wrong = (logits.argmax(dim=-1) + 1) % logits.shape[-1]
        return torch.nn.functional.one_hot(wrong, logits.shape[-1]).float()


def plain(engine, ids, n):
    return list(engine.generate(ids, n))


def test_the_text_is_the_targets_greedy_text(small, large):
    ids = large.encode(PROMPT)
    want = plain(large, ids, 40)
    for k in (2, 4, 8):
        out = speculative.generate(large, small, ids, 40, k=k)
        assert out.tokens == want, f"k={k}"
        assert out.rounds < len(want), "an agreeing draft saves target calls"
        assert 0 < out.acceptance <= 1 and out.accepted == sum(out.accepted_per_round)


def test_a_draft_that_disagrees_everywhere_still_gives_the_targets_text(small, large):
    contrary = Contrary(small.model, small.tokenizer, name="contrary")
    ids = large.encode(PROMPT)
    out = speculative.generate(large, contrary, ids, 24, k=4)
    assert out.tokens == plain(large, ids, 24)
    assert out.accepted == 0 and out.rounds == 24, "one target token a round, nothing drafted kept"


def test_k_1_is_plain_decoding_and_a_self_draft_is_always_accepted(small):
    ids = small.encode(PROMPT)
    want = plain(small, ids, 30)
    one = speculative.generate(small, engines.open_engine("austen-gpt-small"), ids, 30, k=1)
    assert one.tokens == want and one.proposed == one.rounds
    selfie = speculative.generate(small, engines.open_engine("austen-gpt-small"), ids, 30, k=5)
    assert selfie.tokens == want and selfie.acceptance == 1.0 and selfie.rounds == 5  # 6 tokens a round


def test_rejected_tokens_leave_no_trace_in_the_cache(small, large):
    ids = large.encode(PROMPT)
    contrary = Contrary(small.model, small.tokenizer, name="contrary")
    for draft in (small, contrary):
        out = speculative.generate(large, draft, ids, 20, k=6)
        assert large.n_cached == len(ids) + len(out.tokens) - 1  # the prompt and every kept token but the last
        after = large.eval(out.tokens[-1:])[-1]
        large.reset()
        fresh = large.prefill(ids + out.tokens)
        torch.testing.assert_close(after, fresh, atol=1e-4, rtol=1e-4)


def test_stops_at_eos_and_at_max_new_tokens(small, large):
    ids = large.encode(PROMPT)
    out = speculative.generate(large, small, ids, 7, k=4)
    assert len(out.tokens) == 7 and out.tokens == plain(large, ids, 7)
    eos = large.eos_token_id
    want = plain(large, ids, 200)
    got = speculative.generate(large, small, ids, 200, k=4).tokens
    assert got == want and (eos not in got or got[-1] == eos)


def test_by_text_gives_the_same_tokens_as_by_id(small, large):
    ids = large.encode(PROMPT)
    out = speculative.generate_by_text(large, small, ids, small.encode(PROMPT), 30, k=4)
    assert out.tokens == plain(large, ids, 30) and out.accepted > 0


@pytest.mark.parametrize("ids, k, expected", [
    ([5, 6, 7, 8, 5, 6], 2, [7, 8]),       # the last two tokens seen before: what followed them
    ([5, 6, 7, 9, 6], 3, [7, 9, 6]),       # only the last token matches; up to k tokens follow it
    ([1, 2, 3, 4], 2, []),                 # nothing repeats
    ([3, 1, 3, 2, 3], 1, [1]),             # the first occurrence wins
])
def test_prompt_lookup_proposes_what_followed_the_tail_before(ids, k, expected):
    assert speculative.prompt_lookup(ids, k) == expected


def test_prompt_lookup_agrees_with_llama_cpps():
    np = pytest.importorskip("numpy")
    lookup = pytest.importorskip("llama_cpp.llama_speculative").LlamaPromptLookupDecoding
    rng = np.random.default_rng(0)
    for _ in range(200):
        ids = rng.integers(0, 6, size=int(rng.integers(2, 30))).astype(np.intc)
        for k in (1, 4):
            theirs = lookup.find_candidate_pred_tokens(ids, max_ngram_size=2, num_pred_tokens=k).tolist()
            assert speculative.prompt_lookup(ids.tolist(), k) == theirs, ids.tolist()


def test_a_proposer_keeps_the_targets_text_and_copying_pays(large):
    text = "Mr. Darcy said to Elizabeth that he was sorry. Mr. Darcy said to Elizabeth that he"
    ids = large.encode(text)
    want = plain(large, ids, 20)
    out = speculative.generate_proposed(large, speculative.prompt_lookup, ids, 20, k=4)
    assert out.tokens == want and out.rounds <= len(want)
    nothing = speculative.generate_proposed(large, lambda ids, k: [], ids, 20, k=4)
    assert nothing.tokens == want and nothing.rounds == len(want) and nothing.proposed == 0


def test_same_tokenizer_tells_the_pairs_apart(small, large):
    assert speculative.same_tokenizer(small, large)
    smol = engines.open_engine("smollm2-135m")
    assert not speculative.same_tokenizer(small, smol)


def test_bad_arguments_say_what_to_change(small, large):
    ids = large.encode(PROMPT)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        speculative.generate(large, small, ids, 5, k=0)
    with pytest.raises(ValueError, match="max_new_tokens must be"):
        speculative.generate(large, small, ids, 0)
    with pytest.raises(ValueError, match="prompt is empty"):
        speculative.generate(large, small, [], 5)


def test_first_difference_finds_the_position_and_its_margin(small):
    ids = small.encode(PROMPT)
    a = plain(small, ids, 10)
    b = a[:4] + [a[4] + 1] + a[5:]
    diff = speculative.first_difference(small, ids, a, b)
    assert diff["position"] == 4 and diff["a"] == a[4] and diff["top-2 margin"] >= 0
    assert speculative.first_difference(small, ids, a, a[:6]) is None


@pytest.mark.parametrize("a, k, tokens", [(0.0, 4, 1.0), (1.0, 4, 5.0), (0.5, 1, 1.5), (0.5, 2, 1.75)])
def test_expected_tokens_per_round(a, k, tokens):
    assert speculative.expected_tokens_per_round(a, k) == pytest.approx(tokens)


def test_predicted_speedup_pays_only_with_a_cheap_draft_and_agreement():
    # target step 65 ms, verifying 4 tokens 87 ms (the Qwen 1.5 B here): a 7 ms draft that agrees 80% pays,
    # a 36 ms draft that agrees 50% does not
    assert speculative.predicted_speedup(0.8, 4, 0.007, 0.087, 0.065) > 1.5
    assert speculative.predicted_speedup(0.5, 4, 0.036, 0.087, 0.065) < 1
    with pytest.raises(ValueError, match="acceptance must be between 0 and 1"):
        speculative.expected_tokens_per_round(1.5, 4)
