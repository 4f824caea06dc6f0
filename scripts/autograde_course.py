"""Release every notebook with nbgrader and autograde two hand-ins of each, whole (slow: ~30 min for all).

    python scripts/autograde_course.py [--out DIR] [--notebooks notebooks/00_start_here.ipynb ...]

The suite autogrades notebook 00 whole and every notebook's graded cells; this runs what a
teacher's class would: each whole student release handed in blank (it must run top to bottom
with only the exercise checks failing, nothing on stderr) and the teacher's version with one
wrong answer (a different exercise in each notebook), which must lose exactly that exercise's
points. Prints one line per notebook and exits 1 if any is wrong.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def nbgrader(course, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def graded(nb):
    return [c["metadata"]["nbgrader"] for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]


def blank_problems(ran):
    """What went wrong in an autograded blank hand-in, apart from its failing checks."""
    problems = []
    for cell in (c for c in ran["cells"] if c["cell_type"] == "code"):
        head = "".join(cell["source"])[:60].replace("\n", " ")
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if cell["execution_count"] is None:
            problems.append(f"did not run: {head}")
        if any(o.get("name") == "stderr" for o in cell["outputs"]):
            problems.append(f"stderr in: {head}")
        if errors and not (cell["metadata"].get("nbgrader", {}).get("grade") and errors[0]["ename"] == "AssertionError"):
            problems.append(f"{errors[0]['ename']} in: {head}")
    return problems


def main(argv=None) -> int:
    from lmguide import course

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="course folder to write (default: a new temporary one)")
    parser.add_argument("--notebooks", nargs="+", type=Path, help="default: every notebook")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="lmguide-course-"))
    notebooks = args.notebooks or course.repo_notebooks()
    course.init_course(out, notebooks, force=True)
    nbgrader(out, "generate_assignment", "*", "--force")
    expected = {}
    for i, path in enumerate(notebooks):
        source = json.loads((out / "source" / path.stem / path.name).read_text())
        wrong = graded(source)[i % len(graded(source))]
        expected[path.stem] = (graded(source), wrong)
        release = json.loads((out / "release" / path.stem / path.name).read_text())
        for student, nb in (("blank", release), ("onewrong", course.with_wrong_answer(source, wrong["grade_id"]))):
            folder = out / "submitted" / student / path.stem
            folder.mkdir(parents=True, exist_ok=True)
            (folder / path.name).write_text(json.dumps(nb))
    started = time.monotonic()
    nbgrader(out, "autograde", "*")
    print(f"autograded {2 * len(notebooks)} whole notebooks in {time.monotonic() - started:.0f} s ({out})")
    from nbgrader.api import Gradebook

    bad = 0
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for stem, (tests, wrong) in expected.items():
            total = sum(m["points"] for m in tests)
            one = gb.find_submission(stem, "onewrong")
            scores = {g.name: g.score for nb in one.notebooks for g in nb.grades}
            one_ok = one.score == total - wrong["points"] and scores[wrong["grade_id"]] == 0
            blank = gb.find_submission(stem, "blank")
            problems = blank_problems(json.loads((out / "autograded" / "blank" / stem / f"{stem}.ipynb").read_text()))
            blank_ok = blank.score == 0 and not problems
            bad += not (one_ok and blank_ok)
            print(f"{stem}: one wrong ({wrong['grade_id']}, {wrong['points']} pt): {one.score:g}/{one.max_score:g} "
                  f"{'ok' if one_ok else 'WRONG'}; blank: {blank.score:g}/{blank.max_score:g}, "
                  f"{'ran clean, only the checks failed' if blank_ok else '; '.join(problems[:3]) or 'WRONG score'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
