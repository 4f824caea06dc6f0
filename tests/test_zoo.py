import json
import shutil

import pytest
import torch

from lmguide import zoo


@pytest.mark.parametrize("name", zoo.names())
def test_every_model_loads_offline_and_runs(name):
    model, tokenizer = zoo.load(name)
    assert not model.training
    assert tokenizer.pad_token is not None
    batch = tokenizer(["It is a truth universally acknowledged", "Hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**batch)
    first = out.logits if hasattr(out, "logits") else getattr(out, "start_logits", None)
    if first is None:
        first = out.last_hidden_state
    assert first.shape[0] == 2 and torch.isfinite(first).all()
    assert sum(p.numel() for p in model.parameters()) == zoo.ENTRIES[name].parameters


@pytest.mark.parametrize("name", zoo.names())
def test_path_is_what_from_pretrained_accepts(name):
    from transformers import AutoConfig, AutoTokenizer

    folder = zoo.path(name)
    assert AutoConfig.from_pretrained(folder).model_type
    assert AutoTokenizer.from_pretrained(folder)("a test")["input_ids"]


def test_table_lists_every_model_with_size_and_source():
    rows = zoo.table()
    assert [r["name"] for r in rows] == zoo.names()
    for r in rows:
        assert r["size on disk"].endswith("MiB"), r
        assert r["source"] and r["licence"]
    text = zoo.format_table()
    assert all(name in text for name in zoo.names())


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
    monkeypatch.setattr(zoo, "_package_dir", lambda e: copy)
    with pytest.raises(zoo.ModelNotAvailable, match="config.json .* damaged .* reinstall"):
        zoo.path(entry.name)


def test_damaged_converted_model_is_detected_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    fake = tmp_path / "models" / "smollm2-135m"
    fake.mkdir(parents=True)
    (fake / "model.safetensors").write_bytes(b"weights")
    (fake / "lmguide-manifest.json").write_text(json.dumps({"files": {"model.safetensors": zoo.sha256(fake / "model.safetensors")}}))
    rebuilt = []
    monkeypatch.setattr(zoo, "_convert_smollm2", lambda force=False, progress=True: rebuilt.append(force) or fake)
    assert zoo.path("smollm2-135m") == fake and rebuilt == []  # intact: used as is
    (fake / "model.safetensors").write_bytes(b"weightz")  # one byte flipped
    assert zoo.path("smollm2-135m") == fake and rebuilt == [True]
    with pytest.raises(zoo.ModelNotAvailable, match="models prepare"):
        zoo.path("smollm2-135m", prepare=False)


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
