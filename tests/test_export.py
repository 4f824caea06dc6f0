"""ONNX export of a decode step with its KV cache: the graph agrees with torch, token for token."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide import export
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


def test_exported_logits_match_torch(tiny):
    model, fp32 = tiny
    engine = export.OrtGenerator(fp32, model.config, threads=1)
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    assert export.check_logits(model, engine, ids) < 1e-4


def test_greedy_decoding_with_the_cache_gives_torchs_tokens(tiny):
    model, fp32 = tiny
    engine = export.OrtGenerator(fp32, model.config, threads=1)
    ids = torch.tensor([[5, 17, 42]])
    assert torch.equal(engine.greedy(ids, 12), greedy_generate(model, ids, 12))
    with pytest.raises(ValueError, match="one sequence at a time"):
        engine.greedy(ids.repeat(2, 1), 3)


def test_int8_graph_is_smaller_and_close(tiny):
    model, fp32 = tiny
    int8 = export.quantize_int8(fp32)
    assert int8.is_file() and int8 != fp32
    assert export.onnx_size_mib(int8) < export.onnx_size_mib(fp32)
    engine = export.OrtGenerator(int8, model.config, threads=1)
    ids = torch.tensor([[5, 17, 42, 8]])
    with torch.no_grad():
        want = model(ids).logits
    got = engine.prompt_logits(ids)
    assert got.shape == want.shape
    # int8 weights change the logits a little, not a lot (relative to their spread)
    assert float((got - want).abs().max()) < 0.5 * float(want.std()) + 0.05


def test_unknown_engine_is_one_sentence(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="unknown engine"):
        export.engines("tiny", model, None, which=("tensorrt",))
