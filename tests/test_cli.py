import dataclasses
import re

import pytest

from lmguide import cli, makers, zoo


def test_models_list_prints_every_model(capsys):
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.names())
    assert "MiB" in out and "PyPI" in out
    assert cli.main(["models", "list", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,kind,parent") and len(lines) == 1 + len(zoo.names())


def test_models_prepare_is_idempotent(capsys):
    assert cli.main(["models", "prepare"]) == 0
    out = capsys.readouterr().out
    assert "making" not in out  # already prepared: nothing redone
    left_out = [n for n, e in zoo.ENTRIES.items() if makers.left_out(e)]  # the optional ladder, when not installed
    assert out.count(": ok") == len(zoo.names()) - len(left_out) and out.count(": not installed") == len(left_out)
    lms = [n for n, e in zoo.ENTRIES.items() if e.kind == "causal-lm" and not e.parent and not e.chunks]
    assert out.count("on the whole test split (cached)") == len(lms)  # the notebooks' figures, made once


@pytest.mark.parametrize("flag, env, measured", [([], "", True), (["--no-measure"], "", False),
                                                 ([], "1", False), ([], "0", True)])
def test_held_out_measurement_is_skipped_by_the_flag_or_the_environment(capsys, monkeypatch, flag, env, measured):
    monkeypatch.setenv("LMGUIDE_NO_MEASURE", env)
    assert cli.main(["models", "prepare", *flag]) == 0
    assert ("on the whole test split" in capsys.readouterr().out) == measured


def test_doctor_reports_offline_and_all_models(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "offline" in out and "All good." in out
    assert all(f"model {name}" in out for name in zoo.names())


def _fake_ladder(monkeypatch, tmp_path, installed: int, of: int):
    """A zoo of one chunked entry whose first ``installed`` of ``of`` chunk packages exist (on sys.path)."""
    chunks = []
    for i in range(1, of + 1):
        if i <= installed:
            (tmp_path / "site" / f"lmguide_fake_part{i}" / "data").mkdir(parents=True)
            (tmp_path / "site" / f"lmguide_fake_part{i}" / "data" / "part.bin").write_bytes(b"chunk")
        chunks.append([f"lmguide-fake-part{i}==1.0", f"lmguide_fake_part{i}/data/part.bin", "0" * 64])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("LMGUIDE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(makers.NO_LADDER, raising=False)
    e = dataclasses.replace(zoo.ENTRIES["qwen2.5-coder-0.5b"], name="fake-ladder", chunks=chunks)
    monkeypatch.setattr(zoo, "ENTRIES", {e.name: e})
    return e


def test_a_ladder_that_is_not_installed_is_one_line_everywhere_and_no_failure(capsys, monkeypatch, tmp_path):
    e = _fake_ladder(monkeypatch, tmp_path, installed=0, of=2)
    assert cli.main(["models", "prepare", "--no-measure"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"fake-ladder: {makers.left_out(e)}"]
    assert "not installed (the optional size ladder" in makers.left_out(e) and makers.LADDER_INSTALL in makers.left_out(e)
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"model fake-ladder +not installed", out) and re.search(r"size ladder +not installed", out)
    assert "All good." in out
    assert cli.main(["models", "list"]) == 0
    assert "size ladder (requirements-ladder.txt): not installed; optional:" in capsys.readouterr().out
    monkeypatch.setenv(makers.NO_LADDER, "1")
    assert cli.main(["models", "prepare", "--no-measure"]) == 0
    assert capsys.readouterr().out == "fake-ladder: not installed (LMGUIDE_NO_LADDER=1 leaves out the optional size ladder)\n"


def test_a_partly_installed_ladder_fails_prepare_naming_what_to_install(capsys, monkeypatch, tmp_path):
    _fake_ladder(monkeypatch, tmp_path, installed=1, of=2)
    assert cli.main(["models", "prepare", "--no-measure"]) == 1
    out = capsys.readouterr().out
    assert "fake-ladder: NOT READY: fake-ladder: 1 of its 2 chunk packages are not installed (lmguide-fake-part2==1.0)" in out
    assert cli.main(["doctor"]) == 1
    assert re.search(r"size ladder +partly installed \(1 of 2 chunk packages\)", capsys.readouterr().out)


def test_list_says_whether_the_real_ladder_is_installed_and_the_disk_it_takes(capsys):
    assert cli.main(["models", "list"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    state, advice = makers.ladder_state()
    assert line.startswith("size ladder (requirements-ladder.txt): ") and state in line
    assert "MiB of chunks in site-packages" in state or state == "not installed"


def _ladder_runs() -> bool:
    from lmguide.engines import llama_cpp

    return llama_cpp.available() and not makers.left_out(zoo.entry("qwen2.5-coder-1.5b"))


@pytest.mark.parametrize("argv, message", [
    (["generate", "gpt-17", "hi"], "'gpt-17' is not a causal language model in the zoo; choose from"),
    (["generate", "minilm-l6", "hi"], "'minilm-l6' is not a causal language model"),
    (["generate", "austen-gpt-small", "hi", "--max-new-tokens", "0"], "--max-new-tokens must be >= 1 (got 0)"),
    (["generate", "austen-gpt-small", "hi", "--temperature", "-1"], "--temperature must be >= 0 (got -1.0)"),
    (["generate", "austen-gpt-small", "hi", "--seed", "3"], "--seed only matters with sampling"),
    (["generate", "austen-gpt-small", "hi", "--chat"], "austen-gpt-small has no chat template in its files"),
    (["generate", "austen-gpt-large", "hi", "--draft", "gpt-17"], "'gpt-17' is not a causal language model"),
    (["generate", "austen-gpt-large", "hi", "--draft", "minilm-qa"], "'minilm-qa' is not a causal language model"),
    (["generate", "austen-gpt-large", "hi", "--draft", "austen-gpt-small", "--temperature", "0.7"],
     "--draft decodes greedily (got --temperature 0.7)"),
    (["generate", "austen-gpt-large", "hi", "--draft", "austen-gpt-small", "--k", "0"], "--k must be >= 1 (got 0)"),
])
def test_generate_bad_input_is_one_sentence(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_generate_is_greedy_by_default_and_seeded_when_sampling(capsys):
    outputs = []
    for argv in (["generate", "austen-gpt-small", "It is a truth", "--max-new-tokens", "12"],) * 2 + (
            ["generate", "austen-gpt-small", "It is a truth", "--max-new-tokens", "12", "--temperature", "1.5",
             "--seed", "1"],) * 2:
        assert cli.main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[2] == outputs[3]  # greedy, and sampling with one seed, repeat
    assert outputs[0].strip() and outputs[0] != outputs[2]


def test_generate_with_a_draft_prints_what_the_plain_command_prints(capsys):
    argv = ["generate", "austen-gpt-large", "It is a truth universally", "--max-new-tokens", "24"]
    assert cli.main(argv) == 0
    plain = capsys.readouterr().out
    for draft in ("austen-gpt-small", "smollm2-135m"):  # by token id, and by text across tokenizers
        assert cli.main(argv + ["--draft", draft, "--k", "3"]) == 0
        out = capsys.readouterr()
        assert out.out == plain, draft
        assert f"draft {draft}" in out.err and "accepted" in out.err and "peak RSS" in out.err
        assert ("by token id" in out.err) == (draft == "austen-gpt-small")


def test_generate_streams_the_answer_piece_by_piece(monkeypatch, capsys):
    from lmguide.engines.base import Engine

    pieces = []
    real = Engine.stream_text

    def spy(self, *args, **kwargs):
        for piece in real(self, *args, **kwargs):
            pieces.append(piece)
            yield piece

    monkeypatch.setattr(Engine, "stream_text", spy)
    assert cli.main(["generate", "austen-gpt-small", "It is a truth", "--max-new-tokens", "8"]) == 0
    assert len(pieces) > 1 and capsys.readouterr().out == "".join(pieces) + "\n"


@pytest.mark.skipif(not _ladder_runs(), reason="the size ladder or the llama.cpp build is not installed here")
def test_generate_chats_with_the_ladder_offline(capsys):
    assert cli.main(["generate", "qwen2.5-coder-1.5b", "What is the capital of Australia?", "--chat",
                     "--max-new-tokens", "16"]) == 0
    assert "canberra" in capsys.readouterr().out.lower()


def test_bench_extras_then_stores_the_ladders_answers(monkeypatch):
    """``lmguide bench --extras`` re-makes the answer files the package ships, naming the command; help does not."""
    from lmguide.measure import command
    from lmguide.recipes import ladder

    stored = []
    monkeypatch.setattr(command, "main", lambda argv: 0)
    monkeypatch.setattr(ladder, "store_extra", lambda flag, how: stored.append((flag, how)))
    assert cli.main(["bench", "--extras", "--models", "austen-gpt-small"]) == 0
    assert stored == [(flag, "lmguide bench --extras") for flag in ladder.extras()]
    stored.clear()
    assert cli.main(["bench", "--extras", "-h"]) == 0 and cli.main(["bench", "--models", "austen-gpt-small"]) == 0
    assert stored == []
