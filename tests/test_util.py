"""The shared helpers: warning capture, memory, cache keys and atomic cache files (lmguide._util)."""
import logging
import warnings

from lmguide import _util


def test_capture_warnings_records_instead_of_printing(capsys):
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with _util.capture_warnings() as caught:
        warnings.warn("python warning here", UserWarning)
        hf_logging.get_logger("transformers.generation").warning("transformers warning here")
    assert "transformers warning here" in caught
    assert "UserWarning: python warning here" in caught
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
    assert hf_logging.get_verbosity() == logging.ERROR  # restored


def test_cached_json_computes_once_and_reads_back(tmp_path):
    calls = []
    compute = lambda: calls.append(1) or {"value": 1.5}
    file = tmp_path / "bench" / "bpb-some-model-abc.json"
    first = _util.cached_json(file, compute)
    again = _util.cached_json(file, compute)
    assert calls == [1] and first == {"value": 1.5, "cached": False} and again == {"value": 1.5, "cached": True}
    assert _util.cached_json(None, compute) == {"value": 1.5, "cached": False} and calls == [1, 1]
    assert not list(tmp_path.rglob("*.partial"))  # the temporary file was renamed into place


def test_safe_key_keeps_only_file_name_characters():
    assert _util.safe_key("smollm2-135m-ab12") == "smollm2-135m-ab12"
    assert _util.safe_key("a/b c:..") == "a_b_c_.."
    assert "/" not in _util.safe_key("../../etc/passwd")


def test_write_json_atomic_replaces_the_whole_file(tmp_path):
    file = tmp_path / "r.json"
    _util.write_json_atomic(file, {"a": 1})
    _util.write_json_atomic(file, {"b": 2})
    assert _util.read_json(file) == {"b": 2} and _util.read_json(tmp_path / "none.json") is None


def test_memory_helpers_report_mib():
    peak = _util.peak_rss_mib()
    now = _util.release_memory()
    assert 10 < now <= peak + 1 and now == now  # MiB, not KiB or bytes


def test_quiet_peft_hides_only_its_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _util.quiet_peft():
            warnings.warn("model.is_gradient_checkpointing is deprecated", FutureWarning)
            warnings.warn("something else", FutureWarning)
    assert [str(w.message) for w in caught] == ["something else"]
