"""Course material made from the notebooks: nbgrader assignments and a static HTML site.

    lmguide course init DIR     # an nbgrader course folder: one assignment per notebook
    lmguide course html OUT     # the executed notebooks as HTML pages, with an index page

Assignments are generated from the notebooks' own exercise cells, the ones that do
``qN = lg.exercises.get("nbNN.key")``, so a new notebook is covered when it lands. Each
exercise becomes two nbgrader cells:

* a solution cell: the exercise cell (minus its ``qN.check(...)`` calls) ending in
  ``### BEGIN SOLUTION`` / ``### END SOLUTION`` around ``answer = <reference>``; the student
  release replaces the region with ``answer = ...  # YOUR ANSWER HERE``;
* a locked, autograded test cell ``assert qN.check(answer)``: the exercise's own check, so a
  student sees the same specific message in feedback as in the notebook.

Reference answers come from the exercise: the letter of a choice, the solution function of a
function exercise (its ``solution_code``, used only when it passes the check on its own),
otherwise ``qN.solve()``, with the solution code shown as comments for the teacher.
"""
from __future__ import annotations

import ast
import copy
import html
import io
import json
import re
import shutil
import tokenize
from dataclasses import dataclass
from pathlib import Path

NBGRADER_SCHEMA = 3
CODE_STUB = "answer = ...  # YOUR ANSWER HERE"
EXECUTE_TIMEOUT = 1800  # seconds per cell: nbgrader's default (30 s) is shorter than a model load on a busy machine

_CONFIG = '''\
# nbgrader configuration for the lmguide course (written by `lmguide course init`).
#   nbgrader generate_assignment 00_start_here     # student version in release/
#   nbgrader autograde 00_start_here               # marks for submitted/<student>/00_start_here/
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = {course_id!r}
# Loading a model or generating text takes longer than nbgrader's default of 30 s per cell.
c.Execute.timeout = {timeout}
# The student version keeps a runnable blank: the check then says "no answer yet".
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
'''


@dataclass
class ExerciseCell:
    """Where a notebook asks an exercise: the code cell, the variable it sets, the exercise's key and points
    (the exercise itself, ``lmguide.exercises.Exercise``, is ``exercises.get(key)``)."""

    key: str
    var: str
    cell: int
    points: int


def repo_notebooks() -> list[Path]:
    """The workbook's notebooks (``notebooks/*.ipynb`` next to the package, in a source checkout)."""
    folder = Path(__file__).resolve().parents[1] / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError("no notebooks found next to the lmguide package; run this from a clone "
                                "of the repository or pass the notebook files with --notebooks")
    return found


# --- reading exercise cells ------------------------------------------------------------------
def _parse(source: str) -> ast.Module | None:
    # IPython magics and shell lines are not Python: blank them so the rest still parses
    masked = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))
    try:
        return ast.parse(masked)
    except SyntaxError:
        return None


def _exercise_assignment(stmt: ast.stmt) -> tuple[str, str] | None:
    """``(var, key)`` when ``stmt`` is ``var = <...>exercises.get("key")``."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
        return None
    call = stmt.value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "get"):
        return None
    owner = call.func.value
    owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
    if owner_name != "exercises" or len(call.args) != 1 or not isinstance(call.args[0], ast.Constant):
        return None
    if not isinstance(call.args[0].value, str):
        return None
    return stmt.targets[0].id, call.args[0].value


def _method_call(stmt: ast.stmt, variables, methods) -> ast.Call | None:
    """The call when ``stmt`` is the expression ``var.method(...)`` with var and method given."""
    if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
        return None
    func = stmt.value.func
    if (isinstance(func, ast.Attribute) and func.attr in methods
            and isinstance(func.value, ast.Name) and func.value.id in variables):
        return stmt.value
    return None


def _is_stub(stmt: ast.stmt) -> bool:
    """A learner's blank function: ``def f(...): ...`` (only ``...``, ``pass`` or a docstring)."""
    if not isinstance(stmt, ast.FunctionDef):
        return False
    return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
               for s in stmt.body)


