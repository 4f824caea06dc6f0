"""The engine seam: torch and onnxruntime answer the same interface with the same tokens and log-probabilities."""
import math

import pytest
import torch

import lmguide as lg
from lmguide import engines
from lmguide.engines.base import Engine
from lmguide.sampling import greedy_generate

NAME = "austen-gpt-small"  # 1.9 M parameters: every engine call takes milliseconds
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny matmuls: one thread is faster, and fair to a busy machine


@pytest.fixture(scope="module")
def loaded():
    return lg.load(NAME)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A user cache of this module's own: the ONNX export goes there, not into ~/.cache/lmguide."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("cache")
        mp.setenv("LMGUIDE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def both(loaded, cache):
    model, tokenizer = loaded
    return {"torch": engines.open_engine(NAME, "torch", model=model, tokenizer=tokenizer),
            "onnx": engines.open_engine(NAME, "onnx", model=model, tokenizer=tokenizer, threads=1)}


@pytest.fixture(params=["torch", "onnx"])
def engine(request, both):
    e = both[request.param]
    e.reset()
    return e


@pytest.fixture(scope="module")
def prompt(loaded):
    _, tokenizer = loaded
    return [tokenizer.bos_token_id] + tokenizer("It is a truth universally acknowledged, that")["input_ids"]


def test_every_engine_is_an_engine_of_its_kind(both, cache):
    assert set(engines.KINDS) >= {"torch", "onnx"}
    for kind, e in both.items():
        assert isinstance(e, Engine) and e.kind == kind and e.name == NAME and e.context_length == 256
    assert both["onnx"].file.is_relative_to(cache) and both["torch"].file is None
    assert math.isnan(both["torch"].file_mib()) and both["onnx"].file_mib() > 0


def test_greedy_tokens_match_sampling_greedy_generate(engine, loaded, prompt):
    model, _ = loaded
    want = greedy_generate(model, torch.tensor([prompt]), 30)[0, len(prompt):].tolist()
    assert list(engine.generate(prompt, 30, stop_at_eos=False)) == want
    assert engine.n_cached == len(prompt) + 29  # every token but the last was read
    text = engine.decode(want)
    assert isinstance(text, str) and text and engine.encode(text)  # round trip through the tokenizer


def test_generate_streams_one_token_at_a_time(engine, prompt):
    stream = engine.generate(prompt, 5, stop_at_eos=False)
    assert engine.n_cached == 0  # nothing runs before the first token is asked for
    first = next(stream)
    assert isinstance(first, int) and engine.n_cached == len(prompt)
    second = next(stream)
    assert isinstance(second, int) and engine.n_cached == len(prompt) + 1
    assert len(list(stream)) == 3


def test_generation_stops_at_eos(engine, prompt, monkeypatch):
    greedy = list(engine.generate(prompt, 6, stop_at_eos=False))
    monkeypatch.setattr(type(engine), "eos_token_id", property(lambda self: greedy[2]))
    assert list(engine.generate(prompt, 6)) == greedy[:3]


def test_continuation_logprobs_equal_a_full_forward(engine, loaded, prompt):
    model, _ = loaded
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids, attention_mask=torch.ones_like(ids)).logits[0].float(), dim=-1)  # (T, V)
    split = 3
    want = logp[split - 1:-1].gather(1, ids[0, split:, None])[:, 0]  # position i-1 predicts token i
    sizes = []
    forward = engine.forward_tokens
    engine.forward_tokens = lambda t: (sizes.append(len(t)), forward(t))[1]
    try:
        for chunk in (None, 3, 4, 1):  # 3 and 1: several chunks, and a last chunk of one token
            sizes.clear()
            got = engine.continuation_logprobs(prompt[:split], prompt[split:], chunk_size=chunk)
            torch.testing.assert_close(torch.tensor(got), want, atol=1e-4, rtol=0)
            assert max(sizes) <= (chunk or engine.chunk_size)  # never more positions per call than a chunk
        assert engine.continuation_logprobs(prompt[:2], []) == []
        one = engine.continuation_logprobs(prompt[:split], prompt[split:split + 1])
        assert one == pytest.approx([float(want[0])], abs=1e-4)
    finally:
        del engine.forward_tokens


def test_truncated_tokens_leave_no_trace(engine, both, prompt):
    accepted, rejected = [11, 12, 13], [400, 401, 402, 403]
    engine.eval(prompt)
    engine.eval(rejected)  # a draft the verifier rejects
    assert engine.n_cached == len(prompt) + len(rejected)
    engine.truncate(len(prompt))
    assert engine.n_cached == len(prompt)
    after = engine.eval(accepted)
    fresh = both[engine.kind]
    fresh.reset()
    want = fresh.eval(prompt + accepted)[-len(accepted):]
    torch.testing.assert_close(after, want, atol=1e-4, rtol=0)
    engine.reset()
    assert engine.n_cached == 0


def test_sampling_with_a_seed_repeats(engine, prompt):
    def run(seed, **options):
        return list(engine.generate(prompt, 12, temperature=1.0, seed=seed, stop_at_eos=False, **options))

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert run(7, top_k=5, top_p=0.9) == run(7, top_k=5, top_p=0.9)
    assert run(3, top_k=1) == list(engine.generate(prompt, 12, stop_at_eos=False))  # top-1 sampling is greedy


