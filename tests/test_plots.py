"""Every plot returns a titled figure with labelled axes; the attention widget draws what it is set to."""
import matplotlib

matplotlib.use("Agg")  # no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lmguide import plots  # noqa: E402
from lmguide.attention import bidirectional_mask, causal_mask, sinusoidal_positions  # noqa: E402

TOKENS = ["It", " is", " a", " truth"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def labelled(ax):
    return bool(ax.get_title()) and bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def test_heatmap_labels_and_values():
    m = torch.arange(6.0).reshape(2, 3)
    fig = plots.heatmap(m, title="t", xlabel="x (unit)", ylabel="y (unit)", x_labels=list("abc"),
                        y_labels=["r0", "r1"], cbar_label="value")
    ax = fig.axes[0]
    assert labelled(ax) and ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    np.testing.assert_array_equal(ax.images[0].get_array(), m.numpy())
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    with pytest.raises(ValueError, match="2-D matrix"):
        plots.heatmap(torch.zeros(2, 2, 2), title="t", xlabel="x", ylabel="y")


def test_masks_side_by_side():
    fig = plots.masks({"causal (decoder)": causal_mask(4),
                       "bidirectional (encoder)": bidirectional_mask(torch.tensor([[1, 1, 1, 0]]))}, TOKENS)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 and all(labelled(ax) for ax in panels)
    assert fig._suptitle.get_text()
    np.testing.assert_array_equal(panels[0].images[0].get_array(), causal_mask(4).float().numpy())
    fig = plots.masks({"a": causal_mask(2), "b": causal_mask(3)}, [["x", "y"], ["p", "q", "r"]])  # labels per mask
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["p", "q", "r"]


def test_positions_figure_has_values_and_similarities():
    fig = plots.positions({"sinusoidal": sinusoidal_positions(32, 16), "random": torch.randn(32, 16)})
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4 and all(labelled(ax) for ax in panels)
    sim = plots.position_similarity(sinusoidal_positions(32, 16))
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)


def test_attention_heads_grid():
    weights = torch.softmax(torch.randn(1, 6, 4, 4), dim=-1)  # (1, nh, T, T) as HF returns it
    fig = plots.attention_heads(weights, TOKENS, title="layer 0")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6 and all(labelled(ax) for ax in panels)
    assert [ax.get_title() for ax in panels] == [f"head {h}" for h in range(6)]
    fig = plots.attention_heads(weights[0], TOKENS, title="two heads", heads=[1, 3], ncols=2)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["head 1", "head 3"]
    with pytest.raises(ValueError, match="index the layer first"):
        plots.attention_heads(torch.zeros(4, 4), TOKENS, title="t")


def test_param_shares_bars_add_up_to_100_percent():
    fig = plots.param_shares({"small": {"embeddings": 30, "attention": 20, "mlp": 50},
                              "large": {"embeddings": 10, "attention": 30, "mlp": 60}})
    ax = fig.axes[0]
    assert labelled(ax) and "%" in ax.get_xlabel()
    widths = {}
    for bar in ax.patches:
        widths[bar.get_y()] = widths.get(bar.get_y(), 0) + bar.get_width()
    assert all(abs(w - 100) < 1e-9 for w in widths.values()) and len(widths) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["embeddings", "attention", "mlp"]


def test_vocab_tradeoff_curve_and_cost():
    fig = plots.vocab_tradeoff({500: 2.5, 1000: 3.0, 4000: 3.9}, {"gpt2": (50257, 4.4)}, d_model=256)
    assert len(fig.axes) == 2 and all(labelled(ax) for ax in fig.axes)
    assert fig.axes[0].get_xscale() == "log"
    cost = fig.axes[1].lines[0].get_ydata()
    assert cost[-1] == pytest.approx(50257 * 256 / 1e6)


