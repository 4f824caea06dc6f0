"""ONNX export of a decode step with its KV cache: the graph agrees with torch, token for token; and the
decode-speed table of notebook 07 (``lmguide.measure.decode``) measures each engine in its own process."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide import export
from lmguide.engines.onnx import OnnxEngine
from lmguide.measure import decode
from lmguide.sampling import greedy_generate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(123)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("onnx")
    fp32 = export.export_onnx(model, folder / "tiny.onnx")
    return model, fp32


def test_the_graph_takes_ids_mask_positions_and_every_layers_past(tiny):
    model, fp32 = tiny
    engine = OnnxEngine(fp32, None, model.config, threads=1)
    names = [i.name for i in engine.session.get_inputs()]
    assert names == ["input_ids", "attention_mask", "position_ids", *export.past_names(model.config)]
    assert names[3:] == ["past.0.key", "past.0.value", "past.1.key", "past.1.value"]
    assert [tuple(t.shape) for t in export.empty_past(model.config, 3)] == [(1, 2, 3, 16)] * 4


def test_exported_logits_match_torch(tiny):
    model, fp32 = tiny
    engine = OnnxEngine(fp32, None, model.config, threads=1)
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    assert export.check_logits(model, engine, ids) < 1e-4
    assert engine.n_cached == 0  # check_logits leaves the engine empty


def test_greedy_decoding_with_the_cache_gives_torchs_tokens(tiny):
    model, fp32 = tiny
    engine = OnnxEngine(fp32, None, model.config, threads=1)
    ids = torch.tensor([[5, 17, 42]])
    assert list(engine.generate(ids, 12)) == greedy_generate(model, ids, 12)[0, 3:].tolist()
    with pytest.raises(ValueError, match="one sequence at a time"):
        engine.generate(ids.repeat(2, 1), 3)


def test_int8_graph_is_smaller_and_close(tiny):
    model, fp32 = tiny
    int8 = export.quantize_int8(fp32)
    assert int8.is_file() and int8 != fp32
    assert export.onnx_size_mib(int8) < export.onnx_size_mib(fp32)
    engine = OnnxEngine(int8, None, model.config, threads=1)
    ids = torch.tensor([[5, 17, 42, 8]])
    with torch.no_grad():
        want = model(ids).logits[0]
    got = engine.eval(ids)
    assert got.shape == want.shape
    # int8 weights change the logits a little, not a lot (relative to their spread)
    assert float((got - want).abs().max()) < 0.5 * float(want.std()) + 0.05


def test_unknown_engine_is_one_sentence():
    for call in (lambda: decode.engine_speed("austen-gpt-small", "tensorrt"),
                 lambda: decode.open_variant("austen-gpt-small", "tensorrt"),
                 lambda: decode.decode_variants("austen-gpt-small", progress=False, which=("tensorrt",))):
        with pytest.raises(ValueError, match="unknown engine 'tensorrt'; choose from torch fp32, torch bf16"):
            call()
    with pytest.raises(ValueError, match="batch must be 1 for ort int8"):
        decode.engine_speed("austen-gpt-small", "ort int8", batch=2)


def test_decode_variants_measure_each_engine_in_its_own_process():
    # 3 repeats of 16 tokens: with 1 repeat of 3, a loaded machine once made the long run no slower than the
    # short one, and the decode speed (their difference) NaN
    rows = {r["engine"]: r for r in decode.decode_variants("austen-gpt-small", repeats=3, new_tokens=16, batch=2,
                                                           progress=False, which=("torch fp32", "torch bf16"))}
    assert list(rows) == ["torch fp32", "torch bf16", "torch fp32, batch 2"]
    assert rows["torch bf16"]["weights MiB"] == pytest.approx(rows["torch fp32"]["weights MiB"] / 2, rel=0.01)
    assert all(r["tokens/s"] > 0 and r["bound tokens/s"] > 0 for r in rows.values())
    batch = rows["torch fp32, batch 2"]
    assert batch["tokens/s"] == pytest.approx(2000 / batch["step ms"])  # two sequences per step
    assert {"weights MiB", "step ms", "tokens/s", "% of bound", "first token ms", "setup s", "file MiB",
            "peak RSS MiB"} <= set(batch)  # the columns notebook 07's stored tables have
    # each engine's process held one copy of the weights: not the test process's memory
    assert all(r["peak RSS MiB"] > 0 for r in rows.values())