def _comments(source: str) -> dict[int, str]:
    """line number -> the comment on that line (``# ...``)."""
    found = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found[tok.start[0]] = tok.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return found


def _default_points(exercise) -> int:
    from lmguide.exercises import FunctionExercise

    points = getattr(exercise, "points", None)
    if points is None:
        points = 2 if isinstance(exercise, FunctionExercise) else 1
    return int(points)


def find_exercises(nb: dict) -> list[ExerciseCell]:
    """Every ``qN = lg.exercises.get("key")`` in a notebook's code cells, in order."""
    from lmguide import exercises

    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        tree = _parse("".join(cell["source"]))
        for stmt in tree.body if tree else []:
            hit = _exercise_assignment(stmt)
            if hit:
                var, key = hit
                found.append(ExerciseCell(key, var, index, _default_points(exercises.get(key))))
    return found


# --- reference answers -----------------------------------------------------------------------
def _solution_function(exercise) -> str | None:
    """The exercise's solution code when it defines a function that passes the check on its own."""
    import lmguide

    tree = _parse(exercise.solution_code or "")
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef)] if tree else []
    if not defs:
        return None
    code = exercise.solution_code.strip("\n")
    namespace = {"lg": lmguide}
    try:
        import math

        import torch

        namespace.update(torch=torch, math=math)
        exec(compile(code, f"<solution of {exercise.name}>", "exec"), namespace)  # noqa: S102 (our own code)
        if not exercise.check(namespace[defs[-1].name], quiet=True):
            return None
    except Exception:
        return None
    return f"{code}\nanswer = {defs[-1].name}"


def reference_answer(exercise, var: str) -> str:
    """Python lines that set ``answer`` to the exercise's reference answer (inside the solution region)."""
    from lmguide.exercises import ChoiceExercise

    if isinstance(exercise, ChoiceExercise):
        lines = f"answer = {exercise.answer_letter!r}"
    else:
        lines = _solution_function(exercise)
        if lines is None:
            shown = "\n".join(f"#   {line}" for line in (exercise.solution_code or "").strip().splitlines())
            lines = (f"# the reference solution:\n{shown}\n" if shown else "") + f"answer = {var}.solve()"
    if exercise.solution_code and isinstance(exercise, ChoiceExercise):
        lines = "\n".join(f"# {line}" for line in exercise.solution_code.strip().splitlines()) + "\n" + lines
    return lines


# --- notebook -> nbgrader assignment ---------------------------------------------------------
def _rewrite(source: str, variables: set[str], exercise_var: str | None, stubs: list | None = None) -> str | None:
    """The cell's source without check/solution calls on exercise variables (None: drop the cell).

    In the exercise cell itself (``exercise_var`` set) the learner's blank function turns into
    comments and the comment after a blank ``qN.check(...)`` is kept as an instruction.
    """
    tree = _parse(source)
    if tree is None:
        return source
    lines = source.split("\n")
    comments = _comments(source)
    replaced: dict[int, list[str]] = {}  # first line -> new lines, for statements that change
    dropped: set[int] = set()
    for stmt in tree.body:
        span = range(stmt.lineno, stmt.end_lineno + 1)
        call = _method_call(stmt, variables, {"check", "solution"})
        if call is not None:
            dropped.update(span)
            blank = call.args and isinstance(call.args[0], ast.Constant) and call.args[0].value is Ellipsis
            if exercise_var and blank and stmt.end_lineno in comments:
                replaced[stmt.lineno] = [comments[stmt.end_lineno]]
        elif exercise_var and _is_stub(stmt):
            dropped.update(span)
            replaced[stmt.lineno] = ["# Write this function:"] + [f"# {lines[n - 1]}".rstrip() for n in span]
            if stubs is not None:
                stubs.append(stmt.name)
    if not dropped:
        return source
    out = []
    for number, line in enumerate(lines, start=1):
        if number in replaced:
            out.extend(replaced[number])
        elif number not in dropped:
            out.append(line)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")
    has_code = any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())
    return text if has_code or exercise_var else None


