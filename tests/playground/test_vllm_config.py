"""The vLLM adapter's argument checks and advice run without vLLM (it is imported only to start an engine)."""

import pytest

from planner.nvml import GpuReading
from playground.engines.base import RequestError
from playground.engines.vllm_engine import VllmEngineConfig, planner_advice


def test_dtype_fp8_is_refused_with_the_options_vllm_really_has():
    with pytest.raises(RequestError) as e:
        VllmEngineConfig(label="x", model="m", dtype="fp8").checked(hopper=True)
    assert e.value.argument == "dtype"
    assert "quantization='fp8'" in str(e.value) and "kv_cache_dtype='fp8'" in str(e.value)


def test_fp8_kv_cache_on_hopper_switches_to_bfloat16_and_says_so():
    config, notes = VllmEngineConfig(label="x", model="m", dtype="float16", kv_cache_dtype="fp8").checked(hopper=True)
    assert config.dtype == "bfloat16" and any("bfloat16" in n for n in notes)
    config, _ = VllmEngineConfig(label="x", model="m", dtype="float16", kv_cache_dtype="fp8").checked(hopper=False)
    assert config.dtype == "float16"


def test_unknown_quantization_and_load_format_are_refused():
    with pytest.raises(RequestError, match="quantization"):
        VllmEngineConfig(label="x", model="m", quantization="awq").checked(hopper=True)
    with pytest.raises(RequestError, match="load_format"):
        VllmEngineConfig(label="x", model="m", load_format="gguf").checked(hopper=True)


def test_a_failed_start_gets_the_planners_advice_for_the_gpu_as_it_is():
    busy_h100 = GpuReading(index=0, name="NVIDIA H100 80GB HBM3", total_bytes=85_520_809_984, free_bytes=20 * 2**30,
                           used_bytes=60 * 2**30, reserved_bytes=503_316_480, processes=(), compute_capability=(9, 0),
                           bandwidth_gb_s=3352.32, driver_version="580", power_w=None)
    advice = planner_advice(VllmEngineConfig(label="FP16", model="llama-2-7b", gpu_memory_utilization=0.5,
                                             max_model_len=2048), busy_h100)
    assert "refuses to start" in advice and "Try gpu_memory_utilization=0.2" in advice
