"""Recipes: how each model this project ships was made, one module per model, each run as
``python -m lmguide.recipes.NAME --out DIR`` (seeded; writes the weights, ``README.md`` (the model
card), ``training.json`` and ``zoo.json`` through ``lmguide.zoo.write_entry``).

    austen_gpt        AustenGPT-small/large: BPE tokenizer + GPT-2 trained on the Austen train split
    minilm_qa         minilm-qa: all-MiniLM-L6-v2 fine-tuned for extractive QA on the project's QA set
    quantized         the int8 variants (austen-gpt-large-int8 shipped; minilm-qa-int8 and
                      smollm2-135m-int8 made at prepare time) and their precision tables
    lora_support      PARENT-support: a LoRA adapter for a zoo LM on the Kettlewise support texts
                      (austen-gpt-small-support is shipped, in lmguide/weights/)
    lora_sweep        full fine-tuning vs LoRA over learning rates, steps and 3 seeds (notebook 04's frontier),
                      into lmguide/assets/finetune/lora_sweep.json
    support_chat      smollm2-135m-support-chat: SmolLM2-135M-Instruct instruction-tuned with LoRA on the support
                      chats, loss on the assistant's tokens (and the unmasked run it is compared with)
    distilled_austen  austen-gpt-distilled: a 3-layer KD student of austen-gpt-large, and its no-KD control;
                      ``--seeds`` repeats both and an equal-compute control per seed, into seeds.json
    ladder            the size ladder's cards (decode, scoring, serving) and the answers notebooks 00, 07 and 08
                      read (first chat, router, code tasks, entity questions), each naming its machine
    together          notebook 09's stored runs: speculative-decoding sweeps, grounded answers, the local judge

Plumbing shared by the recipes: ``distributed`` runs a recipe as one process or under
``torchrun --nproc_per_node N`` (DDP; gloo on CPU, nccl on GPUs; rank 0 logs and saves).

The lessons these recipes use (BPE training, bits per byte, QA feature labelling and decoding)
live in the flat topic modules (``lmguide.tokenization``, ``lmguide.eval``, ``lmguide.qa``); a recipe
holds only the training run and its bookkeeping.
"""
