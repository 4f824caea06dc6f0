"""The exercise base classes: what they accept, what they refuse, and what they say.

Each test below is written against a tiny exercise defined here (not one of a notebook's),
so that it checks the base class's rule, and fails when that rule is broken.
"""
import math

import pytest

from lmguide import exercises, grading
from lmguide.exercises import ChoiceExercise, FunctionExercise, NumberExercise


# --- every registered exercise ---------------------------------------------------------------
@pytest.mark.parametrize("key", exercises.names())
def test_reference_solution_passes_its_own_check(key, capsys):
    q = exercises.get(key)
    assert q.check(q.solve())
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("key", exercises.names())
def test_a_wrong_answer_is_rejected_with_a_specific_message(key, capsys):
    q = exercises.get(key)
    assert q.wrong_example is not None, f"{key} needs a wrong_example for this test"
    result = q.check(q.wrong_example)
    assert not result and result.state == "wrong"
    out = capsys.readouterr().out
    assert out.startswith("✗ Not yet:") and len(out.strip()) > len("✗ Not yet:") + 10
    assert "could not check" not in out  # a real diagnosis, not a crash in the check


@pytest.mark.parametrize("key", exercises.names())
def test_hint_and_solution_print_something(key, capsys):
    q = exercises.get(key)
    q.hint()
    q.solution()
    out = capsys.readouterr().out
    assert "Hint" in out or "No hint" in out
    assert "Answer:" in out


def _written_forms(value):
    """How a numeric or pair answer could appear in a hint that gives it away."""
    if isinstance(value, tuple):
        return {str(value), str(list(value)), ", ".join(map(str, value))}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        forms = {f"{value:.2f}", f"{value:.3f}", f"{value:.3g}"}
        if float(value).is_integer():
            forms |= {f"{int(value):,}", str(int(value))}
        return {f for f in forms if len(f.strip("0.")) >= 2}  # "0.5" is everywhere; "1,350,400" is not
    return set()


@pytest.mark.parametrize("key", exercises.names())
def test_no_hint_or_wrong_answer_message_gives_the_answer_away(key, capsys):
    q = exercises.get(key)
    forms = _written_forms(q.solve())
    for _ in q.hints:
        q.hint()
    q.check(q.wrong_example)
    out = capsys.readouterr().out
    for form in forms:
        assert form not in out, f"{key}: the hints or a wrong-answer message show the answer {form!r}"


# --- the blank state ---------------------------------------------------------------------------
class _Half(NumberExercise):
    name = "test.half"

    def solve(self):
        return 2 / 3


def test_blank_answer_waits_and_does_not_read_as_a_failure(capsys):
    q = _Half()
    for blank in (..., None):
        result = q.check(blank)
        assert not result and result.waiting and result.state == "waiting"
        out = capsys.readouterr().out
        assert out.startswith("… Waiting for your answer") and "✗" not in out and "Not yet" not in out
    assert not q.solved


def test_wrong_and_right_answers_are_not_waiting(capsys):
    q = _Half()
    assert q.check(0.5).state == "wrong"
    assert q.check(2 / 3).state == "correct"
    assert q.solved


# --- numbers: rounding and strings ---------------------------------------------------------------
@pytest.mark.parametrize("answer", [2 / 3, 0.67, 0.667, 0.6667, "0.67", " 0.667 ", "2/3", "67%", "66.7%"])
def test_a_right_number_is_accepted_rounded_or_typed_as_text(answer):
    assert _Half().check(answer, quiet=True)


@pytest.mark.parametrize("answer, says", [
    (0.7, "only 1 significant figure"),   # rounded too far: 1 figure
    (0.66, "cut off rather than rounded"),  # truncated, not rounded
    (0.68, "too high"),
    ("0.6", "too low"),
    (66.7, "percentage"),
    (1.5, "reciprocal"),
    (-2 / 3, "wrong sign"),
    ("two thirds", "expected a number"),
    (True, "expected a number"),
])
def test_a_wrong_number_gets_a_specific_message(answer, says):
    result = _Half().check(answer, quiet=True)
    assert not result
    assert says in result.message, result.message


def test_a_miss_never_says_off_by_zero():
    # 0.6 is 10% low and 0.66 is 1% low: the message must show a gap that is not 0
    for answer in (0.6, 0.664, 0.67001, 0.6668):
        result = _Half().check(answer, quiet=True)
        if not result:
            assert "by 0%" not in result.message and "by 0 " not in result.message, result.message
    message = _Half().check(0.6, quiet=True).message
    assert "by 10%" in message, message


class _Count(NumberExercise):
    name = "test.count"
    exact = True
    unit = "parameter"

    def solve(self):
        return 1_350_400


@pytest.mark.parametrize("answer", [1_350_400, "1350400", "1,350,400", "1 350 400", 1_350_400.0])
def test_an_exact_count_is_accepted_in_the_forms_people_type(answer):
    assert _Count().check(answer, quiet=True)


