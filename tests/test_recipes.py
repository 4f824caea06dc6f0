"""The recipes that make the shipped models: AustenGPT training and minilm-qa fine-tuning."""
import json
import math

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

from lmguide import qa, qa_data, zoo
from lmguide.recipes import austen_gpt, minilm_qa


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(zoo.path("minilm-l6"))


def small_dataset():
    return qa_data.build_squad([
        {"id": "p1", "source": "test", "context": "Emma lived at Hartfield with her father.",
         "qas": [{"question": "Where did Emma live?", "answer": "Hartfield"},
                 {"question": "Who lived with Emma?", "answer": "her father"}]},
    ])


def test_a_few_training_steps_lower_the_loss_on_a_tiny_model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=37, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = BertForQuestionAnswering(config)
    features = qa.prepare_train_features(small_dataset(), tokenizer, max_length=32, stride=8)
    history = minilm_qa.fine_tune(model, features, epochs=15, batch_size=2, lr=3e-3, progress=False)
    assert len(history) == 15 and all(math.isfinite(x) for x in history)
    assert history[-1] < history[0]
    assert not model.training

    seen = []  # after_epoch runs once per epoch, in eval mode, with that epoch's mean loss
    again = minilm_qa.fine_tune(model, features, epochs=3, batch_size=2, lr=1e-3, progress=False,
                                after_epoch=lambda epoch, loss: seen.append((epoch, loss, model.training)))
    assert seen == [(i + 1, again[i], False) for i in range(3)] and not model.training


def test_epoch_table_lists_every_scored_epoch():
    curve = [{"epoch": 1, "loss": 3.5, "dev_exact_match": 40.0, "dev_f1": 55.25},
             {"epoch": 2, "loss": 1.25, "dev_exact_match": 50.5, "dev_f1": 66.0}]
    table = minilm_qa.epoch_table(curve)
    assert "| 1 | 3.500 | 40.0 | 55.2 |" in table and "| 2 | 1.250 | 50.5 | 66.0 |" in table
    assert minilm_qa.epoch_table([]) == ""


def test_minilm_qa_card_names_the_shipped_data():
    # the card's scores and training time belong to the data it names; data edited without
    # retraining (python -m lmguide.recipes.minilm_qa) would leave them describing another set
    info = json.loads((zoo.WEIGHTS / "minilm-qa" / "training.json").read_text(encoding="utf-8"))
    for split in ("train", "dev"):
        assert info[f"{split}_sha256"] == zoo.sha256(qa_data.DATA_DIR / f"{split}.json"), split
    assert info["train_questions"] == sum(1 for _ in qa_data.iter_questions(qa_data.load_split("train")))



# --- AustenGPT ----------------------------------------------------------------------------------------
def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    cfg = austen_gpt.TrainConfig(steps=1000, warmup=100, lr=2e-3, min_lr=1e-4)
    assert austen_gpt.lr_at(0, cfg) == pytest.approx(2e-3 / 100)
    assert austen_gpt.lr_at(49, cfg) == pytest.approx(2e-3 * 50 / 100)
    assert austen_gpt.lr_at(100, cfg) == pytest.approx(2e-3)                   # peak after warm-up
    assert austen_gpt.lr_at(550, cfg) == pytest.approx((2e-3 + 1e-4) / 2)       # half way down the cosine
    assert austen_gpt.lr_at(1000, cfg) == pytest.approx(1e-4)
    assert austen_gpt.lr_at(5000, cfg) == pytest.approx(1e-4)                  # stays at the floor
    rates = [austen_gpt.lr_at(s, cfg) for s in range(100, 1001)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))                       # never rises after the peak


def test_a_tiny_austen_gpt_run_lowers_the_loss_and_saves_what_it_reports(tmp_path):
    import dataclasses

    from lmguide import data, eval as lm_eval

    text, val = data.austen("train")[:30_000], data.austen("val")[:4_000]
    cfg = dataclasses.replace(austen_gpt.PRESETS["tiny"], steps=40, eval_every=20, bf16=False)
    lines = []
    report = austen_gpt.train(cfg, tmp_path, text, val, log=lines.append)
    assert [h["step"] for h in report["history"]] == [20, 40]
    first, last = report["history"][0], report["history"][-1]
    assert last["val_bits_per_byte"] < first["val_bits_per_byte"]
    assert report["val_rule"] == "lmguide.eval.bits_per_byte"
    model, tok = zoo.load(tmp_path, kind="causal-lm")
    assert sum(p.numel() for p in model.parameters()) == report["parameters"]
    # the kept weights score what the report says, by the one definition (fp16 file: to 3 places)
    assert lm_eval.bits_per_byte(model, tok, val) == pytest.approx(report["best_val_bits_per_byte"], abs=2e-3)


