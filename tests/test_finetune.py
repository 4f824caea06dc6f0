import math
import warnings

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import lmguide
from lmguide import data, finetune


def byte_tokenizer(pad=False):
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<eos>": 0, **{ch: i + 1 for i, ch in enumerate(sorted(alphabet))}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", **({"pad_token": "<eos>"} if pad else {}))


def tiny_gpt2(vocab=300):
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=32, n_embd=16, n_layer=2, n_head=2))


def tiny_llama():
    return LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32))


def test_ensure_pad_token_uses_eos():
    tok = byte_tokenizer()
    assert tok.pad_token is None
    assert finetune.ensure_pad_token(tok).pad_token == "<eos>"


def test_dataset_concatenates_with_eos_and_cuts_blocks():
    tok = byte_tokenizer()
    ds = finetune.CausalLMDataset(tok, ["abcde", "fgh"], block_size=4)  # 5+1 + 3+1 = 10 ids -> 2 blocks
    assert len(ds) == 2 and ds.tokens == 8
    stream = ds[0]["input_ids"] + ds[1]["input_ids"]
    assert stream[5] == tok.eos_token_id                     # EOS after the first text
    assert tok.decode(stream[:5]) == "abcde" and tok.decode(stream[6:8]) == "fg"
    with pytest.raises(ValueError, match="fewer than one block"):
        finetune.CausalLMDataset(tok, "ab", block_size=16)


def test_collator_builds_labels_and_masks_the_pad_token():
    tok = byte_tokenizer(pad=True)
    batch = finetune.collator(tok)([{"input_ids": [5, 6, 7]}, {"input_ids": [8, 9]}])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 3)
    assert batch["labels"].tolist() == [[5, 6, 7], [8, 9, -100]]


def test_training_arguments_are_cpu_and_quiet(tmp_path):
    args = finetune.training_arguments(tmp_path, max_steps=3)
    assert args.use_cpu and args.report_to == [] and args.save_strategy == "no" and args.max_steps == 3


