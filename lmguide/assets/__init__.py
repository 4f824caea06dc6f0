"""Data files lmguide reads at run time, shipped inside the package (each folder has a data card).

``austen.json.gz`` (the corpus, rebuilt by scripts/build_corpus.py), ``qa/`` (the QA set),
``support/`` (the Kettlewise support texts), ``router/`` (the router's question set) and
``probes/`` (probing data).
"""
