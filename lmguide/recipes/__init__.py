"""Recipes: how each model this project ships was made, one module per model, each run as
``python -m lmguide.recipes.NAME --out DIR`` (seeded; writes the weights, ``README.md`` (the model
card), ``training.json`` and ``zoo.json`` through ``lmguide.zoo.write_entry``).

    austen_gpt        AustenGPT-small/large: BPE tokenizer + GPT-2 trained on the Austen train split
    minilm_qa         minilm-qa: all-MiniLM-L6-v2 fine-tuned for extractive QA on the project's QA set

The lessons these recipes use (BPE training, bits per byte, QA feature labelling and decoding)
live in the flat topic modules (``lmguide.tokenizers``, ``lmguide.eval``, ``lmguide.qa``); a recipe
holds only the training run and its bookkeeping.
"""
