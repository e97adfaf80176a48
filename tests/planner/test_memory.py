import json
from pathlib import Path

import pytest

from planner import PlannerError, gpu_preset, model_spec, plan
from planner.gpus import GpuSpec
from planner.memory import CALIBRATION, kv_bytes_per_token, weights_bytes

DATA = Path(__file__).resolve().parents[1] / "data"
MEASURED = json.loads((DATA / "vllm_kv_measurements.json").read_text())["rows"]
H100 = gpu_preset("h100-sxm")


def _plan(row, gpu=H100):
    return plan(model_spec(row["model"]), gpu, quantization=row["quantization"], kv_cache_dtype=row["kv_cache_dtype"],
                dtype=row["dtype"], gpu_memory_utilization=row["gpu_memory_utilization"],
                max_model_len=row["max_model_len"])


@pytest.mark.parametrize("row", MEASURED, ids=lambda r: f"{r['model']}-{r['quantization']}-{r['kv_cache_dtype']}-"
                                                        f"{r['dtype']}-u{r['gpu_memory_utilization']}-l{r['max_model_len']}")
def test_kv_tokens_within_1_5_percent_of_what_vllm_measured_on_the_h100(row):
    predicted = _plan(row).kv_tokens
    assert abs(predicted - row["measured_kv_tokens"]) / row["measured_kv_tokens"] <= 0.015


@pytest.mark.parametrize("row", [r for r in MEASURED if r["vllm_weights_gib"]], ids=lambda r: f"{r['model']}-{r['quantization']}")
def test_weights_match_vllms_model_loading_line(row):
    assert _plan(row).weights_bytes / 2**30 == pytest.approx(row["vllm_weights_gib"], abs=0.03)


def test_the_issue_accuracy_table():
    llama2, llama3 = model_spec("llama-2-7b"), model_spec("llama-3-8b")
    fp16 = plan(llama2, H100, quantization=None, kv_cache_dtype="auto", dtype="float16", gpu_memory_utilization=0.9,
                max_model_len=2048, tensor_parallel_size=1)
    fp8 = plan(llama2, H100, quantization="fp8", dtype="float16", gpu_memory_utilization=0.9, max_model_len=2048)
    l3 = plan(llama3, H100, dtype="float16", gpu_memory_utilization=0.9, max_model_len=4096)
    for p, weights_gib, tokens in [(fp16, 12.55, 116_768), (fp8, 6.74, 128_752), (l3, 14.96, 444_896)]:
        assert round(p.weights_bytes / 2**30, 2) == weights_gib
        assert abs(p.kv_tokens - tokens) / tokens < 0.015
        assert p.fits and p.kv_tokens % 16 == 0


def test_weight_formula_counts_the_tensors_vllm_holds():
    """benchmarks/inspect_weights.py counted every parameter and buffer in the loaded model."""
    for line in (DATA / "weight_census.jsonl").read_text().splitlines():
        census = json.loads(line)
        spec = model_spec(Path(census["model"]).name)
        counted = weights_bytes(spec, dtype_bytes=2, quantization=census["quantization"])
        counted -= CALIBRATION.weight_excess_bytes(spec.name, census["quantization"])
        assert counted == pytest.approx(census["module_bytes"], rel=0.001)


def test_kv_bytes_per_token_follow_layers_kv_heads_head_dim_and_dtype():
    assert kv_bytes_per_token(model_spec("llama-2-7b"), kv_bytes=2) == 2 * 32 * 32 * 128 * 2
    assert kv_bytes_per_token(model_spec("llama-3-8b"), kv_bytes=1) == 2 * 32 * 8 * 128
    assert kv_bytes_per_token(model_spec("llama-3-8b"), kv_bytes=2, tp=2) == 2 * 32 * 4 * 128 * 2


def test_fp8_kv_cache_doubles_the_tokens_in_the_same_memory():
    base = plan(model_spec("llama-3-8b"), H100, quantization="fp8", dtype="bfloat16", max_model_len=4096)
    kv8 = plan(model_spec("llama-3-8b"), H100, quantization="fp8", kv_cache_dtype="fp8", dtype="bfloat16", max_model_len=4096)
    assert kv8.kv_tokens == pytest.approx(2 * base.kv_tokens, rel=0.001)


def test_fp8_kv_with_float16_on_hopper_warns_to_use_bfloat16():
    p = plan(model_spec("llama-2-7b"), H100, kv_cache_dtype="fp8", dtype="float16", max_model_len=2048)
    assert any("bfloat16" in w for w in p.warnings)


def test_a_model_too_big_for_the_gpu_says_why_and_what_fits_instead():
    spec = model_spec("llama-3.1-70b")
    p = plan(spec, H100, max_model_len=8192)
    assert not p.fits and "weights alone" in p.reason
    assert p.advice
    assert any(a.startswith("tensor_parallel_size=2") for a in p.advice)
    assert plan(spec, H100, max_model_len=8192, tensor_parallel_size=2).fits


def test_too_little_free_memory_is_refused_like_vllm_does_with_a_lower_util_advised():
    busy = GpuSpec(**{**H100.__dict__, "free_bytes": 30 * 2**30})
    p = plan(model_spec("llama-2-7b"), busy, gpu_memory_utilization=0.9, max_model_len=2048)
    assert not p.fits and "refuses to start" in p.reason
    assert p.advice[0].startswith("gpu_memory_utilization=0.36")


def test_context_longer_than_the_kv_cache_does_not_fit():
    p = plan(model_spec("llama-3.1-8b"), gpu_preset("rtx-4090"), quantization="fp8", max_model_len=131072)
    assert not p.fits and "fewer than one request" in p.reason
    assert any(a.startswith("max_model_len=") for a in p.advice)


@pytest.mark.parametrize("kwargs, argument", [
    ({"gpu_memory_utilization": 0}, "gpu_memory_utilization"),
    ({"gpu_memory_utilization": 1.2}, "gpu_memory_utilization"),
    ({"max_model_len": 0}, "max_model_len"),
    ({"max_model_len": 10**6}, "max_model_len"),
    ({"tensor_parallel_size": 3}, "tensor_parallel_size"),
    ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
    ({"quantization": "awq"}, "quantization"),
    ({"kv_cache_dtype": "int4"}, "kv_cache_dtype"),
    ({"dtype": "fp8"}, "dtype"),
    ({"max_num_seqs": -1}, "max_num_seqs"),
])
def test_bad_arguments_name_themselves_and_the_allowed_range(kwargs, argument):
    with pytest.raises(PlannerError) as e:
        plan(model_spec("llama-3-8b"), H100, **kwargs)
    assert e.value.argument == argument


def test_dtype_fp8_explains_the_real_vllm_options():
    with pytest.raises(PlannerError, match="quantization='fp8'.*kv_cache_dtype='fp8'"):
        plan(model_spec("llama-3-8b"), H100, dtype="fp8")


def test_tensor_parallelism_splits_weights_and_kv_heads():
    one = plan(model_spec("llama-3.1-70b"), H100, quantization="fp8", max_model_len=8192)
    two = plan(model_spec("llama-3.1-70b"), H100, quantization="fp8", max_model_len=8192, tensor_parallel_size=2)
    assert two.weights_bytes < 0.55 * one.weights_bytes
    assert two.kv_bytes_per_token == one.kv_bytes_per_token // 2
