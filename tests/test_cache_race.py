"""Two kernels preparing the model cache at once must not corrupt it (a classroom starts together)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800  # a hang guard; with the lock the two conversions take turns (~30 s each when quiet)
PREPARE = """
from lmguide import zoo
folder = zoo.prepare("smollm2-135m", force=True, log=lambda message: None)
print("prepared", folder)
"""
CHECK = """
from lmguide import zoo
print(zoo.path("smollm2-135m", prepare=False))
"""


def test_two_processes_preparing_smollm2_at_once_leave_a_verified_cache(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, LMGUIDE_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=TIMEOUT_S) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0, f"a preparing process failed:\n{err[-2000:]}"
    # a third process finds the cache complete: every file matches its sha256 (no re-conversion)
    check = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert check.returncode == 0, check.stderr[-2000:]
    folder = Path(check.stdout.strip().splitlines()[-1])
    assert folder.is_dir() and str(folder).startswith(str(cache))
    leftovers = [p.name for p in folder.parent.iterdir() if p != folder and p.name.startswith(folder.name)]
    assert not leftovers, f"half-written copies left in the cache: {leftovers}"
    manifest = folder / "lmguide-manifest.json"
    if manifest.exists():  # the manifest lists every file it vouches for
        listed = set(json.loads(manifest.read_text())["files"])
        assert listed <= {p.name for p in folder.iterdir()}
