"""Two CPU processes under torchrun take the same training steps as one process with the same global batch."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide.recipes import distributed
from lmguide.recipes.distilled_austen import DistillConfig, make_student, train_student

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4

# The worker both sides run: a tiny seeded teacher, random token ids, the recipe's own training loop.
WORKER = textwrap.dedent(f"""
    import json, sys
    import torch
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel
    from lmguide.recipes import distributed
    from lmguide.recipes.distilled_austen import DistillConfig, train_student

    def tiny_setup():
        torch.manual_seed(0)
        teacher = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=4, n_head=2,
                                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
        ids = torch.randint(0, 64, (2000,), generator=torch.Generator().manual_seed(1))
        cfg = DistillConfig(n_layer=2, steps={STEPS}, batch_size=4, n_ctx=16, lr=1e-3, warmup=2, bf16=False,
                            save_every=10**9)
        return teacher, ids, cfg

    if __name__ == "__main__":
        torch.set_num_threads(1)
        run = distributed.init()
        teacher, ids, cfg = tiny_setup()
        losses = []
        student, _, _ = train_student(cfg, 0.5, teacher, None, ids, None, run, step_losses=losses)
        if run.is_main:
            save_file({{k: v.contiguous() for k, v in student.state_dict().items() if "lm_head" not in k}},
                      sys.argv[1] + "/weights.safetensors")
            open(sys.argv[1] + "/losses.json", "w").write(json.dumps({{"losses": losses,
                                                                       "world_size": run.world_size}}))
        distributed.close(run)
""")


def run_worker(tmp_path: Path, processes: int) -> tuple[list[float], dict]:
    from safetensors.torch import load_file

    out = tmp_path / f"n{processes}"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    if processes == 1:
        cmd = [sys.executable, str(script), str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(script), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "losses.json").read_text())
    assert report["world_size"] == processes
    return report["losses"], load_file(str(out / "weights.safetensors"))


def test_two_processes_match_one_process(tmp_path):
    one_losses, one_weights = run_worker(tmp_path, 1)
    two_losses, two_weights = run_worker(tmp_path, 2)
    assert len(one_losses) == len(two_losses) == STEPS
    setup = {}
    exec(WORKER, setup)  # the worker's tiny_setup, without running it
    teacher, _, cfg = setup["tiny_setup"]()
    start = make_student(teacher, cfg).state_dict()
    moved = max((one_weights[k] - start[k]).abs().max().item() for k in one_weights)
    assert moved > 1e-4  # the steps changed the weights, so matching them means something
    assert two_losses == pytest.approx(one_losses, rel=1e-4)
    assert one_weights.keys() == two_weights.keys()
    for name in one_weights:
        torch.testing.assert_close(two_weights[name], one_weights[name], rtol=1e-4, atol=1e-5, msg=name)


def test_single_process_run_is_rank_zero_of_one(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    run = distributed.init(device="cpu")
    assert (run.rank, run.world_size, run.is_main, run.distributed) == (0, 1, True, False)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, run) is model and distributed.unwrap(model) is model
    assert distributed.mean(torch.tensor(2.5), run) == 2.5


def test_shards_split_the_global_batch_evenly():
    batch = torch.arange(12).reshape(6, 2)
    parts = [distributed.shard(batch, distributed.Run(rank=r, world_size=3)) for r in range(3)]
    torch.testing.assert_close(torch.cat(parts), batch)
    with pytest.raises(ValueError, match="must divide evenly among 4 processes"):
        distributed.shard(batch, distributed.Run(rank=0, world_size=4))


def test_samplers_give_each_rank_its_own_share():
    data = list(range(10))
    shares = [list(distributed.sampler(data, distributed.Run(rank=r, world_size=2), seed=3)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 5
    assert sorted(shares[0] + shares[1]) == data
    assert sorted(distributed.sampler(data, distributed.Run(), seed=3)) == data


def test_recipe_loop_without_a_teacher_is_plain_training():
    torch.manual_seed(0)
    teacher = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=2, n_head=2)).eval()
    ids = torch.randint(0, 32, (500,))
    cfg = DistillConfig(n_layer=1, steps=2, batch_size=2, n_ctx=8, warmup=1, bf16=False)
    losses = []
    student, history, _ = train_student(cfg, 0.0, teacher, None, ids, None, distributed.Run(), step_losses=losses)
    assert len(losses) == 2 and history == [] and student.config.n_layer == 1


# AustenGPT's recipe, the same way: a tiny preset, 4 steps, one process against two.
AUSTEN_WORKER = textwrap.dedent("""
    import dataclasses, json, sys
    import torch
    from lmguide.data import austen
    from lmguide.recipes import austen_gpt, distributed

    if __name__ == "__main__":
        torch.set_num_threads(1)
        run = distributed.init()
        cfg = dataclasses.replace(austen_gpt.PRESETS["tiny"], steps=4, eval_every=2, batch_size=4, n_ctx=32,
                                  dropout=0.0, bf16=False, warmup=2)
        report = austen_gpt.train(cfg, __import__("pathlib").Path(sys.argv[1]), austen("train")[:20_000],
                                  austen("val")[:2_000], log=lambda m: None, run=run)
        if run.is_main:
            open(sys.argv[1] + "/report.json", "w").write(json.dumps(report))
        distributed.close(run)
""")


def run_austen_worker(tmp_path: Path, processes: int) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    out = tmp_path / f"austen{processes}"
    script = tmp_path / "austen_worker.py"
    script.write_text(AUSTEN_WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, str(script), str(out)] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        str(script), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), load_file(str(out / "model.safetensors"))


def test_austen_gpt_recipe_on_two_processes_matches_one(tmp_path):
    one, one_weights = run_austen_worker(tmp_path, 1)
    two, two_weights = run_austen_worker(tmp_path, 2)
    assert (one["processes"], two["processes"]) == (1, 2)
    # the logged loss is the whole global batch's, so it agrees, and so does the held-out score
    assert [h["train_loss"] for h in two["history"]] == pytest.approx([h["train_loss"] for h in one["history"]], abs=2e-4)
    assert [h["val_bits_per_byte"] for h in two["history"]] == pytest.approx(
        [h["val_bits_per_byte"] for h in one["history"]], abs=2e-4)
    import dataclasses

    from lmguide.recipes import austen_gpt

    cfg = austen_gpt.TrainConfig(**one["config"])
    torch.manual_seed(cfg.seed)  # the recipe's own start: seed, then the model
    start = austen_gpt.build_model(cfg, one_weights["transformer.wte.weight"].shape[0]).state_dict()
    moved = max((one_weights[k].float() - start[k]).abs().max().item() for k in one_weights if k in start)
    assert moved > 5e-3  # 4 steps moved the weights far more than the tolerance below, so agreeing means something
    assert one_weights.keys() == two_weights.keys()
    for name in one_weights:  # stored in fp16: agree to its rounding
        torch.testing.assert_close(two_weights[name].float(), one_weights[name].float(), rtol=1e-3, atol=1e-4, msg=name)
