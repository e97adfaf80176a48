"""One EngineConfig: validated once, rendered by one function, and read back to the same value."""

import itertools

import pytest

from planner import EngineConfig, PlannerError, gpu_preset, plan

TABLE = [
    EngineConfig(model=m, quantization=q, kv_cache_dtype=kv, dtype="bfloat16", tensor_parallel_size=tp,
                 enforce_eager=eager, gpu_memory_utilization=util, max_model_len=4096, gpu_ids=ids)
    for m, q, kv, tp, eager, util, ids in itertools.product(
        ["llama-3-8b"], [None, "fp8"], ["auto", "fp8"], [1, 2], [False, True], [0.5, 0.9], [None])
] + [EngineConfig(model="qwen3-30b-a3b", quantization="fp8", gpu_ids=(1,), max_num_seqs=64, max_num_batched_tokens=8192)]


@pytest.mark.parametrize("config", TABLE, ids=lambda c: c.command("serve")[:90])
def test_the_printed_serve_command_parses_back_to_the_same_config(config):
    assert EngineConfig.parse_command(config.command("serve")) == config
    assert EngineConfig.parse_command(config.command("bench-throughput", extra=["--num-prompts", "8"])) == config


def test_the_planner_advice_the_command_and_the_plan_agree_field_by_field():
    failed = plan("llama-3.1-70b", gpu_preset("rtx-4090"), quantization="fp8", max_model_len=4096)
    assert not failed.fits and failed.advice
    for suggestion in failed.advice:
        replanned = plan(EngineConfig.parse_command(suggestion.config.command("serve")), gpu_preset("rtx-4090"))
        assert replanned.fits and replanned.kv_tokens == suggestion.kv_tokens


@pytest.mark.parametrize("fields, argument", [
    ({"dtype": "fp8"}, "dtype"), ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"quantization": "gguf"}, "quantization"), ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
    ({"kv_cache_dtype": "int4"}, "kv_cache_dtype"), ({"tensor_parallel_size": 2, "gpu_ids": (0,)}, "gpu_ids"),
])
def test_invalid_engines_are_refused_naming_the_argument(fields, argument):
    with pytest.raises(PlannerError) as e:
        EngineConfig(model="llama-3-8b", **fields)
    assert e.value.argument == argument


def test_fp8_kv_on_hopper_has_one_rule():
    auto, notes = EngineConfig(model="m", kv_cache_dtype="fp8").for_gpu(is_hopper=True)
    assert auto.dtype == "bfloat16" and notes
    with pytest.raises(PlannerError, match="bfloat16"):
        EngineConfig(model="m", kv_cache_dtype="fp8", dtype="float16").for_gpu(is_hopper=True)
    assert EngineConfig(model="m", kv_cache_dtype="fp8", dtype="float16").for_gpu(is_hopper=False)[0].dtype == "float16"
