"""nbgrader assignments made from the notebooks (lmguide.course) and the HTML export.

Every notebook is checked structurally (each exercise is a graded pair whose reference answer
passes the exercise's own check), released by nbgrader (the release is the notebook with only the
answers blanked), and its graded cells are autograded by nbgrader; notebook 00 is released and
autograded whole, as a blank, a full and a one-wrong-answer hand-in.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmguide
from lmguide import course, exercises

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NB00 = "00_start_here"
NBGRADER_TIMEOUT_S = 3600  # a hang guard: notebook 00 runs in about a minute on a quiet 2-core machine
REGION = course.SOLUTION_REGION


def source(cell):
    return "".join(cell["source"])


def nbgrader_cells(nb):
    return [(c, c["metadata"]["nbgrader"]) for c in nb["cells"] if "nbgrader" in c.get("metadata", {})]


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    rows = course.init_course(folder, NOTEBOOKS)
    assert [r["assignment"] for r in rows] == [p.stem for p in NOTEBOOKS]
    return folder


def assignment(course_dir, stem):
    return json.loads((course_dir / "source" / stem / f"{stem}.ipynb").read_text())


def nbgrader_env():
    env = dict(os.environ)
    # nbgrader runs `alembic` and kernels from the environment's bin folder
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def nbgrader(course_dir, *args):
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[test]')")
    out = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, env=nbgrader_env(),
                         capture_output=True, text=True, timeout=NBGRADER_TIMEOUT_S)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_cell_becomes_a_graded_pair(course_dir, path):
    original = json.loads(path.read_text())
    keys = re.findall(r'exercises\.get\("([^"]+)"\)', "".join(source(c) for c in original["cells"]
                                                             if c["cell_type"] == "code"))
    assert keys, f"{path.name} has no exercises"
    nb = assignment(course_dir, path.stem)
    cells = nbgrader_cells(nb)
    tests = [(c, m) for c, m in cells if m["grade"]]
    answers = [(c, m) for c, m in cells if m["solution"]]
    assert [m["grade_id"] for _, m in tests] == [k.replace(".", "-") for k in keys]
    assert len({m["grade_id"] for _, m in cells}) == len(cells), "grade ids must be unique"
    for (answer_cell, a), (test_cell, t) in zip(answers, tests):
        assert a["grade_id"] == t["grade_id"] + "-answer"
        assert t["locked"] and t["points"] >= 1 and not t["solution"]
        var = re.search(r"assert (\w+)\.check\(answer\)", source(test_cell)).group(1)
        assert f"{var} = lg.exercises.get(" in source(answer_cell)
        assert len(REGION.findall(source(answer_cell))) == 1
        # the exercise's own check is the only check left: the answer is never printed before grading
        code = [l for l in source(answer_cell).split("### BEGIN SOLUTION")[0].splitlines()
                if not l.lstrip().startswith("#")]
        assert not [l for l in code if f"{var}.check(" in l or f"{var}.solution(" in l]
    for c in nb["cells"]:
        if c["cell_type"] == "code" and "nbgrader" not in c["metadata"]:
            assert not re.search(r"\bq\d+\.(check|solution)\(", source(c)), source(c)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_reference_answer_passes_its_check_and_the_wrong_example_fails(course_dir, path):
    import torch

    nb = assignment(course_dir, path.stem)
    cells = nbgrader_cells(nb)
    for cell, meta in cells:
        if not meta["solution"]:
            continue
        var, key = re.search(r'(\w+) = lg\.exercises\.get\("([^"]+)"\)', source(cell)).groups()
        q = exercises.get(key)
        namespace = {"lg": lmguide, "torch": torch, var: q}
        exec(REGION.search(source(cell)).group(1), namespace)  # noqa: S102 (generated from our bank)
        assert q.check(namespace["answer"], quiet=True), f"{key}: the teacher's answer fails its own check"
        assert not q.check(q.wrong_example, quiet=True)


def test_points_default_to_two_for_a_function_and_one_otherwise(course_dir):
    nb = assignment(course_dir, "02_llm_generation") if (ROOT / "notebooks/02_llm_generation.ipynb").exists() \
        else pytest.skip("notebook 02 is absent")
    points = {m["grade_id"]: m["points"] for _, m in nbgrader_cells(nb) if m["grade"]}
    assert points["nb02-min_p"] == 2 and points["nb02-no_cache_positions"] == 1  # a function; a number


def test_config_raises_the_execution_timeout_and_keeps_a_runnable_blank(course_dir):
    config = (course_dir / "nbgrader_config.py").read_text()
    assert "c.Execute.timeout = 1800" in config
    assert course.CODE_STUB in config and course.CODE_STUB.startswith("answer = ...")


def test_init_refuses_to_overwrite_without_force(course_dir, capsys):
    from lmguide import cli

    assert cli.main(["course", "init", str(course_dir), "--notebooks", str(NOTEBOOKS[0])]) == 1
    assert "--force" in capsys.readouterr().out


@pytest.fixture(scope="module")
def graded(course_dir):
    """Release notebook 00, then autograde three submissions, as a teacher grades a class: the
    student version handed in blank, the teacher's version (solutions in), and one wrong answer.
    One `nbgrader autograde` grades them one after another (run side by side, three kernels of
    two threads each on two cores took 365 s instead of about 115 s)."""
    nbgrader(course_dir, "generate_assignment", NB00, "--force")
    nb = assignment(course_dir, NB00)
    release = course_dir / "release" / NB00 / f"{NB00}.ipynb"
    tests = [m for _, m in nbgrader_cells(nb) if m["grade"]]
    wrong = tests[-1]
    submissions = {"blank": json.loads(release.read_text()), "full": nb,
                   "onewrong": course.with_wrong_answer(nb, wrong["grade_id"])}
    for student, notebook in submissions.items():
        folder = course_dir / "submitted" / student / NB00
        folder.mkdir(parents=True)
        (folder / f"{NB00}.ipynb").write_text(json.dumps(notebook))
    nbgrader(course_dir, "autograde", NB00)
    return tests, wrong


def test_the_student_release_runs_offline_with_only_the_checks_failing(course_dir, graded):
    release = (course_dir / "release" / NB00 / f"{NB00}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in release and course.CODE_STUB in release
    # what autograde executed for the blank hand-in: the student version, top to bottom
    ran = json.loads((course_dir / "autograded" / "blank" / NB00 / f"{NB00}.ipynb").read_text())
    failed = []
    for cell in ran["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert cell["execution_count"] is not None, f"a cell did not run: {source(cell)[:200]}"
        assert not [o for o in cell["outputs"] if o.get("name") == "stderr"], source(cell)
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        meta = cell["metadata"].get("nbgrader", {})
        if errors:
            assert meta.get("grade") and errors[0]["ename"] == "AssertionError", (source(cell), errors[0]["ename"])
            printed = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o["output_type"] == "stream")
            assert "Waiting for your answer" in printed  # the blank state, not a wrong answer
            failed.append(meta["grade_id"])
    assert failed == [m["grade_id"] for m in graded[0]], "every blank check fails, and only those"


def test_autograde_gives_full_marks_and_one_wrong_answer_loses_its_points(course_dir, graded):
    from nbgrader.api import Gradebook

    tests, wrong = graded
    total = sum(m["points"] for m in tests)

    def submission(student):
        with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
            sub = gb.find_submission(NB00, student)
            grades = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
            return sub.score, sub.max_score, grades

    score, max_score, grades = submission("full")
    assert max_score == total and score == total
    assert submission("blank")[0] == 0
    score, _, grades = submission("onewrong")
    assert score == total - wrong["points"]
    assert grades[wrong["grade_id"]] == 0 and all(grades[m["grade_id"]] == m["points"] for m in tests if m is not wrong)


def test_html_export_writes_every_notebook_and_an_index(tmp_path):
    from lmguide import cli

    assert cli.main(["course", "html", str(tmp_path), "--notebooks", *map(str, NOTEBOOKS[:2])]) == 0
    index = (tmp_path / "index.html").read_text()
    for path in NOTEBOOKS[:2]:
        page = (tmp_path / f"{path.stem}.html").read_text()
        assert f"href='{path.stem}.html'" in index
        title = course._summary(json.loads(path.read_text()))[0]
        assert title and title in page  # the executed notebook, rendered
        pngs = sum("image/png" in o.get("data", {}) for c in json.loads(path.read_text())["cells"]
                   for o in c.get("outputs", []))
        assert page.count("data:image/png;base64") >= pngs  # figures are embedded, not linked



# --- every notebook: the whole student release, and its exercises autograded for real ------------
# Releasing and autograding all nine notebooks whole would run each one three more times (about
# 40 minutes on 2 cores) on top of the nbval run that already executes every original notebook. So
# for every notebook: the real release is checked to be the original with only the answers blanked
# (nothing outside an exercise can break), and the graded cells, behind the notebook's own first
# cell, are released and autograded by nbgrader. Notebook 00 runs whole above.
@pytest.fixture(scope="module")
def released(course_dir):
    nbgrader(course_dir, "generate_assignment", "*", "--force")
    return {p.stem: json.loads((course_dir / "release" / p.stem / p.name).read_text()) for p in NOTEBOOKS}


def _names(tree, kinds):
    import ast

    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, kinds)} | \
        ({n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)} if ast.Store in kinds else set())


def _parse(code):
    import ast

    # cell magics and shell lines are not Python; drop them before parsing
    return ast.parse("\n".join(l for l in code.splitlines() if not l.lstrip().startswith(("%", "!"))))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_release_is_the_notebook_with_only_the_answers_blanked(released, course_dir, path):
    import ast

    release, source_nb = released[path.stem], assignment(course_dir, path.stem)
    original = [source(c) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert "BEGIN SOLUTION" not in json.dumps(release)
    answers = [c for c, m in nbgrader_cells(release) if m["solution"]]
    assert answers and all(course.CODE_STUB in source(c) for c in answers)
    assert len(answers) == len([1 for _, m in nbgrader_cells(source_nb) if m["grade"]])
    # walking the release in order: a lesson cell must not read a name whose latest definition is a
    # blank answer cell's (answer, the learner's functions): those are Ellipsis or stubs in a release
    from_answers, stubs = set(), 0
    for cell in release["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree, code = _parse(source(cell)), source(cell)
        stored = _names(tree, (ast.Store,))
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            from_answers |= stored
            stubs += 1
            continue
        if "nbgrader" in cell["metadata"]:
            continue  # a locked test cell reads answer: that is its job
        # the release runs the same code nbval runs (or that cell less a line that revealed an answer)
        assert any(_kept_lines(code, o) for o in original), f"{path.stem}: not in the notebook: {code[:300]}"
        used = (_names(tree, (ast.Load,)) - stored) & from_answers
        assert not used, f"{path.stem}: a lesson cell reads {used}, which a blank exercise answer defines"
        from_answers -= stored
    assert stubs == len(answers)


def _kept_lines(code, original):
    """Whether code is original with zero or more whole lines left out."""
    lines = iter(original.splitlines())
    return bool(code.strip()) and all(any(line == o for o in lines) for line in code.splitlines())


def _exercises_only(nb):
    """The notebook's first code cell (imports, seeds, threads), then its graded cells."""
    first = next(c for c in nb["cells"] if c["cell_type"] == "code" and "nbgrader" not in c["metadata"])
    out = json.loads(json.dumps(nb))
    out["cells"] = [first] + [c for c in out["cells"] if "nbgrader" in c["metadata"]]
    return out


