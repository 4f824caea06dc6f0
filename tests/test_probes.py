"""lmguide.probes: memorization, canaries, AUC, bootstrap and log-prob probes, on tiny models and the shipped data."""
import itertools
import math
import random

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide import probes


def tiny_model(vocab=50, n_ctx=64, seed=0):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=n_ctx, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def austen_tokenizer():
    import lmguide as lg

    return lg.load("austen-gpt-small")[1]


# ------------------------------------------------------------------------- memorization


def brute_lcs(a, b):
    return max([0] + [k for i, j in itertools.product(range(len(a)), range(len(b)))
                      for k in range(1, min(len(a) - i, len(b) - j) + 1) if a[i:i + k] == b[j:j + k]])


def test_longest_common_substring_matches_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.randrange(3) for _ in range(rng.randrange(0, 9))]
        b = [rng.randrange(3) for _ in range(rng.randrange(0, 9))]
        assert probes.longest_common_substring(a, b) == brute_lcs(a, b)
    assert probes.longest_common_substring([1, 9, 2, 9, 3], [1, 2, 3]) == 1  # contiguous, not a subsequence


def test_leading_run_counts_until_the_first_mismatch():
    m = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    assert probes.leading_run(m).tolist() == [2, 4, 0]


def test_sample_windows_are_disjoint_slices():
    ids = torch.arange(1000)
    w = probes.sample_windows(ids, 10, length=64, seed=3)
    assert w.shape == (10, 64)
    assert all(torch.equal(row, ids[row[0]:row[0] + 64]) for row in w)  # consecutive ids
    starts = sorted(int(r[0]) for r in w)
    assert all(b - a >= 64 for a, b in zip(starts, starts[1:]))
    assert torch.equal(w, probes.sample_windows(ids, 10, length=64, seed=3))
    with pytest.raises(ValueError, match="at most"):
        probes.sample_windows(ids, 100, length=64)


def test_teacher_forcing_finds_exactly_what_greedy_decoding_reproduces():
    model = tiny_model()
    prompts = torch.randint(0, 50, (6, 8), generator=torch.Generator().manual_seed(1))
    own = torch.cat([prompts, probes.greedy_continuations(model, torch.cat([prompts, prompts], 1), 8, 8)], dim=1)
    assert probes.teacher_forced_matches(model, own, prompt_len=8).all()  # its own greedy text: every position matches
    broken = own.clone()
    broken[:, 8 + 3] = (broken[:, 8 + 3] + 1) % 50                        # change the 4th continuation token
    assert probes.leading_run(probes.teacher_forced_matches(model, broken, prompt_len=8)).tolist() == [3] * 6
    scores = probes.memorization_scores(own[:, 8:], broken[:, 8:])
    assert not scores["exact"].any() and scores["prefix"].tolist() == [3] * 6 and (scores["lcs"] >= 4).all()


def test_training_epochs_make_a_model_reproduce_its_training_passages():
    model = tiny_model(vocab=40, n_ctx=32)
    gen = torch.Generator().manual_seed(2)
    seen, unseen = torch.randint(0, 40, (4, 32), generator=gen), torch.randint(0, 40, (4, 32), generator=gen)
    before = probes.leading_run(probes.teacher_forced_matches(model, seen, 16)).float().mean()
    losses = probes.train_epochs(model, seen, epochs=60, lr=1e-2, batch_size=4, seed=0)
    assert losses[-1] < losses[0] / 4
    after = probes.teacher_forced_matches(model, seen, 16)
    assert after.all(dim=1).float().mean() >= 0.75 > before            # recites the passages it was trained on
    assert probes.teacher_forced_matches(model, unseen, 16).all(dim=1).sum() == 0  # not random ones


def test_set_dropout_changes_every_dropout_layer():
    model = probes.set_dropout(tiny_model(), 0.3)
    ps = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert ps and all(p == 0.3 for p in ps)


def test_train_steps_lowers_the_loss_and_rejects_short_text():
    model = tiny_model(vocab=20, n_ctx=32)
    ids = torch.arange(200) % 20   # a repeating pattern: easy to learn
    losses = probes.train_steps(model, ids, steps=40, window=16, lr=1e-2, batch_size=4)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) / 2
    with pytest.raises(ValueError, match="more text"):
        probes.train_steps(model, ids[:10], steps=1, window=16)


# ------------------------------------------------------------------------------ canaries


