"""Exercises for 00_start_here."""
from __future__ import annotations

from lmguide.exercises import ChoiceExercise, NumberExercise, register


@register("nb00.size_ratio")
class SizeRatio(NumberExercise):
    prompt = ("How many times more parameters does smollm2-135m have than austen-gpt-large? "
              "Compute it from the models themselves, not from the table's rounded figures.")
    hints = (
        "sum(p.numel() for p in model.parameters()) counts a model's parameters.",
        "Load both with lg.load(name), count each, then divide the large count by the small one.",
    )
    solution_code = """
llm, _ = lg.load("smollm2-135m")
slm, _ = lg.load("austen-gpt-large")
count = lambda m: sum(p.numel() for p in m.parameters())
answer = count(llm) / count(slm)
"""
    rel_tol = 0.01
    wrong_example = 1.0

    def solve(self):
        from lmguide.zoo import ENTRIES

        return ENTRIES["smollm2-135m"].parameters / ENTRIES["austen-gpt-large"].parameters


@register("nb00.which_model")
class WhichModel(ChoiceExercise):
    prompt = ("You need to find, among 10,000 support tickets, the ones most similar to a new ticket, "
              "on a laptop, in well under a second per query. Which zoo model fits best?")
    choices = {
        "A": "smollm2-135m: it is the biggest, so it understands the most",
        "B": "minilm-l6: an encoder that turns each ticket into one vector to compare",
        "C": "austen-gpt-large: it writes fluent English",
    }
    answer_letter = "B"
    why_wrong = {
        "A": "a generative LLM produces text token by token; it gives no ready-made vector to compare, "
             "and it is 6x larger than MiniLM, so every ticket costs more.",
        "C": "AustenGPT generates Austen-style text; it was never trained to place similar meanings near each other.",
    }
    hints = ("Similarity search compares vectors. Which model is built to output one vector per text?",)
    solution_code = 'answer = "B"  # embed every ticket once with minilm-l6, then compare cosine similarities'
    wrong_example = "A"
