"""The llama.cpp engine on SmolLM2's Q4_1 GGUF, against the torch engine of the same weights de-quantized.

Skipped as a whole where llama-cpp-python is not built (``bash scripts/build_llama_cpp.sh``): it is optional.
"""
import subprocess
import sys

import pytest
import torch

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not built here (optional: bash scripts/build_llama_cpp.sh)")

from lmguide import engines, zoo  # noqa: E402
from lmguide.engines import llama_cpp as lc  # noqa: E402

TEXT = ("The old lighthouse keeper climbed the narrow stairs every evening, lit the great lamp, and watched "
        "the ships pass safely along the rocky coast until morning came.")


@pytest.fixture(scope="module")
def engine():
    if not lc.available():
        pytest.skip(lc.why_unavailable())
    return engines.open_engine("smollm2-135m", "llama.cpp")


@pytest.fixture(scope="module")
def reference():
    return engines.open_engine("smollm2-135m", "torch")


@pytest.fixture(scope="module")
def ids(reference):
    return reference.encode(TEXT)


@pytest.fixture
def fresh_probe(monkeypatch, tmp_path):
    """An empty user cache and no probe result remembered in this process."""
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    monkeypatch.setattr(lc, "_PROBED", {})
    return tmp_path / lc.PROBE_FILE


def test_same_tokenizer_and_chat_template_as_the_torch_engine(engine, reference, ids):
    assert engine.encode(TEXT) == ids
    assert engine.decode(ids) == reference.decode(ids)
    chat = [{"role": "user", "content": "Name a colour."}]
    ours = engine.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    theirs = reference.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert ours == theirs
    ids_ours = engine.tokenizer.apply_chat_template(chat, add_generation_prompt=True)["input_ids"]
    assert ids_ours == list(reference.tokenizer.apply_chat_template(chat, add_generation_prompt=True)["input_ids"])
    assert engine.prompt_ids("Name a colour.", chat=True) == ids_ours
    assert engine.eos_token_id == reference.eos_token_id


def test_logprobs_and_top1_match_the_dequantized_torch_engine(engine, reference, ids):
    """Same Q4_1 weights: llama.cpp multiplies them quantized, with activations rounded to 8 bits and a
    float16 cache; torch de-quantized, in float32. Measured here: mean |difference| 0.097 nats (max 0.28),
    KL 0.0035 nats, top-1 agreement 93 %. Broken engines measured: logits one row off 4.6 nats, the cache
    lost between chunks 2.4 nats; so the bound is 0.2."""
    context, continuation = ids[:1], ids[1:]
    ours = torch.tensor(engine.continuation_logprobs(context, continuation, chunk_size=8))
    theirs = torch.tensor(reference.continuation_logprobs(context, continuation, chunk_size=8))
    assert (ours - theirs).abs().mean() < 0.2, (ours - theirs).abs()
    engine.reset()
    reference.reset()
    top1 = engine.eval(ids).argmax(-1) == reference.eval(ids).argmax(-1)  # teacher-forced: every step the same past
    assert top1.float().mean() >= 0.8, top1


def test_greedy_generation_matches_torch_at_the_start(engine, reference):
    prompt = reference.encode("The capital of France is")
    ours, theirs = list(engine.generate(prompt, 8)), list(reference.generate(prompt, 8))
    assert ours[:4] == theirs[:4], (engine.decode(ours), reference.decode(theirs))


def test_truncated_tokens_leave_no_trace(engine, ids):
    engine.reset()
    engine.eval(ids[:10])
    first = engine.eval(ids[10:15])
    engine.truncate(10)
    assert engine.n_cached == 10
    again = engine.eval(ids[10:15])
    torch.testing.assert_close(again, first, rtol=0, atol=0)  # the same batch on the same cache: bit for bit
    engine.reset()
    fresh = engine.eval(ids[:15])[10:]  # one batch of 15: other kernels' rounding, the same model
    torch.testing.assert_close(again, fresh, rtol=0, atol=2e-3)


def test_chunked_logprobs_equal_one_chunk(engine, ids):
    one = engine.continuation_logprobs(ids[:3], ids[3:], chunk_size=64)
    chunked = engine.continuation_logprobs(ids[:3], ids[3:], chunk_size=4)
    torch.testing.assert_close(torch.tensor(chunked), torch.tensor(one), rtol=0, atol=2e-3)
    # an input longer than the engine's llama.cpp batch (its chunk_size) goes through in pieces
    engine.reset()
    whole = engine.eval(ids)
    assert whole.shape == (len(ids), engine.n_vocab) and engine.n_cached == len(ids)


