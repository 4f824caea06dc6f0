"""Recipes that make the models lmguide ships: ``python -m lmguide.recipes.NAME --out DIR``."""
