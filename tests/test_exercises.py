import pytest

from lmguide import exercises


@pytest.mark.parametrize("key", exercises.names())
def test_reference_solution_passes_its_own_check(key, capsys):
    q = exercises.get(key)
    assert q.check(q.solve())
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("key", exercises.names())
def test_a_wrong_answer_is_rejected_with_a_specific_message(key, capsys):
    q = exercises.get(key)
    assert q.wrong_example is not None, f"{key} needs a wrong_example for this test"
    assert not q.check(q.wrong_example)
    out = capsys.readouterr().out
    assert out.startswith("✗ Not yet:") and len(out.strip()) > len("✗ Not yet:") + 10


@pytest.mark.parametrize("key", exercises.names())
def test_hint_and_solution_print_something(key, capsys):
    q = exercises.get(key)
    q.hint()
    q.solution()
    out = capsys.readouterr().out
    assert "Hint" in out or "No hint" in out
    assert "Answer:" in out


def test_missing_answer_is_not_an_error(capsys):
    q = exercises.get("nb00.which_model")
    assert not q.check(...)
    assert "no answer yet" in capsys.readouterr().out


def test_number_check_says_which_way_it_is_off(capsys):
    q = exercises.get("nb00.perplexity")
    q.check(q.solve() * 2)
    assert "too high" in capsys.readouterr().out
    q.check("ten")
    assert "expected a number" in capsys.readouterr().out


def test_choice_explains_the_wrong_letter(capsys):
    q = exercises.get("nb00.which_model")
    q.check("c")
    assert "never trained" in capsys.readouterr().out
    q.check("Z")
    assert "one of the letters" in capsys.readouterr().out


def test_hints_get_more_specific(capsys):
    q = exercises.get("nb00.perplexity")
    q.hint()
    q.hint()
    first, second = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Hint")]
    assert first != second


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="nb00.perplexity"):
        exercises.get("nb99.nothing")


def test_check_result_is_truthy_and_silent_in_notebooks():
    q = exercises.get("nb00.which_model")
    right, wrong = q.check("B", quiet=True), q.check("A", quiet=True)
    assert right and not wrong
    assert right == True and wrong == False  # noqa: E712  (compares like a bool)
    assert wrong.message and right.message is None
    assert hasattr(right, "_ipython_display_")  # so a notebook shows only the printed message