@pytest.mark.parametrize("answer, says", [
    ("1,350,401", "too high by 1 parameter."),
    ("1,350,000", "too low by 400 parameters."),  # a rounded count is not the count
    (1_350_400.5, "not a whole number"),
])
def test_an_exact_count_refuses_rounding_and_says_by_how_much(answer, says):
    result = _Count().check(answer, quiet=True)
    assert not result and says in result.message, result.message


def test_numpy_and_torch_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert _Half().check(np.float32(2 / 3), quiet=True)
    assert _Count().check(torch.tensor(1_350_400), quiet=True)
    result = _Half().check(torch.tensor([0.5, 0.6]), quiet=True)
    assert not result and "one number" in result.message


def test_parse_number_keeps_what_was_typed():
    n = grading.parse_number("1,234.50")
    assert n == 1234.5 and n.text == "1,234.50" and n.significant == 6
    assert grading.parse_number(0.67).significant == 2
    assert grading.parse_number("2/3").significant is None
    assert math.isclose(grading.parse_number("12.5%"), 0.125)


# --- multiple choice, read strictly ------------------------------------------------------------
class _Pick(ChoiceExercise):
    name = "test.pick"
    choices = {"A": "red", "B": "green", "C": "blue"}
    answer_letter = "B"
    why_wrong = {"A": "red is the other end of the spectrum."}


@pytest.mark.parametrize("answer", ["B", "b", " B ", "(B)", "B.", "b)", "green", "Green."])
def test_one_letter_in_any_case_or_the_choice_text_is_read(answer):
    assert _Pick().check(answer, quiet=True)


@pytest.mark.parametrize("answer, says", [
    ("Both", "not a letter"),      # used to be read as B
    ("Bright", "not a letter"),    # a word starting with a letter is not that letter
    ("A or B", "names 2 letters"),  # used to be read as A
    ("AB", "names 2 letters"),
    ("b, c", "names 2 letters"),
    ("D", "not one of the letters A, B or C"),
    (2, "one letter as a string"),
])
def test_ambiguous_choices_are_refused_with_a_sentence_saying_why(answer, says):
    result = _Pick().check(answer, quiet=True)
    assert not result and says in result.message, result.message


def test_a_wrong_letter_gets_its_own_explanation():
    assert _Pick().check("a", quiet=True).message == "red is the other end of the spectrum."
    assert "C is not right" in _Pick().check("C", quiet=True).message


# --- functions: blank bodies and exceptions inside them ----------------------------------------
class _Double(FunctionExercise):
    name = "test.double"
    function_name = "double"

    def solve(self):
        return lambda x: 2 * x

    def diagnose_function(self, answer, expected):
        for x in (1, 5):
            if answer(x) != expected(x):
                return f"double({x}) gave {answer(x)!r}; expected {expected(x)}."
        return None


def test_a_function_with_a_blank_body_is_waiting(capsys):
    def double(x):
        ...  # your code

    def double_pass(x):
        """Not written yet."""
        pass

    for blank in (double, double_pass, lambda x: ...):
        assert _Double().check(blank, quiet=True).waiting


def test_a_function_that_forgets_to_return_is_wrong_not_waiting():
    def double(x):
        y = 2 * x  # noqa: F841  (computed, then not returned)

    result = _Double().check(double, quiet=True)
    assert result.state == "wrong" and "None" in result.message


def test_a_raising_function_gets_one_sentence_naming_the_exception_and_the_line():
    def double(x):
        y = x * 2
        return y / (x - 1)  # ZeroDivisionError for x = 1

    result = _Double().check(double, quiet=True)
    assert not result
    message = result.message
    assert message.startswith("your double(1) raised ZeroDivisionError")
    assert "return y / (x - 1)" in message and "line" in message
    assert "Traceback" not in message and message.count("\n") == 0


def test_an_exception_deep_in_a_library_names_the_learners_line():
    torch = pytest.importorskip("torch")

    def double(x):
        return torch.tril(torch.ones(x, x), dtype=torch.bool)  # tril takes no dtype

    message = _Double().check(double, quiet=True).message
    assert "raised TypeError" in message and "torch.tril(torch.ones(x, x), dtype=torch.bool)" in message


def test_something_not_callable_is_refused():
    result = _Double().check(42, quiet=True)
    assert not result and "pass your function itself" in result.message


# --- the registry and Result ---------------------------------------------------------------------
def test_hints_get_more_specific(capsys):
    q = exercises.get("nb00.perplexity")
    q.hint()
    q.hint()
    first, second = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Hint")]
    assert first != second


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="nb00.perplexity"):
        exercises.get("nb99.nothing")


def test_check_result_is_truthy_and_silent_in_notebooks():
    right, wrong = _Pick().check("B", quiet=True), _Pick().check("A", quiet=True)
    assert right and not wrong
    assert right == True and wrong == False  # noqa: E712  (compares like a bool)
    assert wrong.message and right.message is None
    assert hasattr(right, "_ipython_display_")  # so a notebook shows only the printed message
