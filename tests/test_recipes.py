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


# --- notebook 04's sweep and SFT recipes, notebook 06's seeds ----------------------------------------
def test_lora_sweep_scores_each_checkpoint_and_an_interrupted_sweep_continues(tmp_path, monkeypatch):
    from lmguide.recipes import lora_sweep

    monkeypatch.setattr(lora_sweep, "AUSTEN_CHARS", 2_000)
    out = tmp_path / "sweep.json"
    first = lora_sweep.main(["--out", str(out), "--rates", "0.002", "--seeds", "0", "--checkpoints", "1,2"])
    assert first["complete"] and [(p["method"], p["step"]) for p in first["points"]] == [
        ("full", 1), ("full", 2), ("LoRA", 1), ("LoRA", 2)]
    for p in first["points"]:
        assert p["learnt"] == pytest.approx(first["before"]["support"] - p["support"], abs=1e-4)
        assert p["forgot"] == pytest.approx(p["austen"] - first["before"]["austen"], abs=1e-4)
    full_2 = first["points"][1]
    assert full_2["learnt"] > 0        # two full steps at 2e-3 already learn the support text

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(lora_sweep, "one_run", no_training)
    again = lora_sweep.main(["--out", str(out), "--rates", "0.002", "--seeds", "0", "--checkpoints", "1,2"])
    assert again["points"] == first["points"] and json.loads(out.read_text())["command"].endswith("1,2")


def test_distillation_seeds_copy_the_shipped_runs_and_give_the_control_kds_compute(tmp_path, monkeypatch):
    import dataclasses

    from lmguide.recipes import distilled_austen as recipe

    cfg = recipe.DistillConfig(steps=10)
    (tmp_path / "training.json").write_text(json.dumps({
        "config": dataclasses.asdict(cfg), "teacher_test_bits_per_byte": 1.3,
        "runs": {name: {"val_bits_per_byte": v, "test_bits_per_byte": v, "wall_minutes": 1.0}
                 for name, v in (("kd", 1.40), ("control", 1.45))}}))
    trained = []

    def fake_train(this, alpha, teacher, tokenizer, ids, val_text, run, bar=True):
        trained.append((this.seed, alpha, this.steps))
        return recipe.make_student(teacher, this), [], 6.0

    monkeypatch.setattr(recipe, "train_student", fake_train)
    monkeypatch.setattr(recipe, "bits_per_byte", lambda model, tok, text: 1.5)
    report = recipe.run_seeds(cfg, tmp_path, [0, 1], list(recipe.SEED_RUNS))
    teacher, _ = recipe.load_teacher(cfg.teacher)
    long = recipe.compute_matched_steps(cfg, teacher)
    assert 10 < long < 20 and report["control-compute steps"] == long
    assert sorted(report["runs"]) == ["0/control", "0/control-compute", "0/kd", "1/control", "1/control-compute", "1/kd"]
    assert report["runs"]["0/kd"]["test_bits_per_byte"] == 1.40 and "training.json" in report["runs"]["0/kd"]["source"]
    # seed 0's kd and control came from the card; everything else was trained, the long control for longer
    assert trained == [(0, 0.0, long), (1, cfg.alpha, 10), (1, 0.0, 10), (1, 0.0, long)]
    assert not (tmp_path / ".seeds.lock").exists()


def test_support_chat_card_shows_every_run_and_the_shipped_answers(tmp_path):
    from lmguide.recipes import support_chat

    def run(nll, fmt, right, **extra):
        answers = [{"id": f"q{i}", "answer": f"answer {i}", "tokens": 3, "stopped": True, "format": True,
                    "correct": i < 2} for i in range(4)]
        return {"held-out assistant nats/token": nll, "format followed": fmt, "correct": right, "answers": answers, **extra}

    trained = dict(examples=31, tokens=3500, steps=32, **{"trained tokens": 1700, "train seconds": 60.0,
                                                           "loss history": {2: 3.0, 32: 1.0}})
    report = {"command": "python -m lmguide.recipes.support_chat --out X", "name": support_chat.NAME,
              "parent": support_chat.PARENT, "targets": support_chat.TARGETS, "rank": 8, "alpha": 16, "epochs": 4,
              "batch": 4, "learning rate": 1e-3, "seed": 0, "system prompt": "S", "held-out conversations": 9,
              "questions": 4, "max new tokens": 64, "parameters": {"trainable": 10, "total": 100},
              "machine": {"cpu": "x86_64", "threads": 2, "torch": "t", "transformers": "t"},
              "before": run(2.5, 0.5, 0.25), "after: loss on assistant tokens only": run(1.5, 1.0, 0.5, **trained),
              "after: loss on every token": run(1.7, 0.75, 0.5, **trained)}
    support_chat.write_card(tmp_path, report)
    card = (tmp_path / "README.md").read_text()
    assert "| before (SmolLM2-135M-Instruct) | - | 2.500 | 50% | 25% |" in card
    assert "| after: loss on assistant tokens only | 1700 | 1.500 | 100% | 50% |" in card
    assert "after: loss on every token" in card and "'answer 0'" in card
