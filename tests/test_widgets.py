"""The generation widget builds with its controls and generates what generate_text would."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

pytest.importorskip("ipywidgets")

from lmguide.sampling import generate_text  # noqa: E402
from lmguide.widgets import generation_widget  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    from lmguide.tokenization import train_bpe

    tok = train_bpe("It is a truth universally acknowledged, that a single man " * 20, vocab_size=300)
    torch.manual_seed(123)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=32, vocab_size=len(tok),
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    return GPT2LMHeadModel(config).eval(), tok


def test_widget_has_the_expected_controls(tiny):
    import ipywidgets as w

    box = generation_widget({"tiny": tiny, "tiny again": tiny}, prompt="It is a truth")
    c = box.controls
    assert set(c) == {"prompt", "model", "temperature", "top_k", "top_p", "max_new_tokens", "seed",
                      "generate", "output"}
    assert isinstance(box, w.VBox)
    assert isinstance(c["prompt"], w.Textarea) and c["prompt"].value == "It is a truth"
    assert isinstance(c["model"], w.Dropdown) and list(c["model"].options) == ["tiny", "tiny again"]
    assert isinstance(c["temperature"], w.FloatSlider) and c["temperature"].min == 0.0
    assert isinstance(c["top_k"], w.IntSlider) and c["top_k"].min == 0
    assert isinstance(c["top_p"], w.FloatSlider) and c["top_p"].max == 1.0
    assert isinstance(c["max_new_tokens"], w.IntSlider)
    assert isinstance(c["generate"], w.Button) and isinstance(c["output"], w.HTML)


def test_widget_generates_like_generate_text(tiny):
    model, tok = tiny
    box = generation_widget({"tiny": tiny}, prompt="a single man", max_new_tokens=6)
    c = box.controls
    c["temperature"].value = 0.0  # greedy
    assert box.generate() == generate_text(model, tok, "a single man", max_new_tokens=6)
    c["temperature"].value, c["top_k"].value, c["top_p"].value, c["seed"].value = 1.2, 0, 0.9, 5
    sampled = box.generate()
    assert sampled == generate_text(model, tok, "a single man", max_new_tokens=6, strategy="sample",
                                    temperature=1.2, top_p=0.9, seed=5)
    assert "<b>a single man</b>" in c["output"].value


def test_button_click_fills_the_output_and_long_requests_are_clipped(tiny):
    box = generation_widget({"tiny": tiny}, prompt="It is a truth")
    c = box.controls
    c["max_new_tokens"].value = 200  # more than the 32-token context holds
    c["generate"].click()
    assert "It is a truth" in c["output"].value
    assert "new tokens fit in the model's context of 32" in c["output"].value


def test_widget_reports_bad_settings_in_one_sentence(tiny):
    box = generation_widget({"tiny": tiny}, prompt="")
    assert box.generate() == ""
    assert "Cannot generate" in box.controls["output"].value and "prompt is empty" in box.controls["output"].value
    with pytest.raises(ValueError, match="models is empty"):
        generation_widget({})


def test_every_control_has_one_label_column_and_one_width(tiny):
    """Seen in a real browser: ipywidgets' default 80 px label column cut "temperature" to
    "temperat…", and labels of mixed widths made the slider tracks start at different places."""
    from lmguide import widgets

    c = generation_widget({"tiny": tiny}).controls
    rows = ["model", "seed", "temperature", "top_k", "top_p", "max_new_tokens"]
    assert {c[k].style.description_width for k in rows + ["prompt"]} == {widgets.LABEL_WIDTH}
    assert {c[k].layout.width for k in rows} == {widgets.CONTROL_WIDTH}
    label_px = int(widgets.LABEL_WIDTH.removesuffix("px"))
    longest = max((c[k].description for k in rows), key=len)
    assert len(longest) * 7.5 <= label_px, f"{longest!r} does not fit in {widgets.LABEL_WIDTH}"
    assert int(widgets.CONTROL_WIDTH.removesuffix("px")) - label_px >= 250  # room left for the track
