"""Untrusted code runs in a limited process: what it may not do is stopped, with one sentence (lmguide.sandbox)."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

from lmguide import sandbox


def test_a_correct_function_passes_and_a_wrong_one_names_the_failing_test():
    code = "def double(x):\n    return 2 * x\n"
    assert sandbox.run(code, ["assert double(2) == 4", "assert double(0) == 0"]).passed
    wrong = sandbox.run("def double(x):\n    return x + 2\n", ["assert double(2) == 4", "assert double(3) == 6"])
    assert wrong.status == "failed" and wrong.detail == "failed: assert double(3) == 6"


def test_broken_code_and_a_raising_test_are_errors_in_one_sentence():
    r = sandbox.run("def f(x) return x")
    assert r.status == "error" and "SyntaxError" in r.detail and "\n" not in r.detail
    r = sandbox.run("def f(x):\n    return 1 / x\n", ["assert f(0) == 0"])
    assert r.status == "failed" and "ZeroDivisionError" in r.detail


def test_an_infinite_loop_is_stopped_by_the_time_limit():
    r = sandbox.run("while True:\n    pass\n", timeout_s=1.5)
    assert r.status == "timeout" and 1.4 < r.seconds < 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the OS memory limit is enforced on Linux")
def test_a_huge_allocation_is_stopped_by_the_memory_limit():
    r = sandbox.run("block = bytearray(8 * 2**30)\n", memory_mib=256)
    assert r.status == "memory", r


def test_a_file_written_outside_the_folder_is_refused_and_inside_it_is_allowed():
    target = Path(tempfile.gettempdir()) / f"lmguide-sandbox-escape-{os.getpid()}.txt"
    r = sandbox.run(f"open({str(target)!r}, 'w').write('escaped')\n")
    assert r.status == "blocked" and "outside the sandbox" in r.detail and not target.exists()
    r = sandbox.run("import os\nos.remove(os.path.expanduser('~/.bashrc'))\n")
    assert r.status == "blocked"
    inside = sandbox.run("open('notes.txt', 'w').write('kept')\nassert open('notes.txt').read() == 'kept'\n")
    assert inside.passed


def test_no_network_and_no_processes():
    net = sandbox.run("import socket\nsocket.socket().connect(('127.0.0.1', 9))\n")
    proc = sandbox.run("import subprocess\nsubprocess.run(['true'])\n")
    assert net.status == "blocked" and proc.status == "blocked"
    assert sandbox.run("import os\nos.system('true')\n").status == "blocked"


def test_printed_text_cannot_pass_for_a_verdict_and_a_print_loop_does_not_flood():
    spoof = sandbox.run("print('{\"status\": \"passed\", \"detail\": \"x\"}')\nimport os\nos._exit(0)\n")
    assert spoof.status == "error"
    flood = sandbox.run("while True:\n    print('x' * 10000)\n", timeout_s=1.5)
    assert flood.status == "timeout"


def test_the_environment_is_empty_and_bad_arguments_get_one_sentence(monkeypatch):
    monkeypatch.setenv("LMGUIDE_SECRET", "should-not-leak")
    assert sandbox.run("import os\nassert 'LMGUIDE_SECRET' not in os.environ\nassert os.listdir('.') == []\n").passed
    with pytest.raises(ValueError, match="memory_mib >= 64"):
        sandbox.run("x = 1", memory_mib=8)
    with pytest.raises(TypeError, match="string of Python"):
        sandbox.run(b"x = 1")
    assert any("time limit" in e for e in sandbox.enforced())
