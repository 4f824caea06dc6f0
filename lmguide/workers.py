"""Run a function in a fresh process of its own, quickly: for measurements whose peak memory must be theirs alone.

A fresh Python interpreter spends ~5 s importing torch, transformers and a model's code before it
measures anything. So :func:`run` keeps one helper process (a "zygote") that has imported them
once; for each job it *forks* a child, which starts with those modules loaded but with a memory
peak of its own (``resource.getrusage`` in the child counts from the fork), runs the job, hands
back its result and exits. Where ``os.fork`` does not exist (Windows) each job gets a fresh
interpreter instead: slower, same results.

A job's output and warnings go to a log file, not to the caller's (a notebook's stderr stays
clean); a failure comes back as one :class:`JobError` (a ``RuntimeError``) naming what went wrong.
"""
from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading

PRELOAD = ("torch", "transformers", "transformers.models.gpt2.modeling_gpt2",
           "transformers.models.llama.modeling_llama", "transformers.models.bert.modeling_bert",
           "lmguide.measure.rows", "lmguide.measure.decode", "lmguide.engines.torch", "lmguide.engines.onnx")

_zygote = None
_lock = threading.Lock()


class JobError(RuntimeError):
    """A job that failed in its process; ``reason`` is the one sentence saying why."""

    def __init__(self, function, reason: str):
        super().__init__(f"{getattr(function, '__qualname__', function)} in a fresh process failed: {reason}")
        self.reason = reason


def _send(stream, obj) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive_bytes(stream) -> bytes:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the helper process closed its pipe")
    (size,) = struct.unpack("<Q", head)
    return stream.read(size)


def _receive(stream):
    return pickle.loads(_receive_bytes(stream))


def _job(payload: bytes, log_file: str):
    """In the process that runs the job: quiet output, unpickle the call (importing what it names),
    run it, return ("ok", value) or ("error", sentence)."""
    import warnings

    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    warnings.simplefilter("ignore")
    try:
        path, call = pickle.loads(payload)  # the caller's import path first, then what the call names
        sys.path[:0] = [p for p in path if p not in sys.path]
        function, args, kwargs = pickle.loads(call)
        return "ok", function(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - any failure is reported to the caller as one sentence
        return "error", f"{type(exc).__name__}: {exc}"


def _serve() -> None:
    """The helper's loop: read a job from stdin, run it in a forked child, write the result to stdout."""
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # imports must not write into the result channel
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in PRELOAD:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - a missing optional module only costs time later
                pass
    while True:
        try:
            log_file = _receive(channel_in)
            payload = _receive_bytes(channel_in)
        except EOFError:
            return
        if not hasattr(os, "fork"):
            _send(channel_out, _job(payload, log_file))
            return  # one job per fresh interpreter
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run the job, send the result, leave without cleanup handlers
            os.close(read_end)
            try:
                with os.fdopen(write_end, "wb") as out:
                    status, value = _job(payload, log_file)
                    try:
                        _send(out, (status, value))
                    except Exception as exc:  # noqa: BLE001 - e.g. a result pickle cannot carry
                        _send(out, ("error", f"its result could not be sent back ({type(exc).__name__}: {exc})"))
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as result:
            try:
                answer = result.read()
            except OSError:
                answer = b""
        _, status = os.waitpid(pid, 0)
        if len(answer) < 8:
            code = os.waitstatus_to_exitcode(status)
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            last = [line for line in open(log_file, encoding="utf-8", errors="replace").read().splitlines() if line.strip()]
            _send(channel_out, ("error", f"the process {how}" + (f" ({last[-1]})" if last else "")))
        else:
            channel_out.write(answer)
            channel_out.flush()


def _start():
    return subprocess.Popen([sys.executable, "-c", "from lmguide import workers; workers._serve()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def stop() -> None:
    """Stop the helper process (it holds ~300 MB of imported libraries); the next :func:`run` starts it again."""
    global _zygote
    with _lock:
        if _zygote is not None:
            _zygote.stdin.close()
            _zygote.wait()
            _zygote.stdout.close()
            _zygote = None


atexit.register(stop)


def run(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a fresh process of its own; returns its result.

    ``function`` must be importable by name (a module-level function of an installed module) and
    its arguments and result picklable.
    """
    global _zygote
    try:
        payload = pickle.dumps((list(sys.path), pickle.dumps((function, args, kwargs))))
    except Exception as exc:  # noqa: BLE001 - a lambda, an open file, a model object ...
        raise ValueError(f"cannot send {getattr(function, '__qualname__', function)} and its arguments to another "
                         f"process ({type(exc).__name__}: {exc}); pass a module-level function and plain values") from None
    handle, log_file = tempfile.mkstemp(prefix="lmguide-job-", suffix=".log")
    os.close(handle)
    try:
        with _lock:
            if _zygote is None or _zygote.poll() is not None:
                _zygote = _start()
            try:
                _send(_zygote.stdin, log_file)
                _zygote.stdin.write(struct.pack("<Q", len(payload)) + payload)
                _zygote.stdin.flush()
                status, value = _receive(_zygote.stdout)
            except (EOFError, BrokenPipeError, OSError) as exc:
                _zygote = None
                status, value = "error", f"the helper process stopped ({exc})"
            if not hasattr(os, "fork") and _zygote is not None:  # one job each: start afresh next time
                _zygote.wait()
                _zygote = None
    finally:
        os.unlink(log_file)
    if status != "ok":
        raise JobError(function, value)
    return value


def run_or_raise(what: str, function, *args, **kwargs):
    """:func:`run`, with a failure raised as one sentence for a learner: ``RuntimeError("<what> failed: <reason>")``.

    ``what`` names the job in words ("measuring smollm2-135m").
    """
    try:
        return run(function, *args, **kwargs)
    except JobError as exc:
        raise RuntimeError(f"{what} failed: {exc.reason}") from None
