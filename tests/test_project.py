"""The project's own promises: Quickstart lines, Binder config, CI calling the test line."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_lines():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", readme, re.S).group(1)
    return [l for l in block.splitlines() if l.strip()]


def test_readme_quickstart_is_exactly_two_lines_lab_and_test():
    lines = quickstart_lines()
    assert len(lines) == 2
    assert lines[0].startswith("bash scripts/quickstart.sh lab")
    assert lines[1].startswith("bash scripts/quickstart.sh test")


def test_ci_runs_the_readme_test_line():
    test_command = quickstart_lines()[1].split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_binder_environment_matches_the_top_level_one():
    assert (ROOT / "binder" / "environment.yml").read_text() == (ROOT / "environment.yml").read_text()


def test_every_notebook_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert nb.stem in readme, f"{nb.name} is missing from the README's notebook table"


def test_model_packages_are_pinned():
    reqs = [l.split("#")[0].strip() for l in (ROOT / "requirements-models.txt").read_text().splitlines()]
    assert all("==" in r for r in reqs if r)


def test_import_is_light_and_every_module_is_reachable_from_the_package():
    code = ("import sys, lmguide as lg\n"
            "assert 'torch' not in sys.modules, 'import lmguide pulled in torch'\n"
            "print(sorted(n for n in dir(lg) if getattr(lg, n).__class__.__name__ == 'module'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    modules = {p.stem for p in (ROOT / "lmguide").glob("*.py")} - {"__init__", "__main__", "cli", "rdata"}
    reachable = set(ast.literal_eval(out.stdout))
    assert modules <= reachable, modules - reachable