# --- notebook 02: the next-token distribution at several temperatures -----------------------------
def test_temperature_panels_show_each_temperature_and_the_rest_of_the_vocabulary():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0, -2.0])
    top = [0, 1, 2]  # the three best tokens; the other three are "all other tokens"
    probs = {t: torch.softmax(logits / t, -1)[top] for t in (0.5, 1.0, 2.0)}
    fig = plots.temperature_panels(probs, ["a", " b", "\n"], title="after 'x'")
    assert fig.get_suptitle() == "after 'x'" and len(fig.axes) == 3
    for ax, (t, p) in zip(fig.axes, probs.items()):
        assert ax.get_title() == f"T = {t:g}" and ax.get_xlabel() == "probability"
        heights = [bar.get_width() for bar in ax.patches]
        assert heights[:3] == pytest.approx(p.tolist(), abs=1e-6)
        assert heights[3] == pytest.approx(1 - p.sum().item(), abs=1e-6)  # the grey bar: the rest of the vocabulary
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["'a'", "' b'", "'\\n'",
                                                                     "(all other tokens)"]
    assert fig.axes[0].get_ylabel()
    rest = [ax.patches[3].get_width() for ax in fig.axes]
    assert rest == sorted(rest)  # hotter -> more of the probability leaves the top tokens
    with pytest.raises(ValueError, match="2 probabilities for 3 labels"):
        plots.temperature_panels({1.0: [0.5, 0.2]}, ["a", "b", "c"], title="t")


# --- the attention widget (lmguide.widgets.attention_explorer) ------------------------------------
def test_attention_explorer_draws_the_chosen_head():
    pytest.importorskip("ipywidgets")
    from lmguide.widgets import attention_explorer

    gpt = tuple(torch.softmax(torch.randn(1, 4, 3, 3), -1) for _ in range(2))  # 2 layers, 4 heads
    bert = tuple(torch.softmax(torch.randn(1, 2, 5, 5), -1) for _ in range(3))  # 3 layers, 2 heads
    box = attention_explorer({"gpt": (gpt, TOKENS[:3]), "bert": (bert, list("abcde"))}, layer=1, head=3)
    c = box.controls
    assert (c["layer"].max, c["head"].max, c["layer"].value, c["head"].value) == (1, 3, 1, 3)
    fig = box.draw()
    assert fig.axes[0].get_title() == "gpt: layer 1, head 3"
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), gpt[1][0, 3].numpy())
    c["model"].value = "bert"  # fewer heads: the head slider is clamped and the picture redrawn
    assert (c["layer"].max, c["head"].max, c["head"].value) == (2, 1, 1)
    assert box.draw().axes[0].get_title() == "bert: layer 1, head 1"
    assert plt.get_fignums() == []  # the widget closes its figures; nothing is shown twice
    with pytest.raises(ValueError, match="sources is empty"):
        attention_explorer({})