def test_plant_inserts_the_sentence_k_times_and_keeps_the_rest_in_order():
    text = [f"p{i}" for i in range(20)]
    planted = probes.plant(text, "SECRET", 5, seed=1)
    assert planted.count("SECRET") == 5 and [p for p in planted if p != "SECRET"] == text
    assert probes.plant(text, "SECRET", 0) == text
    with pytest.raises(ValueError):
        probes.plant(text, "SECRET", -1)


def test_random_secrets_are_distinct_seeded_and_exclude():
    s = probes.random_secrets(500, digits=3, seed=4, exclude=["000"])
    assert len(set(s)) == 500 and "000" not in s and all(len(x) == 3 and x.isdigit() for x in s)
    assert s == probes.random_secrets(500, digits=3, seed=4, exclude=["000"])
    with pytest.raises(ValueError):
        probes.random_secrets(1000, digits=3, exclude=["000"])


def test_exposure_and_rank():
    assert probes.exposure(1, 1024) == 10 and probes.exposure(1024, 1024) == 0
    assert math.isclose(probes.exposure(32, 1024), 5)
    assert probes.canary_rank(0.5, [0.9, 0.1, 0.7]) == 3 and probes.canary_rank(2.0, [0.9]) == 1
    with pytest.raises(ValueError):
        probes.exposure(0, 10)


def test_continuation_logprobs_do_not_depend_on_padding():
    model = tiny_model()
    prompts, conts = [[1, 2, 3], [4], [5, 6, 7, 8, 9]], [[10, 11], [12, 13, 14, 15], [16]]
    batched = probes.continuation_logprobs(model, prompts, conts, batch_size=3)
    for p, c, got in zip(prompts, conts, batched):
        with torch.no_grad():
            logp = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
        want = torch.tensor([logp[len(p) - 1 + i, t] for i, t in enumerate(c)])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one to one"):
        probes.continuation_logprobs(model, prompts, conts[:2])


def test_a_canary_repeated_in_training_ranks_first(austen_tokenizer):
    tok = austen_tokenizer
    text = "\n".join(["Miss Pemble's bank account number is 305217."] * 30 + ["It was a fine day."] * 10)
    ids = torch.tensor(tok(text)["input_ids"])
    model = tiny_model(vocab=len(tok), n_ctx=64)
    candidates = [" " + s for s in probes.random_secrets(63, seed=1, exclude=["305217"])]
    before = probes.canary_exposure(model, tok, "Miss Pemble's bank account number is", " 305217", candidates)
    probes.train_steps(model, ids, steps=60, window=48, lr=1e-2, batch_size=8)
    after = probes.canary_exposure(model, tok, "Miss Pemble's bank account number is", " 305217", candidates)
    assert after["candidates"] == 64 and after["rank"] == 1 and after["exposure"] == 6
    assert after["logprob"] > before["logprob"]


# --------------------------------------------------------------------------------- AUC


def test_roc_auc_equals_the_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        labels = rng.integers(0, 2, 30)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 6, 30) / 5   # many ties
        assert math.isclose(probes.roc_auc(scores, labels), probes.pairwise_auc(scores, labels), abs_tol=1e-12)
    assert probes.roc_auc([3, 2, 1, 0], [1, 1, 0, 0]) == 1.0 and probes.roc_auc([0, 1, 2, 3], [1, 1, 0, 0]) == 0.0
    assert probes.roc_auc([1, 1, 1, 1], [1, 0, 1, 0]) == 0.5
    fpr, tpr = probes.roc_curve([0.2, 0.9, 0.4], [0, 1, 1])
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    with pytest.raises(ValueError, match="both classes"):
        probes.roc_auc([1, 2], [1, 1])


def test_bootstrap_interval_is_seeded_and_shrinks_with_more_data():
    rng = np.random.default_rng(1)
    small, big = rng.normal(size=20), rng.normal(size=2000)
    lo, hi = probes.bootstrap_interval(small, seed=3)
    assert (lo, hi) == probes.bootstrap_interval(small, seed=3)
    assert lo < small.mean() < hi
    lo2, hi2 = probes.bootstrap_interval(big, seed=3)
    assert hi2 - lo2 < (hi - lo) / 4
    labels = np.r_[np.ones(5), np.zeros(45)]  # strata keep 5 positives in every resample
    counts = probes.bootstrap_interval(labels, statistic=np.sum, strata=labels, n_resamples=200)
    assert counts == (5.0, 5.0)
    with pytest.raises(ValueError):
        probes.bootstrap_interval(small, level=95)


# ----------------------------------------------------------------------- text helpers


def test_abstains_and_mentions():
    assert probes.abstains("I'm not aware of a country called Veltrania.") and probes.abstains("  ")
    assert not probes.abstains("The capital of Veltrania is Veltra.")
    assert probes.mentions("It was painted by Leonardo da Vinci.", ["Leonardo da Vinci"])
    assert not probes.mentions("Ausdenmore wrote it", ["Austen"])   # whole words only


