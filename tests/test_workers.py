"""lmguide.workers: a job runs in a process of its own, with its own memory peak and quiet output."""
import os
import resource

import pytest

from lmguide import workers


def _grow(mib: int) -> dict:
    """Touch ``mib`` MiB, then report this process's id and peak RSS."""
    block = bytearray(mib * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    return {"pid": os.getpid(), "peak MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _noisy() -> str:
    import sys
    import warnings

    print("to stdout")
    print("to stderr", file=sys.stderr)
    warnings.warn("a warning")
    return "done"


def _fails():
    raise ValueError("a clear reason")


def _dies():
    os._exit(3)


def test_each_job_gets_a_fresh_process_with_its_own_peak():
    big = workers.run(_grow, 300)
    small = workers.run(_grow, 1)
    assert os.getpid() not in (big["pid"], small["pid"]) and big["pid"] != small["pid"]
    # the small job's peak does not carry the big job's 300 MiB
    assert big["peak MiB"] - small["peak MiB"] > 250


def test_a_jobs_output_stays_out_of_the_callers(capfd):
    assert workers.run(_noisy) == "done"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_failure_is_one_sentence_and_the_next_job_still_runs():
    with pytest.raises(RuntimeError, match="_fails in a fresh process failed: ValueError: a clear reason"):
        workers.run(_fails)
    with pytest.raises(RuntimeError, match="exited with code 3"):
        workers.run(_dies)
    assert workers.run(_grow, 1)["peak MiB"] > 0


def test_run_or_raise_names_the_job_in_one_sentence():
    assert workers.run_or_raise("growing", _grow, 1)["peak MiB"] > 0
    with pytest.raises(RuntimeError) as caught:
        workers.run_or_raise("measuring a model", _fails)
    assert str(caught.value) == "measuring a model failed: ValueError: a clear reason"
    assert not isinstance(caught.value, workers.JobError)


def test_stop_ends_the_helper_and_run_starts_it_again():
    workers.run(_grow, 1)
    workers.stop()
    assert workers._zygote is None
    assert workers.run(_grow, 1)["peak MiB"] > 0


def test_what_cannot_travel_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="cannot send .* to another process"):
        workers.run(lambda: 1)
    assert workers.run(_grow, 1)["peak MiB"] > 0
