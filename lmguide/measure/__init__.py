"""Measurement: what sits above the lessons and measures them the same way for every model.

    quality   the one scorer per task (bits per byte, QA F1, retrieval recall), cached by model files
    rows      one row of the comparison table per model, each measured in a fresh process
    table     the comparison table, its Pareto front and recommendation, the stored results
    command   ``lmguide bench``: everything above, printed and stored for notebook 07

Lessons never import this package; it imports them (nanoGPT's ``bench.py`` imports ``model.py``,
never the reverse).
"""
