import pytest

from lmguide import cli, zoo


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
    assert out.count(": ok") == len(zoo.names())
    lms = [n for n, e in zoo.ENTRIES.items() if e.kind == "causal-lm" and not e.parent]
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