# --- minilm-qa, end to end on a few questions -----------------------------------------------------------
def test_minilm_qa_recipe_end_to_end_writes_weights_card_and_zoo_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ENTRIES", dict(zoo.ENTRIES))
    out = tmp_path / "qa-check"
    info = minilm_qa.main(["--out", str(out), "--limit", "6", "--dev-limit", "4", "--epochs", "1",
                           "--no-score-epochs", "--batch-size", "4"])
    assert info["train_questions"] == 6 and info["dev"]["count"] == 4
    entry = zoo.ENTRIES["qa-check"]
    assert entry.kind == "question-answering" and entry.parent == "minilm-l6"
    assert not zoo.verify(out, entry.files) and "model.safetensors" in entry.files
    card = (out / "README.md").read_text()
    assert f"F1 {info['dev']['f1']:.1f}" in card and "python -m lmguide.recipes.minilm_qa" in card
    model, tokenizer = zoo.load(out)
    answer = qa.answer_question("Where did Emma live?", "Emma lived at Hartfield with her father.", model, tokenizer,
                                null_margin=math.inf)
    assert answer["answer"] and answer["answer"] in "Emma lived at Hartfield with her father."


def test_ladder_card_section_reads_every_stored_part():
    """The ladder's card section is written from training.json: each stored part shows up, a missing one is left out."""
    import json

    from lmguide import zoo
    from lmguide.recipes import ladder

    info = json.loads((zoo.WEIGHTS / "qwen2.5-coder-1.5b" / "training.json").read_text())
    text = ladder.card_section(info)
    assert f"{info['test split']['bits per byte']:.4f}" in text and f"{info['decode']['tokens/s']:.1f} tokens/s" in text
    assert f"{info['test split part']['bits per byte']:.4f}" in text
    summary = info["serving"]["summary"]
    assert f"{summary['p50 s']:.2f} s / {summary['p95 s']:.2f} s" in text and summary["p50 s"] <= summary["p95 s"]
    bare = {k: v for k, v in info.items() if k not in ("serving", "test split part")}
    assert "p50" not in ladder.card_section(bare) and "quick table" not in ladder.card_section(bare)


def test_ladder_store_answers_names_machine_command_and_every_model(tmp_path, monkeypatch):
    import json

    from lmguide.recipes import ladder

    monkeypatch.setattr(ladder.workers, "run_or_raise", lambda what, fn, name: {"asked": name, "by": fn.__name__})
    file = tmp_path / "answers.json"
    stored = ladder.store_answers(file, "--code", "code tasks with", "code_answers", ("a", "b"), {"sandbox": ["x"]})
    assert json.loads(file.read_text()) == stored
    assert stored["command"] == "python -m lmguide.recipes.ladder --code" and stored["sandbox"] == ["x"]
    assert stored["models"] == {n: {"asked": n, "by": "code_answers"} for n in ("a", "b")} and stored["machine"]["cpu"]


def test_ladder_extras_are_the_stored_answers_the_notebooks_read(tmp_path, monkeypatch):
    """``lmguide bench --extras`` and the recipe's flags store the same three files, each naming its command."""
    from lmguide import code_tasks, router
    from lmguide.recipes import ladder

    extras = ladder.extras()
    assert set(extras) == {"--code", "--entities", "--router"}
    assert extras["--router"][0] == router.ANSWERS_FILE and extras["--code"][0] == code_tasks.ANSWERS_FILE
    assert extras["--router"][3] == ("reader", *router.GENERATORS)
    for flag, (file, doing, function, models, extra) in extras.items():
        assert callable(getattr(ladder, function)) and file.parent.is_dir()
    calls = []
    monkeypatch.setattr(ladder, "store_answers", lambda *a: calls.append(a) or {"models": {}})
    ladder.store_extra("--entities", "lmguide bench --extras")
    assert calls[0][0] == ladder.ENTITY_FILE and calls[0][-1] == "lmguide bench --extras"


def test_together_recipe_requests_and_a_missing_result_says_which_command(tmp_path, monkeypatch):
    from lmguide.recipes import together

    assert set(together.requests(chat=True)) == {"prose", "code"} and set(together.requests(chat=False)) == {"prose"}
    assert [p[2] for p in together.PAIRS] == ["austen-gpt-large", "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b"]
    monkeypatch.setattr(together, "JUDGE_FILE", tmp_path / "judge.json")
    with pytest.raises(FileNotFoundError, match="python -m lmguide.recipes.together --judge"):
        together.load("judge")
