"""Run a notebook and report, per code cell, its wall time and the memory the lesson really uses.

    python scripts/probe_notebook.py notebooks/07_choosing_llm_vs_slm.ipynb [--out executed.ipynb]

Binder's 2 GB limit counts every process of the session, not only the kernel: notebook 07's
measurements run in helper processes (lmguide.workers). So besides the kernel's resident memory
this samples, three times a second, the summed PSS (proportional set size: shared pages split
between the processes that share them) of the kernel and all its descendants, and prints each
cell's peak and the notebook's. The notebook file is not changed unless --out names a copy.
Run it on a quiet machine: the times are only as good as the machine is idle.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path


def _pss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as status:
            for line in status:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv=None) -> int:
    import nbformat
    import psutil
    from nbclient import NotebookClient

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, help="write the executed notebook here (default: nowhere)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/smaps_rollup").exists():
        parser.error("this probe reads /proc (Linux only)")

    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(notebook, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    state = {"peak": 0.0, "cell peak": 0.0, "started": 0.0, "stop": threading.Event()}

    def kernel():
        return psutil.Process(client.km.provisioner.process.pid)

    def measure_now():
        try:
            k = kernel()
            total = _pss_mib(k.pid) + sum(_pss_mib(c.pid) for c in k.children(recursive=True))
        except (AttributeError, psutil.Error):
            return
        state["peak"] = max(state["peak"], total)
        state["cell peak"] = max(state["cell peak"], total)

    def sample():
        while not state["stop"].wait(0.3):
            measure_now()

    def before(cell, cell_index, **_):
        state["started"], state["cell peak"] = time.perf_counter(), 0.0

    def after(cell, cell_index, execute_reply, **_):
        measure_now()  # a cell shorter than the sampling interval still gets a reading
        rss = kernel().memory_info().rss / 2**20
        print(f"cell {cell_index:3d} {time.perf_counter() - state['started']:7.1f} s | kernel RSS {rss:6.0f} MiB | "
              f"kernel + helpers PSS peak {state['cell peak']:6.0f} MiB", flush=True)

    client.on_cell_execute, client.on_cell_executed = before, after
    threading.Thread(target=sample, daemon=True).start()
    began = time.perf_counter()
    try:
        client.execute()
    finally:
        state["stop"].set()
        print(f"{args.notebook.name}: {time.perf_counter() - began:.0f} s; "
              f"peak PSS of kernel + helpers {state['peak']:.0f} MiB (Binder: 2,048 MiB for everything)")
    if args.out:
        nbformat.write(notebook, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