def _code_cell(source: str, nbgrader: dict) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": nbgrader["grade_id"],
            "metadata": {"nbgrader": {"schema_version": NBGRADER_SCHEMA, "task": False, **nbgrader}},
            "outputs": [], "source": source}


def to_assignment(nb: dict, name: str) -> tuple[dict, list[ExerciseCell]]:
    """An nbgrader source notebook made from a workbook notebook, and the exercises it grades."""
    from lmguide import exercises as bank

    found = find_exercises(nb)
    by_cell = {}
    for ex in found:
        by_cell.setdefault(ex.cell, []).append(ex)
    variables: set[str] = set()
    cells = []
    for index, cell in enumerate(nb["cells"]):
        cell = copy.deepcopy(cell)
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        here = by_cell.get(index, [])
        variables |= {ex.var for ex in here}
        source = "".join(cell["source"])
        if not here:
            new = _rewrite(source, variables, None)
            if new is None:
                continue  # the cell only revealed an answer
            if new != source:
                cell.update(source=new, outputs=[], execution_count=None)
            cells.append(cell)
            continue
        # one solution + test pair per exercise; an exercise cell normally holds one exercise
        stubs: list[str] = []
        body = _rewrite(source, variables, here[-1].var, stubs) or ""
        for n, ex in enumerate(here):
            exercise = bank.get(ex.key)
            grade_id = re.sub(r"[^A-Za-z0-9_-]", "-", ex.key)
            head = body if n == len(here) - 1 else ""
            if isinstance(exercise, bank.FunctionExercise):
                name = stubs[-1] if stubs else exercise.function_name
                tell = (f"# {'Then' if stubs else f'Write {name}(...), then'} set answer = {name} (the function "
                        f"itself); the next cell checks it with {ex.var}.check(answer).")
            else:
                tell = f"# Set answer to your answer; the next cell checks it with {ex.var}.check(answer)."
            solution = "\n".join(part for part in (
                head, tell, "### BEGIN SOLUTION", reference_answer(exercise, ex.var), "### END SOLUTION") if part)
            cells.append(_code_cell(solution, {"grade": False, "solution": True, "locked": False,
                                               "grade_id": f"{grade_id}-answer"}))
            test = (f"# Autograded ({ex.points} point{'s' if ex.points != 1 else ''}): "
                    f"the exercise's own check. {ex.var}.hint() helps if it fails.\n"
                    f"assert {ex.var}.check(answer)")
            cells.append(_code_cell(test, {"grade": True, "solution": False, "locked": True,
                                           "points": ex.points, "grade_id": grade_id}))
    total = sum(ex.points for ex in found)
    note = {"cell_type": "markdown", "id": "lmguide-course-note", "metadata": {},
            "source": (f"*Course version of `{name}` for nbgrader: {len(found)} graded exercise(s), "
                       f"{total} point(s). In each exercise, set `answer` where it says `YOUR ANSWER HERE`; "
                       "the locked cell below it runs the exercise's own check.*")}
    cells.insert(1 if cells and cells[0]["cell_type"] == "markdown" else 0, note)
    out = copy.deepcopy({k: v for k, v in nb.items() if k != "cells"})
    out["cells"] = cells
    out["nbformat"], out["nbformat_minor"] = 4, max(nb.get("nbformat_minor", 5), 5)
    seen = set()
    for n, cell in enumerate(cells):  # nbformat 4.5: every cell has a unique id
        if not cell.get("id") or cell["id"] in seen:
            cell["id"] = f"cell-{n}"
        seen.add(cell["id"])
    return out, found


SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def with_wrong_answer(nb: dict, grade_id: str) -> dict:
    """A copy of an assignment notebook whose answer to ``grade_id`` is that exercise's ``wrong_example``
    (a hand-in that must lose exactly that exercise's points)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id + "-answer":
            source = "".join(cell["source"])
            var = re.search(r"(\w+) = lg\.exercises\.get", source).group(1)
            cell["source"] = SOLUTION_REGION.sub(f"answer = {var}.wrong_example\n", source)
    return nb


def init_course(dest, notebooks=None, course_id: str = "lmguide", timeout: int = EXECUTE_TIMEOUT,
                force: bool = False) -> list[dict]:
    """Write an nbgrader course folder: ``nbgrader_config.py`` and ``source/<stem>/<stem>.ipynb``.

    Returns one row per assignment (assignment, exercises, points).
    """
    dest = Path(dest)
    notebooks = [Path(p) for p in (notebooks or repo_notebooks())]
    if (dest / "source").exists() and not force:
        raise FileExistsError(f"{dest} already has a source/ folder; pass --force to rebuild it")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "nbgrader_config.py").write_text(_CONFIG.format(course_id=course_id, timeout=int(timeout),
                                                            stub=CODE_STUB))
    rows = []
    for path in notebooks:
        nb = json.loads(Path(path).read_text())
        name = path.stem
        assignment, found = to_assignment(nb, path.name)
        folder = dest / "source" / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / path.name).write_text(json.dumps(assignment, indent=1, ensure_ascii=False) + "\n")
        rows.append({"assignment": name, "exercises": len(found), "points": sum(e.points for e in found)})
    return rows


# --- HTML export -----------------------------------------------------------------------------
def _summary(nb: dict) -> tuple[str, str]:
    """(title, time) from a notebook's first markdown cell."""
    text = next(("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"), "")
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# ")), "")
    time = re.search(r"\*\*Time:?\*\*:?\s*([^.*\n]+)", text)
    return title, time.group(1).split(";")[0].strip() if time else ""


def export_html(out, notebooks=None) -> list[Path]:
    """Write every notebook, with its stored outputs, as HTML plus an ``index.html`` linking them."""
    import nbformat
    from nbconvert import HTMLExporter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    rows, written = [], []
    for path in [Path(p) for p in (notebooks or repo_notebooks())]:
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        target = out / f"{path.stem}.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
        title, time = _summary(nb)
        rows.append(f"<tr><td><a href='{html.escape(target.name)}'>{html.escape(title or path.stem)}</a></td>"
                    f"<td>{html.escape(time)}</td><td><code>{html.escape(path.name)}</code></td></tr>")
    index = out / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>lmguide notebooks</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.3em 1em;"
        "text-align:left;vertical-align:top}</style></head><body>\n"
        "<h1>lmguide: large vs small language models</h1>\n"
        "<p>The workbook's notebooks with the outputs of their last run. To run them yourself, "
        "clone the repository and use <code>bash scripts/quickstart.sh lab</code>.</p>\n"
        "<table><tr><th>notebook</th><th>time</th><th>file</th></tr>\n" + "\n".join(rows) +
        "\n</table></body></html>\n", encoding="utf-8")
    return [index, *written]


def run(args) -> int:
    """``lmguide course init|html DIR`` (called from lmguide.cli)."""
    try:
        if args.action == "init":
            rows = init_course(args.dir, args.notebooks, force=args.force)
            for row in rows:
                print(f"{row['assignment']}: {row['exercises']} exercises, {row['points']} points")
            print(f"\nnbgrader course folder ready. Next:\n  cd {args.dir}\n"
                  f"  nbgrader generate_assignment {rows[0]['assignment'] if rows else 'NAME'}   "
                  "# the student version, in release/")
        else:
            files = export_html(args.dir, args.notebooks)
            print(f"wrote {len(files) - 1} notebook pages and {files[0]}")
    except (FileExistsError, FileNotFoundError) as exc:
        print(f"lmguide course: {exc}")
        return 1
    return 0