def test_every_notebooks_exercises_autograde_and_one_wrong_answer_loses_only_its_points(course_dir, tmp_path):
    from nbgrader.api import Gradebook

    quiz = tmp_path / "quiz"
    quiz.mkdir()
    shutil.copy(course_dir / "nbgrader_config.py", quiz)
    expected = {}
    for path in NOTEBOOKS:
        nb = _exercises_only(assignment(course_dir, path.stem))
        (quiz / "source" / path.stem).mkdir(parents=True)
        (quiz / "source" / path.stem / path.name).write_text(json.dumps(nb))
        tests = [m for _, m in nbgrader_cells(nb) if m["grade"]]
        wrong = tests[len(expected) % len(tests)]  # a different exercise position in each notebook
        expected[path.stem] = ({m["grade_id"]: 0 if m is wrong else m["points"] for m in tests}, wrong)
        hand_in = quiz / "submitted" / "student" / path.stem
        hand_in.mkdir(parents=True)
        (hand_in / path.name).write_text(json.dumps(course.with_wrong_answer(nb, wrong["grade_id"])))
    nbgrader(quiz, "generate_assignment", "*", "--force")
    nbgrader(quiz, "autograde", "*")
    with Gradebook(f"sqlite:///{quiz / 'gradebook.db'}") as gb:
        for stem, (grades, wrong) in expected.items():
            sub = gb.find_submission(stem, "student")
            got = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
            assert got == grades, f"{stem}: {wrong['grade_id']} was answered wrong; grades {got}"
            assert sub.score == sum(grades.values()) and sub.max_score == sub.score + wrong["points"]
