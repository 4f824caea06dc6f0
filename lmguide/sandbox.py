"""Run untrusted Python (code a model wrote) in a separate process with limits, never in the kernel.

    result = sandbox.run(code, tests)          # Result(status, detail, seconds)
    result.status                              # "passed", "failed", "error", "timeout", "memory" or "blocked"
    sandbox.enforced()                         # which limits this system applies, in words

What is enforced, and where:
- a **separate process** (``python -I -S -B``: no user site-packages, no environment variables read,
  no bytecode written), started with an **empty environment** and an **empty temporary folder** as its
  working directory, deleted afterwards; the code arrives on standard input, not as a file; what it
  prints is counted, not kept, so a print loop cannot flood the caller;
- a **wall-clock limit** (the whole process group is killed) everywhere;
- on Linux and other POSIX systems, OS limits set before the code starts (``resource.setrlimit``):
  CPU seconds, address space (memory: a huge allocation raises MemoryError), file size, open files,
  and no core dumps; macOS does not enforce the address-space limit, Windows has none of these;
- everywhere, a Python **audit hook** (PEP 578) installed before the code runs refuses: writing,
  deleting, renaming or listing files outside the temporary folder (reading stays possible: the
  standard library must load), opening sockets (no network), starting processes, and loading native
  code through ctypes. A hook guards Python-level calls only: native code already imported could
  bypass it, which is why the OS limits matter where they exist. The verdict line carries a token
  the code is not given, so printed text cannot pass for a verdict.

Results are one sentence each: the first failing test, the last line of an exception, or the
limit that stopped the code.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MIB = 512
FILE_SIZE_MIB = 8

# Runs in the child: read {"code", "tests"} from stdin, install the guard, run the code, then each test.
RUNNER = r'''
import json, os, sys
job = json.loads(sys.stdin.read())
ROOT = os.path.realpath(os.getcwd())
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
           "os.forkpty", "os.kill", "os.killpg", "ctypes.", "pty.", "shutil.rmtree", "webbrowser.")
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
               "os.link", "os.truncate", "os.utime", "os.listdir", "os.scandir", "os.chdir"}

def inside(path):
    try:
        real = os.path.realpath(os.fsdecode(path))
        return real == ROOT or real.startswith(ROOT + os.sep)
    except (TypeError, ValueError):
        return False

def guard(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        if writing and not isinstance(path, int) and not inside(path):
            raise PermissionError(f"blocked: writing {path!r} outside the sandbox's folder")
    elif event in PATH_EVENTS:
        paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
        if event in ("os.listdir", "os.scandir", "os.chdir"):
            paths = paths[:1]
        if any(not inside(p) for p in paths):
            raise PermissionError(f"blocked: {event} outside the sandbox's folder")
    elif event.startswith(BLOCKED):
        raise PermissionError(f"blocked: {event} (no network, processes or native code in the sandbox)")

import io, traceback

class Bounded(io.TextIOBase):  # what the code prints: kept to 64 KiB, so a print loop cannot flood the parent
    def __init__(self):
        self.size = 0
    def write(self, text):
        self.size += len(text)
        return len(text)

def make_say(token, out):  # the verdict goes to the real stdout, marked with a token the code is not given
    def say(status, detail):
        out.write(token + json.dumps({"status": status, "detail": detail}) + "\n"); out.flush()
    return say

say = make_say(job.pop("token"), sys.stdout)
sys.stdout = sys.stderr = Bounded()
sys.addaudithook(guard)
def last_line(e):
    return (traceback.format_exception_only(type(e), e)[-1]).strip()
namespace = {"__name__": "__sandbox__"}
try:
    exec(compile(job["code"], "<generated code>", "exec"), namespace)
except MemoryError:
    say("memory", "the code ran out of its memory limit"); sys.exit(0)
except PermissionError as e:
    say("blocked", str(e)); sys.exit(0)
except BaseException as e:
    say("error", "the code itself failed: " + last_line(e)); sys.exit(0)
for test in job["tests"]:
    try:
        exec(compile(test, "<test>", "exec"), namespace)
    except AssertionError:
        say("failed", "failed: " + test); sys.exit(0)
    except MemoryError:
        say("memory", "ran out of its memory limit in: " + test); sys.exit(0)
    except PermissionError as e:
        say("blocked", str(e)); sys.exit(0)
    except BaseException as e:
        say("failed", f"{test}: raised {last_line(e)}"); sys.exit(0)
say("passed", f"all {len(job['tests'])} tests passed")
'''


@dataclasses.dataclass
class Result:
    """How one run ended: ``status`` (passed, failed, error, timeout, memory, blocked), a sentence, seconds."""

    status: str
    detail: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _limits(timeout_s: float, memory_mib: int):
    """A function the child runs before Python starts: its own process group, and the OS limits."""
    def apply():
        import resource

        os.setsid()  # a group of its own, so a timeout kills everything it started
        cpu = int(timeout_s) + 1
        for limit, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_CORE, (0, 0)),
                             (resource.RLIMIT_FSIZE, (FILE_SIZE_MIB * 2**20,) * 2),
                             (resource.RLIMIT_NOFILE, (64, 64)), (resource.RLIMIT_AS, (memory_mib * 2**20,) * 2)):
            try:
                resource.setrlimit(limit, value)
            except (ValueError, OSError):  # macOS refuses RLIMIT_AS; the others still hold
                pass
    return apply


def enforced() -> list[str]:
    """What :func:`run` enforces on this system, one phrase each."""
    found = ["a separate process with an empty environment and an empty temporary folder",
             "a wall-clock time limit", "a Python audit hook: no writes outside the folder, no network, "
             "no processes, no ctypes"]
    if os.name == "posix":
        found.append("OS limits on CPU time, file size and open files")
        found.append("an OS memory limit" if sys.platform.startswith("linux") else
                     "no OS memory limit (macOS does not enforce RLIMIT_AS)")
    else:
        found.append("no OS limits on CPU, memory or file size (this system has no setrlimit)")
    return found


def run(code: str, tests=(), timeout_s: float = DEFAULT_TIMEOUT_S, memory_mib: int = DEFAULT_MEMORY_MIB) -> Result:
    """Run ``code`` and then each test (a statement such as ``assert f(2) == 4``) in a fresh, limited process.

    Never raises for what the code does: every outcome is a :class:`Result` with one sentence.
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be a string of Python (got {type(code).__name__})")
    if not timeout_s > 0 or not memory_mib >= 64:
        raise ValueError(f"timeout_s must be > 0 and memory_mib >= 64 (got {timeout_s}, {memory_mib}); Python "
                         "itself needs about 30 MiB")
    import secrets

    token = secrets.token_hex(8)
    job = json.dumps({"code": code, "tests": list(tests), "token": token})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmguide-sandbox-") as folder:
        kwargs = {"preexec_fn": _limits(timeout_s, memory_mib)} if os.name == "posix" else {}
        env = {"PATH": os.defpath, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        process = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", RUNNER], cwd=folder, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        try:
            out, err = process.communicate(job.encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.communicate()
            return Result("timeout", f"stopped after {timeout_s:g} s (an endless loop, or far too slow)",
                          time.perf_counter() - start)
    seconds = time.perf_counter() - start
    lines = out.decode("utf-8", "replace").strip().splitlines()
    for line in reversed(lines):  # the runner's verdict starts with the token the code never saw
        if line.startswith(token):
            verdict = json.loads(line[len(token):])
            return Result(verdict["status"], verdict["detail"], seconds)
    if process.returncode and process.returncode < 0:
        import signal

        name = signal.Signals(-process.returncode).name if -process.returncode in signal.Signals._value2member_map_ else ""
        why = {"SIGXCPU": "its CPU-time limit", "SIGKILL": "a limit", "SIGXFSZ": "its file-size limit"}.get(name, name)
        return Result("timeout" if name == "SIGXCPU" else "error", f"killed by {why or 'a signal'}", seconds)
    last = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
    if "MemoryError" in last:
        return Result("memory", "the code ran out of its memory limit", seconds)
    return Result("error", f"the sandbox's process ended without a verdict: {last}", seconds)


def _kill(process) -> None:
    """The process and every process it started (its group)."""
    import signal

    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