def test_generate_streams_one_token_at_a_time(engine, ids):
    stream = engine.generate(ids[:8], 6, stop_at_eos=False)
    first = next(stream)
    assert engine.n_cached == 8  # the prompt is read; nothing after the first token yet
    rest = list(stream)
    assert [first, *rest] == list(engine.generate(ids[:8], 6, stop_at_eos=False))
    assert engine.n_cached == 8 + 5


def test_weight_bytes_follow_the_gguf_header(engine):
    from lmguide.gguf_blocks import gguf_tensors

    tensors = {t["name"]: t["bytes"] for t in gguf_tensors(engine.file)}
    assert lc.gguf_tensor_bytes(engine.file) == tensors
    assert "output.weight" not in tensors  # SmolLM2's head is its embedding table: read whole, once
    assert engine.weight_bytes == sum(tensors.values())
    untied = {"token_embd.weight": 100, "output.weight": 60, "blk.0.attn_q.weight": 7}
    assert lc.step_bytes(untied) == 67  # a separate head: one row of the table per step, not the table


def test_loading_and_decoding_print_nothing():
    code = ("from lmguide.engines import llama_cpp as lc; e = lc.LlamaCppEngine.load('smollm2-135m'); "
            "print(e.decode(list(e.generate(e.encode('Hello'), 3))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr == "" and out.stdout.strip(), out.stderr[-2000:]


def test_the_probe_result_is_cached_per_build(fresh_probe, monkeypatch):
    assert lc.available(), lc.why_unavailable()
    stored = fresh_probe.read_text()
    assert lc.build_key() in stored
    monkeypatch.setattr(lc, "_PROBED", {})  # a new process: only the cache file remembers

    def no_subprocess(*args, **kwargs):
        raise AssertionError("the probe ran again for the same build")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert lc.available() and "ready" in lc.why_unavailable()


def test_a_crashing_build_is_one_sentence_and_unavailable(fresh_probe, monkeypatch):
    monkeypatch.setattr(lc, "PROBE_SCRIPT", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert not lc.available()
    why = lc.why_unavailable()
    assert why.startswith("llama.cpp crashed in a test run (signal 11")
    assert "bash scripts/build_llama_cpp.sh --force" in why and "\n" not in why
    with pytest.raises(zoo.ModelNotAvailable, match=r"crashed in a test run") as caught:
        engines.open_engine("smollm2-135m", "llama.cpp")
    assert str(caught.value) == why
    assert '"ok": false' in fresh_probe.read_text()  # a crash is a verdict on this build: kept


def test_an_illegal_instruction_says_how_to_build_for_this_cpu(fresh_probe, monkeypatch):
    monkeypatch.setattr(lc, "PROBE_SCRIPT", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    why = lc.why_unavailable()
    assert why.startswith("llama.cpp crashed in a test run (signal 4, SIGILL") and "-DGGML_NATIVE=ON" in why
    assert not lc.available()


def test_without_llama_cpp_opening_the_engine_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` fails, find_spec finds nothing
    monkeypatch.setattr(lc, "_PROBED", {})
    assert not lc.available()
    with pytest.raises(zoo.ModelNotAvailable) as caught:
        engines.open_engine("smollm2-135m", "llama.cpp")
    message = str(caught.value)
    assert message.startswith("llama.cpp is not installed") and "bash scripts/build_llama_cpp.sh" in message
    assert "\n" not in message
    small = engines.open_engine("austen-gpt-small", "torch")  # the other engines are untouched
    assert len(list(small.generate(small.encode("It is"), 3))) == 3


@pytest.mark.parametrize("option, message", [({"threads": 0}, "threads must be an integer >= 1"),
                                             ({"context": 0}, "context must be an integer >= 1"),
                                             ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
                                             ({"precision": "int8"}, "unknown option 'precision' for the llama.cpp")])
def test_bad_options_are_one_sentence(option, message):
    with pytest.raises(ValueError, match=message):
        engines.open_engine("smollm2-135m", "llama.cpp", **option)


def test_a_model_without_gguf_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match=r"austen-gpt-small has no GGUF file.*smollm2-135m"):
        engines.open_engine("austen-gpt-small", "llama.cpp")


@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b"])
def test_the_ladder_loads_as_an_engine(name, engine):
    try:
        zoo.path(name, prepare=False)
    except (zoo.ModelNotAvailable, KeyError):
        pytest.skip(f"{name} is not prepared here (the optional size ladder)")
    import lmguide

    ladder, tokenizer = lmguide.load(name)
    assert ladder.kind == "llama.cpp" and ladder.tokenizer is tokenizer and ladder.name == name
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Say hi."}], add_generation_prompt=True,
                                           return_dict=False)
    reply = tokenizer.decode(list(ladder.generate(prompt, 6)), skip_special_tokens=True)
    assert reply.strip()
    assert 0 < ladder.weight_bytes < ladder.file.stat().st_size