def test_time_step_rolls_the_cache_back_and_memory_is_reported(engine, prompt):
    engine.prefill(prompt)
    timing = engine.time_step(repeats=3)
    assert len(timing.seconds) == 3 and timing.median > 0
    assert engine.n_cached == len(prompt)
    memory = engine.memory()
    assert set(memory) == {"weights MiB", "RSS MiB", "peak RSS MiB"}
    assert 0 < memory["weights MiB"] < memory["peak RSS MiB"]


def test_precisions_change_the_bytes_a_step_reads(loaded):
    model, tokenizer = loaded
    fp32 = engines.open_engine(NAME, model=model, tokenizer=tokenizer)
    bf16 = engines.open_engine(NAME, "torch", precision="bf16", model=model, tokenizer=tokenizer)
    int8 = engines.open_engine(NAME, "torch", precision="int8", model=model, tokenizer=tokenizer)
    assert bf16.weight_bytes == pytest.approx(fp32.weight_bytes / 2, rel=0.01)
    # GPT-2's int8 copy quantizes only the (tied) head: the fp32 table is then read one row per step
    table = model.get_input_embeddings().weight
    assert int8.weight_bytes == pytest.approx(fp32.weight_bytes - 3 * table.numel(), rel=0.01)  # 4 bytes -> 1
    assert next(model.parameters()).dtype == torch.float32  # converted on copies
    prompt = tokenizer("It is a truth")["input_ids"]
    assert len(list(bf16.generate(prompt, 4, stop_at_eos=False))) == 4
    assert len(list(int8.generate(prompt, 4, stop_at_eos=False))) == 4


def test_onnx_int8_is_smaller_and_close(loaded, both, prompt):
    model, tokenizer = loaded
    int8 = engines.open_engine(NAME, "onnx", precision="int8", model=model, tokenizer=tokenizer, threads=1)
    fp32 = both["onnx"]
    assert int8.weight_bytes < fp32.weight_bytes
    fp32.reset()
    want = fp32.eval(prompt)
    got = int8.eval(prompt)
    assert float((got - want).abs().max()) < 0.5 * float(want.std()) + 0.05


@pytest.mark.parametrize("call, message", [
    (lambda e, p: e.generate(p, 5, temperature=-1), "temperature must be >= 0"),
    (lambda e, p: e.generate(p, 5, temperature=1, top_k=0), "top_k must be an integer >= 1"),
    (lambda e, p: e.generate(p, 5, temperature=1, top_p=1.5), r"top_p must be in \(0, 1\]"),
    (lambda e, p: e.generate(p, 0), "max_new_tokens must be an integer >= 1"),
    (lambda e, p: e.generate([], 5), "the prompt is empty"),
    (lambda e, p: e.generate(p, 250), "exceeds the model's context of 256 tokens"),
    (lambda e, p: e.generate(p, 5, seed=1.5), "seed must be an integer"),
    (lambda e, p: e.eval(torch.tensor([p, p])), "one sequence at a time"),
    (lambda e, p: e.eval([]), "ids is empty"),
    (lambda e, p: e.truncate(1), r"n must be an integer from 0 to 0, the positions cached"),
    (lambda e, p: e.continuation_logprobs([], p), "context_ids is empty"),
    (lambda e, p: e.continuation_logprobs(p, p, chunk_size=0), "chunk_size must be an integer >= 1"),
])
def test_bad_arguments_are_one_sentence(engine, prompt, call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call(engine, prompt)  # raised by the call itself: a generator's checks do not wait for its first token
    assert "\n" not in str(caught.value)


def test_bad_engine_choices_are_one_sentence(loaded):
    model, tokenizer = loaded
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'; choose from torch, onnx"):
        engines.open_engine(NAME, "tensorrt")
    with pytest.raises(ValueError, match="unknown precision 'int4'; choose from fp32, bf16, int8"):
        engines.open_engine(NAME, "torch", precision="int4", model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="unknown option 'quantize' for the onnx engine"):
        engines.open_engine(NAME, "onnx", quantize=True)


def test_default_kind_is_llama_cpp_only_for_the_gguf_ladder():
    from lmguide import engines, zoo

    kinds = {name: engines.default_kind(name) for name in zoo.names()}
    assert {n for n, k in kinds.items() if k == "llama.cpp"} == {n for n, e in zoo.ENTRIES.items() if e.chunks}
    assert kinds["smollm2-135m"] == "torch" and kinds["austen-gpt-small"] == "torch"


def test_answer_ids_is_the_greedy_text_without_its_eos(engine):
    ids = engine.encode("It is a truth universally acknowledged")
    tokens = list(engine.generate(ids, 40))
    assert engine.answer_ids(ids, 40) == [t for t in tokens if t != engine.eos_token_id]


def test_chat_ids_render_a_whole_conversation_and_refuse_a_model_without_a_template(both):
    smol = engines.open_engine("smollm2-135m")
    one = smol.chat_ids([{"role": "user", "content": "Hi"}])
    assert one == smol.prompt_ids("Hi", chat=True)
    two = smol.chat_ids([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    text = lambda ids: smol.decode(ids, skip_special_tokens=False)  # noqa: E731
    assert "Be brief." in text(two) and "Be brief." not in text(one)
    with pytest.raises(ValueError, match="no chat template"):
        both["torch"].chat_ids([{"role": "user", "content": "Hi"}])


def test_time_step_of_several_tokens_leaves_the_cache_as_it_found_it(engine):
    engine.reset()
    engine.prefill(engine.encode("It is a truth universally acknowledged"))
    before = engine.n_cached
    timing = engine.time_step(repeats=2, tokens=5)
    assert engine.n_cached == before and len(timing.seconds) == 2 and timing.result.shape[0] == 5
