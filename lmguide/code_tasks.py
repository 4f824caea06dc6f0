"""Writing code, checked by running it: a task only a general model can attempt (notebook 07).

    tasks = code_tasks.load_tasks()                 # 35 short Python tasks, each with unit tests
    text = "".join(engine.stream_text(code_tasks.prompt(tasks[0]), 256, chat=True))
    code = code_tasks.extract_code(text)            # the answer's ```python block
    code_tasks.check(tasks[0], code)                # run in lmguide.sandbox: passed / failed / timeout ...
    code_tasks.answer_all(engine, tasks)            # one greedy answer per task, each checked
    code_tasks.pass_at_1(rows), code_tasks.wilson_interval(k, n), code_tasks.sign_test(a, b)

The tasks (``lmguide/assets/code_tasks/tasks.json``) were written for this course: a function's
signature, what it must do, 3 to 5 ``assert`` tests, and a reference solution that passes them.
**pass@1** is the share of tasks whose one greedy answer passes every test. Generated code is
untrusted: it only ever runs in :mod:`lmguide.sandbox`, a separate process with limits. The
answers of the three chat models are stored once (``python -m lmguide.recipes.ladder --code``,
the machine named in the file), because the 1.5 B needs minutes for all of them.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

from lmguide import sandbox

FOLDER = Path(__file__).resolve().parent / "assets" / "code_tasks"
TASKS_FILE = FOLDER / "tasks.json"
ANSWERS_FILE = FOLDER / "answers.json"
MAX_NEW_TOKENS = 320  # the longest reference solution is about 150 tokens; room for a sentence around it


def load_tasks() -> list[dict]:
    """Every task: ``{"id", "entry point", "signature", "description", "tests", "reference"}``, easiest first."""
    return json.loads(TASKS_FILE.read_text(encoding="utf-8"))["tasks"]


def prompt(task: dict) -> str:
    """The request a chat model gets: the signature, what the function must do, and the answer's form."""
    return (f"Write a Python function `{task['signature']}`. {task['description']}\n"
            "Reply with the complete function in one ```python code block.")


def extract_code(text: str) -> str:
    """The code in a model's answer: its first ```python (or bare ```) block; without one, the text from
    the first line that starts a definition or an import; '' when there is none."""
    fenced = re.search(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", text, re.DOTALL | re.IGNORECASE)
    if fenced:
        return fenced.group(1).strip("\n") + "\n"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"(def |class |import |from \w+ import )", line):
            return "\n".join(lines[i:]).strip("\n") + "\n"
    return ""


def check(task: dict, code: str, timeout_s: float = sandbox.DEFAULT_TIMEOUT_S) -> sandbox.Result:
    """Run ``code`` and the task's tests in the sandbox; an answer with no code fails without running."""
    if not code.strip():
        return sandbox.Result("error", "the answer contains no code", 0.0)
    return sandbox.run(code, task["tests"], timeout_s=timeout_s)


def answer_all(engine, tasks, max_new_tokens: int = MAX_NEW_TOKENS, progress=None) -> list[dict]:
    """One greedy answer per task from ``engine`` (any :class:`lmguide.engines.Engine` of a chat model), each
    checked in the sandbox: id, answer, code, status, detail, new tokens, seconds to generate."""
    rows = []
    for i, task in enumerate(tasks):
        start = time.perf_counter()
        ids = engine.prompt_ids(prompt(task), chat=True)
        tokens = engine.answer_ids(ids, max_new_tokens)
        text = engine.decode(tokens)
        seconds = time.perf_counter() - start
        code = extract_code(text)
        result = check(task, code)
        rows.append({"id": task["id"], "answer": text, "code": code, "status": result.status, "detail": result.detail,
                     "new tokens": len(tokens), "seconds": seconds})
        if progress:
            progress(i + 1, len(tasks), rows[-1])
    return rows


def pass_at_1(rows) -> float:
    """The share of tasks whose one answer passed every test."""
    rows = list(rows)
    if not rows:
        raise ValueError("no answers; pass@1 needs at least one")
    return sum(r["status"] == "passed" for r in rows) / len(rows)


def wilson_interval(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``passed / n`` (95% with z = 1.96): unlike the normal
    approximation it stays inside [0, 1] and is honest near 0 and 1, where few tasks pass or fail."""
    if n < 1 or not 0 <= passed <= n:
        raise ValueError(f"need 0 <= passed <= n and n >= 1 (got {passed}, {n})")
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(a_passed, b_passed) -> dict:
    """Exact two-sided sign test (McNemar's exact test) of two models on the same tasks: only the tasks
    exactly one of them passed say which is better. Returns those two counts and the p-value."""
    a_passed, b_passed = list(map(bool, a_passed)), list(map(bool, b_passed))
    if len(a_passed) != len(b_passed):
        raise ValueError(f"the two models answered different numbers of tasks ({len(a_passed)} vs {len(b_passed)})")
    a_only = sum(a and not b for a, b in zip(a_passed, b_passed))
    b_only = sum(b and not a for a, b in zip(a_passed, b_passed))
    n = a_only + b_only
    tail = sum(math.comb(n, k) for k in range(0, min(a_only, b_only) + 1)) / 2 ** n if n else 1.0
    return {"only the first passed": a_only, "only the second passed": b_only, "p": min(1.0, 2 * tail)}


def load_answers() -> dict | None:
    """The stored answers (``python -m lmguide.recipes.ladder --code``): machine, date, and per model its
    engine and rows; None before the recipe has run."""
    if not ANSWERS_FILE.is_file():
        return None
    return json.loads(ANSWERS_FILE.read_text(encoding="utf-8"))
