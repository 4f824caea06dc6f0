import numpy as np
import pytest
import torch

from lmguide import _util, quantize as qz
from lmguide.measure import precision


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=160, vocab_size=96)).eval()


def test_int8_linear_weights_are_about_a_quarter_of_fp32():
    model = _tiny_gpt2()
    qz.conv1d_to_linear(model)
    before = precision.linear_weight_bytes(model)["linear weights"]
    after = precision.linear_weight_bytes(qz.quantize_model(model, bits=8))["linear weights"]
    assert 3.5 < before / after <= 4.0


def test_torch_dynamic_int8_linear_weights_count_codes_and_scales():
    model = torch.nn.Sequential(torch.nn.Linear(64, 32))
    sizes = precision.linear_weight_bytes(qz.dynamic_int8(model))
    assert sizes["linear weights"] == 64 * 32 + 8  # int8 codes and one float64 scale per tensor


def test_stored_bytes_follow_the_precision():
    fp32 = precision.stored_bytes(_tiny_gpt2())
    bf16 = precision.stored_bytes(qz.to_precision(_tiny_gpt2(), "bf16"))
    ours = precision.stored_bytes(qz.to_precision(_tiny_gpt2(), "int8 (ours)"))
    assert bf16 == fp32 // 2
    assert ours < 0.5 * fp32 and ours == qz.quantized_file_bytes(qz.to_precision(_tiny_gpt2(), "int8 (ours)"))


def test_supports_bf16_reports_booleans():
    info = precision.supports_bf16()
    assert isinstance(info["bf16"], bool) and isinstance(info["fp16"], bool)
    assert np.all([isinstance(f, str) for f in info["cpu flags"]])


def test_forward_and_decode_latency_time_the_model():
    model = _tiny_gpt2()
    forward = precision.forward_latency(model, batch=2, length=16, repeats=2, warmup=0)
    step = precision.decode_latency(model, prompt_length=16, repeats=2, warmup=0)
    assert len(forward.seconds) == 2 and len(step.seconds) == 2 and min(forward.seconds + step.seconds) > 0


def test_time_by_op_shares_add_up_to_one():
    table = precision.time_by_op(_tiny_gpt2(), batch=2, length=16, warmup=0)
    assert list(table.index) == ["matrix multiplies", "attention (scores, softmax)", "everything else"]
    assert table["share"].sum() == pytest.approx(1.0)


def test_quality_key_names_the_weights_and_the_precision(monkeypatch):
    from lmguide import zoo

    monkeypatch.setattr(zoo, "fingerprint", lambda name: "abc123")
    assert precision.quality_key("austen-gpt-large", "int8 (ours)") == "austen-gpt-large-abc123-int8-ours"


def test_measure_precision_row_uses_mib_and_the_one_scorer(monkeypatch):
    from lmguide import zoo
    from lmguide.measure import quality

    class Entry:
        kind = "causal-lm"

    monkeypatch.setattr(zoo, "load", lambda name: (_tiny_gpt2(), None))
    monkeypatch.setattr(zoo, "entry", lambda name: Entry())
    monkeypatch.setattr(zoo, "fingerprint", lambda name: "abc123")
    asked = {}

    def fake_score(model, tokenizer, kind, key=None, quick=False):
        asked.update(kind=kind, key=key)
        return {"task": quality.TASKS[kind], "value": 1.25, "cached": True}

    monkeypatch.setattr(quality, "score", fake_score)
    row = precision.measure_precision("tiny", "int8 (ours)", repeats=1, decode_repeats=1)
    assert asked == {"kind": "causal-lm", "key": "tiny-abc123-int8-ours"}
    assert row["quality task"] == "Austen test bits/byte" and row["quality"] == 1.25
    model = qz.to_precision(_tiny_gpt2(), "int8 (ours)")
    assert row["size MiB"] == pytest.approx(precision.stored_bytes(model) / _util.MIB)
    assert row["linear weights MiB"] == pytest.approx(precision.linear_weight_bytes(model)["linear weights"] / _util.MIB)
    assert row["forward 8x128 ms"] > 0 and row["decode 1 token ms"] > 0
    assert not any("MB" in k or "(" in k for k in row)


def test_shipped_cards_use_mib_and_the_scorer_vocabulary(tmp_path):
    import json
    import shutil

    from lmguide import zoo
    from lmguide.measure import quality
    from lmguide.recipes import quantized

    for variant in quantized.VARIANTS:
        folder = zoo.WEIGHTS / variant
        rows = json.loads((folder / "training.json").read_text())["results"]
        assert {r["precision"] for r in rows} == set(qz.PRECISIONS)
        for r in rows:
            assert "size MiB" in r and "linear weights MiB" in r and not any("MB" in k for k in r)
            assert r["quality task"] in quality.TASKS.values()
        # the card is what the recipe writes from training.json, nothing edited by hand
        shutil.copy(folder / "training.json", tmp_path / "training.json")
        card = quantized.write_card(variant, tmp_path)
        assert card.read_text() == (folder / "README.md").read_text()