# --- the numbers behind param_shares (lmguide.params.count_by_part) ------------------------------
def test_count_by_part_matches_the_gpt2_formula_and_covers_every_parameter():
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from lmguide.params import count_by_part, gpt2_param_count

    torch.manual_seed(123)
    gpt_config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100,
                            bos_token_id=0, eos_token_id=0, pad_token_id=0)
    gpt = GPT2LMHeadModel(gpt_config)
    parts, formula = count_by_part(gpt), gpt2_param_count(gpt_config)
    assert parts == {"embeddings": formula["token_embedding"] + formula["position_embedding"],
                     "attention": formula["attention"], "mlp": formula["mlp"], "norms": formula["layer_norm"],
                     "other": 0}
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                         bos_token_id=0, eos_token_id=0, pad_token_id=0))
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64, pad_token_id=0))
    for model in (gpt, llama, bert):
        parts = count_by_part(model)
        assert sum(parts.values()) == sum(p.numel() for p in model.parameters())
        assert min(parts["embeddings"], parts["attention"], parts["mlp"], parts["norms"]) > 0
    d, inner, L = 32, 64, 2
    assert count_by_part(llama)["mlp"] == L * 3 * d * inner  # gate, up and down projections
    assert count_by_part(llama)["attention"] == L * (2 * d * d + 2 * d * (d // 2))  # k, v shared by 2 heads
    assert count_by_part(bert)["other"] == d * d + d  # the pooler
    fig = plots.param_shares({"gpt": count_by_part(gpt), "bert": count_by_part(bert)})
    assert labelled(fig.axes[0])


def test_plots_of_generation_have_titles_and_labelled_axes():
    import matplotlib.pyplot as plt

    rows = [{"new tokens": n, "with cache s": 0.01 * n, "without cache s": 0.0005 * n * n} for n in (10, 20)]
    fig = plots.kv_cache_times(rows, title="kv")
    ax = fig.axes[0]
    assert ax.get_title() == "kv" and "s" in ax.get_ylabel() and "tokens" in ax.get_xlabel()
    assert len(ax.lines) == 2
    fig = plots.top_tokens_bar([" the", "\n", "é"], [0.5, 0.3, 0.1], title="next")
    ax = fig.axes[0]
    assert ax.get_title() == "next" and ax.get_xlabel().startswith("probability")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["' the'", "'\\n'", "'\\xe9'"]  # ascii(): visible, no missing glyphs
    plt.close("all")


# --- notebook 03: recall and span pictures -------------------------------------------------------
def test_recall_curves_draw_one_line_per_method_in_percent():
    fig = plots.recall_curves({"BM25": {1: 0.5, 5: 0.8}, "semantic": {1: 0.25, 5: 0.9}}, title="t")
    ax = fig.axes[0]
    assert labelled(ax) and len(ax.lines) == 2
    assert list(ax.lines[0].get_ydata()) == [50.0, 80.0]
    with pytest.raises(ValueError, match="at least one method"):
        plots.recall_curves({})


SPAN_TOKENS = ["[CLS]", "q1", "q2", "[SEP]", "c5", "c6", "c7", "c8", "[SEP]"]
START = torch.tensor([1.0, 0.0, 9.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0])  # argmax 2: in the question
END = torch.tensor([1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 2.0, 3.0, 0.0])    # argmax 4: before the best start
CONTEXT = torch.tensor([False, False, False, False, True, True, True, True, False])


def test_span_logits_marks_the_argmaxes_and_the_best_legal_span():
    fig = plots.span_logits(START, END, CONTEXT, SPAN_TOKENS, max_answer_len=3, title="t")
    top, bottom = fig.axes[:2]
    assert top.get_title() == "t" and top.get_ylabel() and bottom.get_xlabel()
    assert "tokens 5-7" in top.get_legend().get_texts()[0].get_text()  # 3 + 3 = 6 beats 3 + 2 and 0 + 4
    assert "argmax start: 2" in [t.get_text() for t in top.texts]
    assert "argmax end: 4" in [t.get_text() for t in bottom.texts]
    grey = [tuple(p.get_facecolor()) for p in top.patches[:4]]
    assert len(set(grey)) == 1  # question and special tokens share the grey
    with pytest.raises(ValueError, match="one length"):
        plots.span_logits(START, END[:-1], CONTEXT, SPAN_TOKENS)


def test_span_scores_greys_illegal_spans_and_frames_the_best():
    fig = plots.span_scores(START, END, CONTEXT, SPAN_TOKENS, max_answer_len=3, title="t")
    ax = fig.axes[0]
    assert labelled(ax)
    grid = np.ma.getdata(ax.images[0].get_array())
    assert np.isnan(grid[2, 4]) and np.isnan(grid[7, 5])  # start in the question; end before start
    assert grid[5, 7] == 6.0 and np.nanmax(grid) == 6.0
    frame = [p for p in ax.patches if isinstance(p, plt.Rectangle)][0]
    assert frame.get_xy() == (7 - 0.5, 5 - 0.5)  # column = end, row = start
    assert any("separate argmaxes: start 2, end 4" in t.get_text() for t in ax.get_legend().get_texts())
