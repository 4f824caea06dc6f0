"""Bandwidth, weight bytes, the decode bound, hardware classes and thread scaling (lmguide.hardware)."""
import pytest
import torch

from lmguide import hardware

torch.set_num_threads(1)


def test_decode_bound_is_bandwidth_over_bytes():
    assert hardware.decode_bound(500_000_000, 50.0) == pytest.approx(100.0)  # 50 GB/s / 0.5 GB per token
    with pytest.raises(ValueError, match="must be > 0"):
        hardware.decode_bound(0, 50.0)


def test_memory_bandwidth_measures_a_copy():
    r = hardware.memory_bandwidth(mib=64, repeats=2)
    assert r["GB/s"] > 0 and len(r["runs s"]) == 2
    with pytest.raises(ValueError, match="CPU caches"):
        hardware.memory_bandwidth(mib=8)


def test_weight_bytes_counts_tied_weights_once(model):
    unique = {p.data_ptr(): p for p in model.parameters()}
    assert hardware.weight_bytes(model) == 4 * sum(p.numel() for p in unique.values()) + sum(
        b.numel() * b.element_size() for b in model.buffers() if b.is_floating_point())
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # GPT-2 ties them


def test_weight_bytes_sees_torch_int8_linear_layers():
    import warnings

    lin = torch.nn.Sequential(torch.nn.Linear(64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(lin, {torch.nn.Linear}, dtype=torch.qint8)
    assert 64 * 64 <= hardware.weight_bytes(q) < hardware.weight_bytes(lin) / 3


def test_hardware_class_takes_the_smallest_budget_that_holds_the_model():
    assert hardware.hardware_class(10) == hardware.HARDWARE_CLASSES[0][0]
    assert hardware.hardware_class(64.5) == hardware.HARDWARE_CLASSES[1][0]
    assert hardware.hardware_class(1e9) == hardware.HARDWARE_CLASSES[-1][0]
    assert "MiB" in hardware.hardware_rule()


def test_thread_scaling_restores_the_thread_count(model):
    before = torch.get_num_threads()
    rows = hardware.thread_scaling(model, torch.tensor([[1, 2, 3]]), threads=[1, 2], new_tokens=16, repeats=3)  # enough to stay positive under load
    assert [r["threads"] for r in rows] == [1, 2] and all(r["tokens/s"] > 0 for r in rows)
    assert torch.get_num_threads() == before


def test_machine_records_versions():
    m = hardware.machine()
    assert m["torch"] == torch.__version__ and m["cores"] >= 1 and m["cpu"]


def test_model_arithmetic_counts_bytes_from_the_shape():
    # Llama-2-7B keeps a key and a value of 32 heads x 128 per layer: 2 * 32 * 32 * 128 * 2 bytes = 0.5 MiB a token
    assert hardware.kv_cache_bytes_per_token(32, 32, 128) == 2**19
    # grouped-query attention with 8 key/value heads keeps a quarter as much per layer
    assert hardware.kv_cache_bytes_per_token(80, 8, 128) == 80 * 8 * 128 * 4
    row = hardware.model_arithmetic(7e9, 32, 32, 128, gb_per_s=14.0, context=4096)
    assert row["weights 16-bit GB"] == pytest.approx(14.0) and row["weights 4-bit GB"] == pytest.approx(3.5)
    assert row["decode bound 16-bit tokens/s"] == pytest.approx(1.0) and row["decode bound 4-bit tokens/s"] == pytest.approx(4.0)
    assert row["KV cache at 4,096 tokens GB"] == pytest.approx(2**19 * 4096 / 1e9)
    assert row["AdamW training GB"] == pytest.approx(112.0)
    table = hardware.large_model_table(20.0)
    assert list(table.index) == list(hardware.LARGE_MODELS) and table["weights 16-bit GB"].is_monotonic_increasing


def test_copy_speed_and_bandwidth_by_size():
    rows = hardware.bandwidth_by_size((4, 0.5), repeats=2)
    assert [r["MiB"] for r in rows] == [0.5, 4] and all(r["GB/s"] > 0 for r in rows)


def test_cache_sizes_reads_levels_as_bytes():
    sizes = hardware.cache_sizes()
    assert all(isinstance(v, int) and v >= 1024 for v in sizes.values())
    assert not any(k.endswith("i") for k in sizes)  # instruction caches left out


def test_layer_count_from_config_parent_and_gguf():
    assert hardware.layer_count("smollm2-135m") == 30
    assert hardware.layer_count("austen-gpt-small-support") == hardware.layer_count("austen-gpt-small")


def test_fit_step_model_recovers_known_terms():
    layers, nbytes = [4, 8, 30, 24], [8e6, 30e6, 540e6, 400e6]
    truth = [0.4 + 0.1 * n + b / 20e9 * 1000 for n, b in zip(layers, nbytes)]  # 20 GB/s
    f = hardware.fit_step_model(truth, layers, nbytes, 20.0)
    assert f["fixed ms"] == pytest.approx(0.4) and f["per layer ms"] == pytest.approx(0.1)
    assert max(abs(e) for e in f["error %"]) < 1e-6
    free = hardware.fit_step_model(truth, layers, nbytes)
    assert free["bandwidth fitted"] and free["bandwidth GB/s"] == pytest.approx(20.0)
    # a step faster than its bytes allow cannot get a negative fixed cost: the terms stay >= 0
    low = hardware.fit_step_model([0.1, 0.2, 0.3], [4, 8, 12], [1e8, 2e8, 3e8], 20.0)
    assert low["fixed ms"] >= 0 and low["per layer ms"] >= 0 and all(e > 0 for e in low["error %"])
    with pytest.raises(ValueError, match="at least 3 models"):
        hardware.fit_step_model([1, 2], [1, 2], [1, 2])


def test_bytes_by_dtype_splits_weight_bytes(model):
    import copy

    from lmguide.quantize import dynamic_int8

    assert hardware.bytes_by_dtype(model) == {"float32": hardware.weight_bytes(model)}
    q = dynamic_int8(copy.deepcopy(model))
    split = hardware.bytes_by_dtype(q)
    assert sum(split.values()) == hardware.weight_bytes(q) and split.get("int8", 0) > 0


def test_fine_tuning_memory_full_and_lora():
    full = hardware.fine_tuning_memory(1e9, 1e9)  # fp32 weights, all trainable: 16 bytes a parameter
    assert full["total GB"] == pytest.approx(hardware.ADAMW_BYTES_PER_PARAMETER)
    lora = hardware.fine_tuning_memory(1e9, 1e7, weight_bytes=2)  # a frozen bf16 base + 10 M trainable
    assert lora["weights GB"] == pytest.approx(2) and lora["gradients + AdamW GB"] == pytest.approx(0.16)
    # LoRA r=8 on a 1536 x 1536 and a 1536 x 256 matrix, 2 layers: 8 x (3072 + 1792) x 2
    assert hardware.lora_parameters(2, [(1536, 1536), (1536, 256)], rank=8) == 8 * (3072 + 1792) * 2
    with pytest.raises(ValueError, match="trainable"):
        hardware.fine_tuning_memory(1e6, 2e6)