def test_next_token_logprobs_and_pronoun_gaps(austen_tokenizer):
    tok = austen_tokenizer
    model = tiny_model(vocab=len(tok), n_ctx=64)
    got = probes.next_token_logprobs(model, tok, ["The nurse said that", "I asked the cook whether"], [" he", " she"])
    ids = [tok.eos_token_id] + tok("I asked the cook whether", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        last = model(torch.tensor([ids])).logits[0, -1].log_softmax(-1)
    want = last[[tok(" he")["input_ids"][0], tok(" she")["input_ids"][0]]]
    torch.testing.assert_close(got[1], want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one-token"):
        probes.next_token_logprobs(model, tok, ["The nurse said that"], [" receptionist"])
    frame = probes.pronoun_gaps(model, tok, ["The {occupation} said that", "I met the {occupation} and"], ["nurse", "cook"])
    assert len(frame) == 4 and np.allclose(frame["gap"], frame["logp_he"] - frame["logp_she"])
    table = probes.gap_intervals(frame, n_resamples=200)
    assert list(table["occupation"]) == ["nurse", "cook"] and (table["low"] <= table["high"]).all()


def test_relative_to_subtracts_the_neutral_word_template_by_template():
    import pandas as pd

    frame = pd.DataFrame({"occupation": ["nurse", "nurse", "person", "person"], "template": ["a", "b", "a", "b"],
                          "gap": [-1.0, -3.0, 0.5, -2.0]})
    adjusted = probes.relative_to(frame, "person")
    assert list(adjusted["occupation"]) == ["nurse", "nurse"]
    assert list(adjusted["gap"]) == [-1.5, -1.0]  # each template's own baseline, not the mean of them
    with pytest.raises(ValueError, match="no rows for the neutral word 'someone'"):
        probes.relative_to(frame, "someone")


# ------------------------------------------------------------------------ shipped data


def test_entity_questions_are_balanced_and_real_ones_are_answerable():
    qs = probes.entity_questions()
    real, fake = [q for q in qs if q["real"]], [q for q in qs if not q["real"]]
    assert len(real) >= 20 and len(fake) >= 20 and len(qs) >= 40
    assert len({q["id"] for q in qs}) == len(qs) and len({q["question"] for q in qs}) == len(qs)
    for q in real:
        assert q["answers"] and q["answers"][0] in q["fact"], q["id"]
    assert all(not q["answers"] and q["fact"] is None for q in fake)
    # fake entities never appear in the facts the reader searches
    facts = " ".join(q["fact"] for q in real).lower()
    assert not [q["entity"] for q in fake if q["entity"].lower() in facts]


def test_bias_templates_have_twenty_occupations_and_one_slot_each():
    spec = probes.bias_templates()
    assert len(spec["occupations"]) >= 20 and len(set(spec["occupations"])) == len(spec["occupations"])
    for templates in spec["templates"].values():
        assert len(templates) >= 5 and all(t.count("{occupation}") == 1 for t in templates)
    assert set(spec["templates"]) == {"original", "rephrased"}


def test_stored_answers_cover_every_question_and_decode_to_their_text():
    import lmguide as lg
    from transformers import AutoTokenizer

    stored = probes.load_asset("smollm2_answers.json")
    qs = probes.entity_questions()
    assert set(stored["answers"]) == {q["id"] for q in qs}
    tok = AutoTokenizer.from_pretrained(lg.zoo.path("smollm2-135m"))
    for a in stored["answers"].values():
        assert 0 < len(a["ids"]) <= stored["max_new_tokens"]
        assert tok.decode(a["ids"], skip_special_tokens=True).strip() == a["answer"]


def test_the_ladders_stored_entity_answers_cover_every_question():
    """notebook 08 compares sizes on stored answers: every question, each answer with its mean log-prob."""
    import math

    from lmguide import probes

    try:
        stored = probes.load_asset("ladder_answers.json")
    except FileNotFoundError:
        pytest.skip("not stored yet (python -m lmguide.recipes.ladder --entities)")
    ids = {q["id"] for q in probes.entity_questions()}
    assert set(stored["models"]) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} and stored["machine"]["cpu"]
    for m in stored["models"].values():
        assert set(m["answers"]) == ids
        for a in m["answers"].values():
            assert (a["mean log-prob"] is None) == (not a["ids"])
            assert a["mean log-prob"] is None or (math.isfinite(a["mean log-prob"]) and a["mean log-prob"] <= 0)
