"""Self-checking exercises, in the style of Kaggle's learntools.

A notebook makes an exercise and the learner calls it::

    q1 = lg.exercises.get("nb00.count_params")   # or any Exercise instance
    q1.check(my_answer)   # ✓ or one specific sentence about what is off
    q1.hint()             # a nudge
    q1.solution()         # the reference answer, with the code that makes it

Each exercise is an :class:`Exercise` with a ``solve()`` that computes the
reference answer and a ``diagnose(answer, expected)`` that returns ``None``
when the answer is right or one sentence saying what is wrong. The test suite
runs every registered exercise's reference answer, and a wrong answer,
through ``check`` so that no check accepts everything or rejects the truth.
"""
from __future__ import annotations

import math
from typing import Any, Callable

_REGISTRY: dict[str, Callable[[], "Exercise"]] = {}


class Result:
    """What ``check`` returns: true when the answer is right; shows nothing in a notebook
    (the printed message already said it all)."""

    def __init__(self, ok: bool, message: str | None):
        self.ok, self.message = ok, message

    def __bool__(self):
        return self.ok

    def __eq__(self, other):
        return bool(self) == other

    __hash__ = None

    def __repr__(self):
        return f"Result(ok={self.ok})"

    def _ipython_display_(self):
        pass


class Exercise:
    """One question. Subclasses set ``prompt``, ``hints``, ``solution_code`` and write ``solve``."""

    name = "exercise"
    prompt = ""
    hints: tuple[str, ...] = ()
    solution_code = ""
    wrong_example: Any = None  # an answer the check must reject (used by the tests)

    def __init__(self):
        self._hint_index = 0
        self.solved = False

    # --- what subclasses define -------------------------------------------------------
    def solve(self) -> Any:
        """The reference answer."""
        raise NotImplementedError

    def diagnose(self, answer: Any, expected: Any) -> str | None:
        """``None`` when ``answer`` is right, otherwise one sentence saying what is off."""
        if answer == expected:
            return None
        return f"you gave {answer!r}; that is not it (check the hint)."

    # --- what learners call -----------------------------------------------------------
    def check(self, answer: Any = None, *, quiet: bool = False) -> Result:
        """Say whether ``answer`` is right, with a specific message when it is not."""
        if answer is None or answer is Ellipsis:
            message = "no answer yet: replace the ... (or None) with your answer and run the cell again."
            ok = False
        else:
            try:
                message = self.diagnose(answer, self.solve())
            except Exception as exc:  # a learner's odd input gets a sentence, not a traceback
                message = f"could not check that answer ({type(exc).__name__}: {exc})."
            ok = message is None
        self.solved = self.solved or ok
        if not quiet:
            print(f"✓ Correct: {self.name}" if ok else f"✗ Not yet: {message}")
        return Result(ok, message)

    def hint(self) -> None:
        """Show the next hint (they get more specific each time)."""
        if not self.hints:
            print("No hint for this one: try the solution.")
            return
        text = self.hints[min(self._hint_index, len(self.hints) - 1)]
        self._hint_index += 1
        print(f"Hint: {text}")

    def solution(self) -> None:
        """Show the reference solution and its value."""
        if self.solution_code:
            print("Solution:\n" + self.solution_code.strip())
        print(f"Answer: {self.solve()!r}")

    def __repr__(self):
        return f"<Exercise {self.name}: {self.prompt}>"


class NumberExercise(Exercise):
    """An exercise whose answer is a number, accepted within a relative tolerance."""

    rel_tol = 1e-3

    def diagnose(self, answer, expected):
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) and not hasattr(answer, "item"):
            return f"expected a number, got a {type(answer).__name__}."
        value = float(answer)
        if math.isclose(value, expected, rel_tol=self.rel_tol, abs_tol=1e-9):
            return None
        direction = "too high" if value > expected else "too low"
        return f"{value:,g} is {direction} (off by {abs(value - expected) / max(abs(expected), 1e-12):.0%})."


class FunctionExercise(Exercise):
    """An exercise whose answer is a function the learner writes, called on fixed inputs.

    ``function_name`` names it in messages; ``library_function`` is where lmguide keeps the
    same function; subclasses write ``diagnose_function`` (``answer`` is known to be callable).
    """

    function_name = "f"
    library_function = ""

    def diagnose(self, answer, expected):
        if not callable(answer):
            return f"pass your function itself (q.check({self.function_name})), not a {type(answer).__name__}."
        return self.diagnose_function(answer, expected)

    def diagnose_function(self, answer, expected) -> str | None:
        raise NotImplementedError

    def solution(self) -> None:
        print("Solution:\n" + self.solution_code.strip())
        print(f"Answer: the function above; {self.library_function} does the same.")


class ChoiceExercise(Exercise):
    """A multiple-choice exercise; ``choices`` maps a letter to its text."""

    choices: dict[str, str] = {}
    answer_letter = ""
    why_wrong: dict[str, str] = {}

    def solve(self):
        return self.answer_letter

    def diagnose(self, answer, expected):
        letter = str(answer).strip().upper()[:1]
        if letter not in self.choices:
            return f"answer with one of the letters {', '.join(self.choices)} (got {answer!r})."
        if letter == expected:
            return None
        return self.why_wrong.get(letter, f"{letter} is not right.")


def register(key: str):
    """Class decorator: make an exercise available as ``exercises.get(key)``."""

    def wrap(cls):
        if key in _REGISTRY:
            raise ValueError(f"exercise {key!r} is registered twice")
        cls.name = key
        _REGISTRY[key] = cls
        return cls

    return wrap


def get(key: str) -> Exercise:
    """A fresh instance of the exercise registered as ``key``."""
    _load_all()
    if key not in _REGISTRY:
        raise KeyError(f"no exercise named {key!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]()


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def _load_all() -> None:
    # exercise definitions live beside the topic they test; importing registers them
    import importlib
    import pkgutil

    import lmguide.exercise_bank as bank

    for info in pkgutil.iter_modules(bank.__path__):
        importlib.import_module(f"{bank.__name__}.{info.name}")
