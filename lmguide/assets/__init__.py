"""Data files shipped with lmguide (the Austen corpus); see scripts/build_corpus.py."""
