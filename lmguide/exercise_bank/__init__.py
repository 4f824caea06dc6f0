"""Exercise definitions, one module per notebook (``nb00.py``, ``nb02.py``...).

Each module registers its exercises with ``@lmguide.exercises.register("nbNN.name")``.
"""