def test_a_short_trainer_run_logs_train_and_eval_loss_without_peft_warnings(tmp_path):
    tok = byte_tokenizer(pad=True)
    text = "The kettle boils water. " * 40
    train = finetune.CausalLMDataset(tok, text, 16)
    held = finetune.CausalLMDataset(tok, text[:200], 16)
    model = finetune.add_peft_lora(tiny_gpt2(), ["c_attn"], expect=2)
    args = finetune.training_arguments(tmp_path, max_steps=4, per_device_train_batch_size=4, learning_rate=5e-2,
                                       eval_strategy="steps", eval_steps=2, logging_steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = finetune.make_trainer(model, args, train, held, tok)
        finetune.train(trainer)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    history = finetune.loss_history(trainer)
    assert list(history.index) == [2, 4]
    assert history["train loss"].notna().all() and history["eval loss"].notna().all()
    assert history["train loss"].iloc[-1] < history["train loss"].iloc[0]


def test_add_lora_counts_and_refuses_names_that_match_nothing():
    model = finetune.add_peft_lora(tiny_gpt2(), ["c_attn", "c_proj"], r=2, expect=6)
    # per block: c_attn 16 -> 48, attn.c_proj 16 -> 16, mlp.c_proj 64 -> 16; r = 2
    assert finetune.count_parameters(model)["trainable"] == 2 * 2 * (64 + 32 + 80)
    assert model.peft_config["default"].fan_in_fan_out  # Conv1D: weight stored (in, out)
    with pytest.raises(ValueError, match="q_proj"):
        finetune.add_peft_lora(tiny_gpt2(), ["c_attn", "q_proj"])
    with pytest.raises(ValueError, match="not the 5 expected"):
        finetune.add_peft_lora(tiny_gpt2(), ["c_attn", "c_proj"], expect=5)
    llama = finetune.add_peft_lora(tiny_llama(), ["q_proj", "v_proj"], expect=4)
    assert not llama.peft_config["default"].fan_in_fan_out


def test_memory_account_counts_gradients_and_adamw_state():
    batch = torch.randint(0, 300, (2, 8))
    full = finetune.memory_account(tiny_gpt2(), batch)
    lora = finetune.memory_account(finetune.add_peft_lora(tiny_gpt2(), ["c_attn"]), batch)
    n = sum(p.numel() for p in tiny_gpt2().parameters())
    assert full["trainable"] == n and full["grads MiB"] == pytest.approx(n * 4 / 2**20)
    assert full["AdamW state MiB"] == pytest.approx(2 * full["grads MiB"])
    assert full["activations MiB"] > 0 and lora["activations MiB"] > 0
    assert lora["grads MiB"] < full["grads MiB"] / 10
    assert full["total MiB"] == pytest.approx(full["weights MiB"] + 3 * full["grads MiB"] + full["activations MiB"])


def test_compare_step_costs_has_a_row_per_setup_and_trains():
    batch = torch.randint(0, 300, (2, 8))
    model = tiny_gpt2()
    before = model.transformer.wte.weight.detach().clone()
    table = finetune.compare_step_costs({"full": (model, batch), "lora": (finetune.add_peft_lora(tiny_gpt2(), ["c_attn"]), batch)},
                                        repeats=2, warmup=0)
    assert list(table.index) == ["full", "lora"]
    assert (table["s/step"] > 0).all() and table.loc["lora", "trainable"] < table.loc["full", "trainable"]
    assert not torch.equal(before, model.transformer.wte.weight)  # the steps really updated the weights


def test_measure_in_subprocess_reports_peak_rss():
    result = finetune.measure_in_subprocess("austen-gpt-small", "lora", 1, 8, repeats=1)
    assert result["trainable"] == 56_320 and result["model"] == "austen-gpt-small"
    assert result["peak RSS MiB"] > result["total MiB"] > 0 and result["training RAM MiB"] > 0
    with pytest.raises(ValueError, match="mode must be 'full' or 'lora'"):
        finetune.measure_in_subprocess("austen-gpt-small", "half", 1, 8)
    with pytest.raises(RuntimeError, match="measuring no-such-model full failed: .*no-such-model"):
        finetune.measure_in_subprocess("no-such-model", "full", 1, 8, repeats=1)


def test_support_data_splits_are_whole_disjoint_documents():
    train, test = data.support_documents("train"), data.support_documents("test")
    assert {d["id"] for d in train}.isdisjoint({d["id"] for d in test})
    assert len(train) + len(test) == len(data.support_documents("all"))
    assert all(d["text"] and d["kind"] in ("faq", "article", "chat") for d in train + test)
    assert len(data.support("train").split()) > 2000 and len(data.support("test").split()) > 400
    assert all("=== " not in d["text"] for d in train + test)  # no header swallowed into a body
    with pytest.raises(ValueError, match="split must be one of"):
        data.support_documents("val")


def test_held_out_texts():
    texts = finetune.held_out_texts()
    assert len(texts["austen"]) == finetune.AUSTEN_PROBE_CHARS
    assert texts["austen"] == data.austen("test")[:finetune.AUSTEN_PROBE_CHARS]
    assert texts["support"] == data.support("test")
    assert finetune.support_texts("test")[0].startswith(data.support_documents("test")[0]["title"])


def test_a_gpt2_style_tokenizer_cannot_pad_until_it_has_a_pad_token():
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(lmguide.zoo.path("austen-gpt-small"), pad_token=None)
    with pytest.raises(ValueError, match="padding token"):
        raw(["a", "b c d"], padding=True)
    assert finetune.ensure_pad_token(raw).pad_token == raw.eos_token
    assert raw(["a", "b c d"], padding=True)["input_ids"][0][-1] == raw.eos_token_id


def test_least_forgetting_is_the_best_trade_at_or_beyond_a_level():
    points = [{"learnt": 0.2, "forgot": 0.01}, {"learnt": 0.5, "forgot": 0.08}, {"learnt": 0.6, "forgot": 0.05},
              {"learnt": 1.0, "forgot": 0.30}]
    assert finetune.least_forgetting(points, 0.1) == 0.01
    assert finetune.least_forgetting(points, 0.5) == 0.05      # the 0.6 point learnt more and forgot less
    assert finetune.least_forgetting(points, 0.9) == 0.30
    assert math.isnan(finetune.least_forgetting(points, 1.5))  # nobody got that far
