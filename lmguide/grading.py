"""A learner's answer, read and judged: what every exercise kind shares (``lmguide.exercises`` holds the kinds).

- Numbers as written: ``parse_number`` reads "0.67", "1,234", "2/3" or "67%" into a :class:`Number`
  that remembers its significant figures, so a check can accept a correctly rounded answer
  (``rounds_to``) and say when one was cut off instead (``truncates_to``).
- Functions: ``guard`` turns an exception inside a learner's function into one sentence naming
  the call, the exception and the line; ``is_blank_function`` spots a body that is still ``...``.
- Every refusal is an :class:`AnswerError` carrying the one sentence to show.
"""
from __future__ import annotations

import ast
import inspect
import math
import re
import textwrap
import traceback
from fractions import Fraction
from typing import Any


class AnswerError(ValueError):
    """Raised by ``parse`` (or by a learner's function, through the guard) with the one sentence to show."""


def with_article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def first_line(exc: BaseException, width: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if len(text) <= width else text[:width - 3] + "..."


# --- numbers ---------------------------------------------------------------------------
class Number(float):
    """A float that remembers how the learner wrote it: ``text`` and its significant figures."""

    text: str
    significant: int | None  # None: exact (a fraction like "2/3", or a computed value)

    def __new__(cls, value, text: str, significant: int | None):
        self = super().__new__(cls, value)
        self.text, self.significant = text, significant
        return self


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _significant_figures(digits: str) -> int | None:
    """Significant figures of a decimal written as text ("0.67" -> 2, "1.50" -> 3, "1200" -> 2)."""
    mantissa = re.split(r"[eE]", digits.lstrip("+-"))[0]
    if "." in mantissa:
        stripped = mantissa.replace(".", "").lstrip("0")
        return max(len(stripped), 1)
    stripped = mantissa.lstrip("0").rstrip("0")
    return max(len(stripped), 1)


def parse_number(answer: Any) -> Number:
    """A learner's number as a :class:`Number`; strings like "0.67", "1,234", "2/3", "67%" work.

    Raises :class:`AnswerError` with one sentence for anything else.
    """
    if isinstance(answer, Number):
        return answer
    if isinstance(answer, bool):
        return _not_a_number(answer)
    if hasattr(answer, "item") and not isinstance(answer, (int, float)):  # a numpy or torch scalar
        try:
            answer = answer.item()
        except (ValueError, RuntimeError):
            raise AnswerError(f"expected one number, got an array or tensor of shape "
                              f"{tuple(getattr(answer, 'shape', ()))}; pick out the single value.") from None
    if isinstance(answer, int):
        return Number(answer, f"{answer}", None if answer == 0 else _significant_figures(str(answer)))
    if isinstance(answer, float):
        if math.isnan(answer) or math.isinf(answer):
            raise AnswerError(f"expected a finite number, got {answer!r}.")
        text = repr(answer)
        return Number(answer, text, _significant_figures(text) if _NUMBER.match(text) else None)
    if isinstance(answer, Fraction):
        return Number(float(answer), str(answer), None)
    if isinstance(answer, str):
        text = answer.strip()
        cleaned = text.replace(",", "").replace("_", "").replace(" ", "").replace("\u202f", "")
        percent = cleaned.endswith("%")
        cleaned = cleaned.rstrip("%")
        if _NUMBER.match(cleaned):
            value = float(cleaned) / (100 if percent else 1)
            return Number(value, text, _significant_figures(cleaned))
        if re.fullmatch(r"[+-]?\d+/\d+", cleaned) and not percent:
            numerator, denominator = cleaned.split("/")
            if int(denominator) == 0:
                raise AnswerError(f"{text!r} divides by zero; write the fraction you mean, e.g. 3/4.")
            return Number(int(numerator) / int(denominator), text, None)
        raise AnswerError(f"expected a number, got the text {answer!r}; write digits, e.g. 0.25 or 1,234.")
    return _not_a_number(answer)


def _not_a_number(answer):
    raise AnswerError(f"expected a number, got {with_article(type(answer).__name__)} ({answer!r}).")


def format_number(value: float) -> str:
    """A number for a message: whole numbers with thousands separators, others to 4 significant figures."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}"


def rounds_to(value: Number, expected: float) -> bool:
    """True when ``value`` is ``expected`` rounded to the figures the learner wrote."""
    if value.significant is None or expected == 0:
        return False
    exponent = math.floor(math.log10(abs(value))) if value != 0 else math.floor(math.log10(abs(expected)))
    unit = 10.0 ** (exponent - value.significant + 1)  # the place of the last digit written
    return abs(value - expected) <= 0.5 * unit * (1 + 1e-9) + 1e-12


def truncates_to(value: Number, expected: float) -> bool:
    """True when ``value`` is ``expected`` with its later digits cut off (0.66 for 2/3), not rounded."""
    if value.significant is None or expected == 0 or value == 0 or rounds_to(value, expected):
        return False
    exponent = math.floor(math.log10(abs(value)))
    unit = 10.0 ** (exponent - value.significant + 1)
    return math.isclose(math.trunc(expected / unit) * unit, value, rel_tol=1e-9)


def percent(fraction: float) -> str:
    """A relative gap as a percentage with two significant figures: never "0%"."""
    if math.isinf(fraction):
        return "an unbounded share"
    return f"{100 * fraction:.2g}%".replace("e+0", "e").replace("e-0", "e-")


# --- functions -------------------------------------------------------------------------
_BLANK_LAMBDA = (lambda *args, **kwargs: ...).__code__


def is_blank_function(fn) -> bool:
    """True for a function whose body is only ``...`` / ``pass`` (and a docstring): not yet written."""
    code = getattr(fn, "__code__", None)
    if code is not None and code.co_code == _BLANK_LAMBDA.co_code and code.co_consts == _BLANK_LAMBDA.co_consts:
        return True  # lambda ...: ... returns the Ellipsis itself
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == fn.__name__:
            body = node.body
            break
        if isinstance(node, ast.Lambda) and fn.__name__ == "<lambda>":
            return isinstance(node.body, ast.Constant) and node.body.value is Ellipsis
    else:
        return False
    for statement in body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and (
                statement.value.value is Ellipsis or isinstance(statement.value.value, str)):
            continue
        return False
    return True


def _describe_arguments(args, kwargs) -> str:
    def one(a):
        shape = getattr(a, "shape", None)
        if shape is not None and hasattr(a, "dtype"):
            return f"a {tuple(shape)} tensor"
        text = repr(a)
        return text if len(text) <= 30 else text[:27] + "..."

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def _where(exc: BaseException, fn) -> str:
    """Where in the learner's code ``exc`` was raised: 'line 3 of the cell that defines f: `code`'."""
    frames = traceback.extract_tb(exc.__traceback__)
    code = getattr(fn, "__code__", None)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    frame = own[-1] if own else (frames[-1] if frames else None)
    if frame is None:
        return ""
    line = (frame.line or "").strip()
    line = line if len(line) <= 80 else line[:77] + "..."
    if "ipykernel" in frame.filename or frame.filename.startswith("<ipython"):
        place = f"line {frame.lineno} of the cell that defines it"
    else:
        place = f"line {frame.lineno} of {frame.filename.replace(chr(92), '/').rsplit('/', 1)[-1]}"
    return f" at {place}" + (f": `{line}`" if line else "")


def guard(fn, name: str):
    """``fn`` wrapped so that an exception inside it becomes one :class:`AnswerError` sentence
    naming the call, the exception and the line of the learner's code that raised it."""

    def guarded(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            call = f"{name}({_describe_arguments(args, kwargs)})"
            raise AnswerError(f"your {call} raised {type(exc).__name__} ({first_line(exc)})"
                              f"{_where(exc, fn)}.") from None

    guarded.__wrapped__ = fn
    return guarded
