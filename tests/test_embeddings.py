import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmguide import zoo
from lmguide.embeddings import (cls_pool, cosine_similarity_matrix, embed, l2_normalize,
                                max_pool, mean_pool, pool, read_pooling_config)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm():
    folder = zoo.path("minilm-l6")
    model, tokenizer = zoo.load(folder)
    return folder, model, tokenizer


def model_card_mean_pooling(token_embeddings, attention_mask):
    """The reference from all-MiniLM-L6-v2's README (sentence-transformers' Pooling, mean mode)."""
    input_mask_expanded = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).float()
    return torch.sum(token_embeddings * input_mask_expanded, 1) / torch.clamp(input_mask_expanded.sum(1), min=1e-9)


# --- pooling from scratch --------------------------------------------------------------------
def test_mean_pool_averages_only_the_real_tokens():
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    pooled = mean_pool(hidden, mask)
    assert pooled.shape == (3, 4)
    for i in range(3):
        torch.testing.assert_close(pooled[i], hidden[i, mask[i].bool()].mean(dim=0))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), length=st.integers(1, 7), width=st.integers(1, 5), data=st.data())
def test_mean_pool_ignores_whatever_is_in_the_padding(batch, length, width, data):
    real = [data.draw(st.integers(1, length)) for _ in range(batch)]
    mask = torch.tensor([[1] * n + [0] * (length - n) for n in real])
    hidden = torch.randn(batch, length, width)
    noisy = hidden.masked_fill(mask.unsqueeze(-1) == 0, 1e4)  # garbage in the padded positions
    torch.testing.assert_close(mean_pool(noisy, mask), mean_pool(hidden, mask))


def test_mean_pool_of_an_empty_text_is_zero_not_nan():
    pooled = mean_pool(torch.randn(1, 3, 2), torch.zeros(1, 3, dtype=torch.long))
    assert torch.equal(pooled, torch.zeros(1, 2))


def test_mean_pool_rejects_mismatched_shapes_with_a_sentence():
    with pytest.raises(ValueError, match=r"mean_pool needs hidden states \(B, T, H\)"):
        mean_pool(torch.randn(2, 5, 4), torch.ones(2, 4))


def test_cls_and_max_pooling():
    hidden = torch.tensor([[[1.0, 5.0], [3.0, 2.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert cls_pool(hidden, mask).tolist() == [[1.0, 5.0]]
    assert max_pool(hidden, mask).tolist() == [[3.0, 5.0]]  # the padded 9s are not the max
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 3.5]]
    with pytest.raises(ValueError, match="unknown pooling mode 'sum'"):
        pool(hidden, mask, "sum")


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(l2_normalize(x), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_cosine_similarity_matrix_matches_torch():
    a, b = torch.randn(3, 8), torch.randn(4, 8)
    sims = cosine_similarity_matrix(a, b)
    assert sims.shape == (3, 4)
    expected = torch.nn.functional.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    torch.testing.assert_close(sims, expected)
    with pytest.raises(ValueError, match="same width"):
        cosine_similarity_matrix(a, torch.randn(4, 7))


# --- the pooling config shipped with MiniLM -------------------------------------------------------
def test_minilm_pooling_config_says_mean(minilm):
    folder, _, _ = minilm
    config = read_pooling_config(folder)
    assert config["mode"] == "mean"
    assert config["word_embedding_dimension"] == 384


def test_read_pooling_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pooling config"):
        read_pooling_config(tmp_path)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}))
    with pytest.raises(ValueError, match="turns on pooling modes"):
        read_pooling_config(tmp_path)


# --- the real model ------------------------------------------------------------------------------
SENTENCES = ["Emma smiled at her friend.", "Emma laughed with her friend.",
             "The train to London was late because of snow on the line."]


def test_mean_pool_matches_the_model_card_reference_on_minilm(minilm):
    _, model, tokenizer = minilm
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the short sentences really are padded
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    ours = mean_pool(hidden, batch["attention_mask"])
    torch.testing.assert_close(ours, model_card_mean_pooling(hidden, batch["attention_mask"]), atol=1e-5, rtol=0)
    # and padding does not move a text's vector: embed the shortest text alone
    alone = tokenizer(SENTENCES[:1], return_tensors="pt")
    with torch.no_grad():
        single = mean_pool(model(**alone).last_hidden_state, alone["attention_mask"])
    torch.testing.assert_close(ours[:1], single, atol=1e-5, rtol=0)


def test_embed_gives_unit_vectors_and_similar_sentences_are_closer(minilm):
    folder, model, tokenizer = minilm
    vectors = embed(SENTENCES, model, tokenizer, pooling=read_pooling_config(folder)["mode"])
    assert vectors.shape == (3, 384) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    sims = cosine_similarity_matrix(vectors, vectors)
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert not model.training


def test_embed_does_not_depend_on_the_batch_size(minilm):
    _, model, tokenizer = minilm
    torch.testing.assert_close(embed(SENTENCES, model, tokenizer, batch_size=1),
                               embed(SENTENCES, model, tokenizer, batch_size=3), atol=1e-5, rtol=0)
    raw = embed(SENTENCES, model, tokenizer, normalize=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3))


def test_embed_input_checks(minilm):
    _, model, tokenizer = minilm
    with pytest.raises(TypeError, match=r"wrap it as \[text\]"):
        embed("Emma smiled.", model, tokenizer)
    with pytest.raises(ValueError, match="texts is empty"):
        embed([], model, tokenizer)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        embed(["a"], model, tokenizer, batch_size=0)
