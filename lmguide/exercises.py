"""Self-checking exercises, in the style of Kaggle's learntools.

A notebook makes an exercise and the learner calls it::

    q1 = lg.exercises.get("nb00.count_params")   # or any Exercise instance
    q1.check(my_answer)   # ✓ or one specific sentence about what is off
    q1.hint()             # a nudge
    q1.solution()         # the reference answer, with the code that makes it

Each exercise is an :class:`Exercise` with a ``solve()`` that computes the
reference answer and a ``diagnose(answer, expected)`` that returns ``None``
when the answer is right or one sentence saying what is wrong. Before
``diagnose`` sees it, ``parse(answer)`` turns what a learner typed into the
answer's type (``"0.67"`` and ``"1,234"`` become numbers, ``" b "`` becomes
``"B"``) or refuses it with one sentence. The test suite runs every registered
exercise's reference answer, and a wrong answer, through ``check`` so that no
check accepts everything or rejects the truth.

Here: the base class with what a learner calls, the three kinds (a number, a function,
a letter), and the registry (``register``, ``get``, ``names``). How an answer is read
(numbers as written, a learner's function guarded) is ``lmguide.grading``; the exercises
themselves are defined in ``lmguide/exercise_bank/``, one module per notebook (``nb00.py``
... ``nb08.py``), each registering its own with ``@register("nbNN.name")``.

What the learner sees has three states:

- ``… Waiting for your answer`` while the cell still holds the blank ``...``
  (what a committed notebook shows after Run All: nothing has failed yet);
- ``✓ Correct``;
- ``✗ Not yet: <what is off>``.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

from lmguide.grading import (AnswerError, Number, first_line, format_number, guard, is_blank_function,
                             parse_number, percent, rounds_to, truncates_to, with_article)

_REGISTRY: dict[str, Callable[[], "Exercise"]] = {}

WAITING, CORRECT, WRONG = "waiting", "correct", "wrong"


class Result:
    """What ``check`` returns: true when the answer is right; shows nothing in a notebook
    (the printed message already said it all). ``state`` is ``"waiting"`` (no answer yet),
    ``"correct"`` or ``"wrong"``."""

    def __init__(self, ok: bool, message: str | None, state: str | None = None):
        self.ok, self.message = ok, message
        self.state = state or (CORRECT if ok else WRONG)

    @property
    def waiting(self) -> bool:
        return self.state == WAITING

    def __bool__(self):
        return self.ok

    def __eq__(self, other):
        return bool(self) == other

    __hash__ = None

    def __repr__(self):
        return f"Result(ok={self.ok}, state={self.state!r})"

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

    def is_blank(self, answer: Any) -> bool:
        """True while the learner has not answered yet (the notebook's ``...``)."""
        return answer is None or answer is Ellipsis

    def parse(self, answer: Any) -> Any:
        """Turn what the learner typed into the answer's type, or raise :class:`AnswerError`."""
        return answer

    def diagnose(self, answer: Any, expected: Any) -> str | None:
        """``None`` when ``answer`` is right, otherwise one sentence saying what is off."""
        if answer == expected:
            return None
        return f"you gave {answer!r}; that is not it (check the hint)."

    # --- what learners call -----------------------------------------------------------
    def check(self, answer: Any = None, *, quiet: bool = False) -> Result:
        """Say whether ``answer`` is right, with a specific message when it is not."""
        if self.is_blank(answer):
            message = ("replace the ... with your answer and run this cell again "
                       "(q.hint() gives a nudge, q.solution() the answer).")
            result = Result(False, message, WAITING)
        else:
            try:
                message = self.diagnose(self.parse(answer), self.solve())
            except AnswerError as exc:  # the learner's input or function: one sentence, said by parse/guard
                message = str(exc)
            except Exception as exc:  # anything else: still a sentence, not a traceback
                message = f"could not check that answer ({type(exc).__name__}: {first_line(exc)})."
            result = Result(message is None, message)
        self.solved = self.solved or result.ok
        if not quiet:
            if result.waiting:
                print(f"… Waiting for your answer to {self.name}: {result.message}")
            elif result.ok:
                print(f"✓ Correct: {self.name}")
            else:
                print(f"✗ Not yet: {result.message}")
        return result

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


# --- numbers ---------------------------------------------------------------------------
class NumberExercise(Exercise):
    """An exercise whose answer is a number.

    Accepted: within ``rel_tol`` of the answer, or the answer correctly rounded to the
    figures the learner wrote, when that is at least ``min_significant`` of them (0.67 for
    2/3). Set ``exact = True`` for a count, where rounding is not an answer.
    """

    rel_tol = 1e-3
    exact = False
    min_significant = 2
    unit = ""  # e.g. "parameter": "too high by 3 parameters"

    def parse(self, answer):
        return parse_number(answer)

    def accepts(self, value: Number, expected: float) -> bool:
        """True when ``value`` counts as right (see the class docstring)."""
        if self.exact:
            return value == expected
        if math.isclose(value, expected, rel_tol=self.rel_tol, abs_tol=1e-12):
            return True
        return (value.significant or 0) >= self.min_significant and rounds_to(value, expected)

    def diagnose(self, answer, expected):
        value = parse_number(answer)  # subclasses may call this with what they parsed themselves
        if self.accepts(value, expected):
            return None
        return self.describe_miss(value, expected)

    def describe_miss(self, value: Number, expected: float) -> str:
        """One sentence on how ``value`` misses ``expected`` (never "off by 0")."""
        shown = value.text if isinstance(value, Number) else format_number(value)
        if self.exact and not float(value).is_integer():
            return f"{shown} is not a whole number, and this answer is an exact count."
        if expected != 0 and value != 0:
            ratio = value / expected
            if math.isclose(ratio, -1, rel_tol=1e-3):
                return f"{shown} has the right size but the wrong sign."
            if math.isclose(ratio, 100, rel_tol=0.01):
                return f"{shown} is 100 times too large: it looks like a percentage; give a plain number."
            if math.isclose(value * expected, 1, rel_tol=0.01) and not math.isclose(ratio, 1, rel_tol=0.01):
                return f"{shown} is the reciprocal of the answer: divide the other way round."
            for power in (3, 6, 9):
                for factor, word in ((10.0 ** power, "large"), (10.0 ** -power, "small")):
                    if math.isclose(ratio, factor, rel_tol=0.01):
                        return f"{shown} is {10 ** power:,} times too {word}: check the units."
        if (not self.exact and value.significant is not None and value.significant < self.min_significant
                and rounds_to(value, expected)):
            return (f"{shown} has only {value.significant} significant figure; "
                    f"give at least {self.min_significant}.")
        if not self.exact and (value.significant or 0) >= self.min_significant and truncates_to(value, expected):
            return (f"{shown} looks cut off rather than rounded: round the last digit you give "
                    f"(4 or less rounds down, 5 or more rounds up).")
        direction = "too high" if value > expected else "too low"
        gap = abs(value - expected)
        if self.exact or (float(value).is_integer() and float(expected).is_integer()):
            unit = f" {self.unit}{'s' if gap != 1 else ''}" if self.unit else ""
            return f"{shown} is {direction} by {format_number(gap)}{unit}."
        relative = gap / abs(expected) if expected else math.inf
        return f"{shown} is {direction}, by {percent(relative)} of the answer."


# --- functions -------------------------------------------------------------------------
class FunctionExercise(Exercise):
    """An exercise whose answer is a function the learner writes, called on fixed inputs.

    ``function_name`` names it in messages; ``library_function`` is where lmguide keeps the
    same function; subclasses write ``diagnose_function`` (``answer`` is known to be callable,
    and an exception inside it is reported as one sentence naming the exception and the line).
    A function whose body is still ``...`` counts as no answer yet.
    """

    function_name = "f"
    library_function = ""

    def is_blank(self, answer):
        return super().is_blank(answer) or (callable(answer) and is_blank_function(answer))

    def parse(self, answer):
        if not callable(answer):
            raise AnswerError(f"pass your function itself (q.check({self.function_name})), "
                              f"not {with_article(type(answer).__name__)}.")
        return answer

    def diagnose(self, answer, expected):
        if not callable(answer):  # subclasses calling diagnose directly
            return f"pass your function itself (q.check({self.function_name})), not a {type(answer).__name__}."
        return self.diagnose_function(guard(answer, self.function_name), expected)

    def diagnose_function(self, answer, expected) -> str | None:
        raise NotImplementedError

    def solution(self) -> None:
        print("Solution:\n" + self.solution_code.strip())
        print(f"Answer: the function above; {self.library_function} does the same.")


# --- multiple choice -------------------------------------------------------------------
_ONE_LETTER = re.compile(r"^[(\[]?\s*([A-Za-z])\s*[)\].:]?$")


class ChoiceExercise(Exercise):
    """A multiple-choice exercise; ``choices`` maps a letter to its text.

    Read strictly: one letter ("b", "B", "(B)", "B." all count as B), or the exact text of a
    choice. "Both", "A or B", "AB" are not one letter and are refused with a sentence saying so.
    """

    choices: dict[str, str] = {}
    answer_letter = ""
    why_wrong: dict[str, str] = {}

    def solve(self):
        return self.answer_letter

    def _letters(self) -> str:
        letters = list(self.choices)
        return ", ".join(letters[:-1]) + f" or {letters[-1]}" if len(letters) > 1 else "".join(letters)

    def parse(self, answer):
        if not isinstance(answer, str):
            raise AnswerError(f"answer with one letter as a string, e.g. q.check(\"{next(iter(self.choices))}\") "
                              f"(got {with_article(type(answer).__name__)}, {answer!r}).")
        text = answer.strip()
        match = _ONE_LETTER.match(text)
        if match:
            letter = match.group(1).upper()
            if letter not in self.choices:
                raise AnswerError(f"{letter!r} is not one of the letters {self._letters()}.")
            return letter
        for letter, choice in self.choices.items():  # the text of a choice, copied out
            if text.rstrip(".").lower() == choice.rstrip(".").lower():
                return letter
        named = [c for c in dict.fromkeys(re.findall(r"\b([A-Za-z])\b", text)) if c.upper() in self.choices]
        if not named and text.isalpha() and len(text) <= len(self.choices) and all(
                c.upper() in self.choices for c in text):
            named = list(text.upper())  # "AB", "bd"
        if len(named) > 1:
            raise AnswerError(f"{answer!r} names {len(named)} letters ({', '.join(l.upper() for l in named)}); "
                              f"pick the one choice you think is right.")
        raise AnswerError(f"{answer!r} is not a letter: answer with exactly one of {self._letters()}.")

    def diagnose(self, answer, expected):
        if answer == expected:
            return None
        return self.why_wrong.get(answer, f"{answer} is not right.")


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
