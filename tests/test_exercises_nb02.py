"""Notebook 02's exercises (moved here from test_sampling.py): reference solutions pass, the
library agrees with the reference, and each typical mistake gets its own sentence."""
import pytest
import torch

from lmguide import exercises
from lmguide.exercise_bank import nb02


def message(q, answer):
    result = q.check(answer, quiet=True)
    assert not result, f"{answer!r} should be refused"
    return result.message


# --- min-p ---------------------------------------------------------------------------------------
def test_min_p_reference_matches_transformers():
    from transformers.generation.logits_process import MinPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(4, 50) * 3
    for p in (0.01, 0.1, 0.3, 0.8):
        library = MinPLogitsWarper(min_p=p)(None, logits.clone())
        ours = torch.stack([nb02.min_p_reference(row, p) for row in logits])
        assert torch.equal(torch.isfinite(library), torch.isfinite(ours))
        assert torch.equal(ours[torch.isfinite(ours)], logits[torch.isfinite(ours)])


def test_min_p_accepts_a_learner_version_and_names_each_mistake():
    q = exercises.get("nb02.min_p")

    def learner(logits, min_p):
        probs = torch.softmax(logits, dim=-1)
        keep = probs >= min_p * probs.max()
        out = torch.full_like(logits, float("-inf"))
        out[keep] = logits[keep]
        return out

    assert q.check(learner, quiet=True)
    assert q.check(q.solve(), quiet=True)
    assert "relative" in message(q, q.wrong_example)
    assert "returned probabilities" in message(q, lambda x, p: torch.softmax(x, -1))
    assert "use float('-inf')" in message(q, lambda x, p: nb02.min_p_reference(x, p).clamp(min=-50.0))
    assert "keep their values" in message(q, lambda x, p: nb02.min_p_reference(x, p) * 2)
    assert "shaped like the logits" in message(q, lambda x, p: None)
    assert "nothing was removed" in message(q, lambda x, p: x.clone())
    keeps_one_more = lambda x, p: x.masked_fill(  # noqa: E731
        torch.softmax(x, -1) < 0.5 * p * torch.softmax(x, -1).max(), float("-inf"))
    assert "expected" in message(q, keeps_one_more)


def test_min_p_blank_function_waits():
    q = exercises.get("nb02.min_p")

    def min_p(logits, min_p):
        ...

    assert not q.check(min_p, quiet=True)


# --- counting token positions without the KV cache --------------------------------------------------
def test_no_cache_positions_counts_every_step():
    q = exercises.get("nb02.no_cache_positions")
    t, n = nb02._CACHE_PROMPT, nb02._CACHE_NEW
    assert q.solve() == n * t + n * (n - 1) // 2 == 5950
    assert q.check(5950, quiet=True) and q.check(5950.0, quiet=True)
    assert "with the cache" in message(q, t + n - 1)
    assert "last new token is never read" in message(q, q.solve() + n)
    assert "one step too many" in message(q, q.solve() + t + n)
    assert "full final length" in message(q, n * (t + n))
    assert "leaves out the prompt" in message(q, n * n / 2)
    assert "too low" in message(q, 5949)


def test_no_cache_positions_agrees_with_a_counting_model():
    """Count what the section-2.1 greedy loop really feeds a model, with a stand-in model."""
    from types import SimpleNamespace

    seen = []

    def model(ids, attention_mask=None):
        seen.append(ids.shape[1])
        return SimpleNamespace(logits=torch.zeros(ids.shape[0], ids.shape[1], 5))

    ids = torch.zeros(1, nb02._CACHE_PROMPT, dtype=torch.long)
    for _ in range(nb02._CACHE_NEW):  # the loop of notebook 02, section 2.1
        next_id = model(ids, attention_mask=torch.ones_like(ids)).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    assert sum(seen) == exercises.get("nb02.no_cache_positions").solve()


# --- top-p count and max_length (kept from the first version of the notebook) -----------------------
def test_top_p_count_explains_too_few_and_too_many():
    q = exercises.get("nb02.top_p_count")
    assert q.solve() == 3 and q.check(3, quiet=True) and q.check(torch.tensor(3), quiet=True)
    assert "only 0.70, less than top_p=0.8" in message(q, 2)
    assert "smallest such set" in message(q, 4)


def test_max_length_explains_the_two_usual_answers():
    q = exercises.get("nb02.max_length")
    assert q.solve() == 38 and q.check(38, quiet=True)
    assert "counts the prompt too" in message(q, 50)
    assert "max_new_tokens=50" in message(q, 62)


@pytest.mark.parametrize("key", ["nb02.min_p", "nb02.no_cache_positions", "nb02.top_p_count", "nb02.max_length"])
def test_hints_do_not_give_the_answer_away(key):
    q = exercises.get(key)
    answer = q.solve()
    for hint in q.hints:
        if isinstance(answer, (int, float)):
            assert str(answer) not in hint, hint
        else:  # a function: the hints may name tools, not the whole line of the solution
            assert "masked_fill(probs < threshold" not in hint
