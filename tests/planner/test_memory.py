"""The planner against vLLM: measured H100 rows, the issue's architectures, and the verdicts."""

import json
from pathlib import Path

import pytest

from planner import PlannerError, gpu_preset, model_spec, plan
from planner.gpus import GIB
from planner.measured import plan_measured_row

H100 = gpu_preset("h100-sxm")
H200 = gpu_preset("h200")
DATA = json.loads((Path(__file__).resolve().parents[1] / "data" / "vllm_kv_measurements.json").read_text())
ROWS = DATA["rows"]


def _plan(r):
    return plan_measured_row(r)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['quantization']}-{r['kv_cache_dtype']}-u{r['gpu_memory_utilization']}")
def test_kv_tokens_within_the_bar_of_what_vllm_logged(row):
    """Within 1.5% of vLLM's 'GPU KV cache size', or 0.25 GiB of KV memory where that is larger."""
    p = _plan(row)
    measured = row["measured_kv_tokens"]
    # bytes a token takes in the cache as planned (an attention-free model's state has no per-token bytes)
    tolerance = max(0.015 * measured, 0.25 * GIB / (p.kv_cache_bytes / p.kv_tokens))
    assert abs(p.kv_tokens - measured) <= tolerance


def test_the_issue_rows_plan_correctly_from_the_models_real_structure():
    """Qwen3-30B-A3B (128 experts of width 768) and DeepSeek-V2-Lite (MLA, shared experts, a dense first layer)."""
    qwen = model_spec("qwen3-30b-a3b")
    assert qwen.total_params == 30_532_122_624  # the meta-device census, exact
    p = plan(qwen, H100, quantization="fp8", max_model_len=8192)
    assert 28.5 * GIB < p.weights_bytes < 29.5 * GIB and p.fits  # vLLM logged 29.06 GiB
    assert p.cudagraph_estimate_bytes > 0  # Qwen3-MoE runs on vLLM's V1 runner, which estimates CUDA graphs
    deepseek = model_spec("deepseek-v2-lite")
    assert deepseek.total_params == 15_706_484_224
    d = plan(deepseek, H100, max_model_len=8192)
    assert d.kv_bytes_per_token == 27 * (512 + 64) * 2  # one latent per layer, not K and V per head
    assert 28.5 * GIB < d.weights_bytes < 30 * GIB and d.fits


def test_sliding_window_tokens_are_what_vllm_logs_not_blocks_times_16():
    """Gemma-2-9B: vLLM 0.25.1 logged 161,778 tokens on the H100 (docs/results/planner-accuracy.md)."""
    p = plan("gemma-2-9b", H100, dtype="bfloat16", max_model_len=8192)
    assert abs(p.kv_tokens - 161_778) / 161_778 < 0.015
    assert p.kv_tokens != p.num_gpu_blocks * 16


def test_tensor_parallel_adds_the_nccl_term_once_per_extra_gpu():
    one, two, four = (plan("llama-3-8b", H100, tensor_parallel_size=tp, max_model_len=4096) for tp in (1, 2, 4))
    step = two.non_torch_bytes - one.non_torch_bytes
    assert step > 0 and four.non_torch_bytes - one.non_torch_bytes == 3 * step


def test_a_model_too_big_for_the_gpu_says_by_how_much_and_suggests_configurations_that_fit():
    p = plan("llama-3.1-70b", gpu_preset("rtx-4090"), quantization="fp8", max_model_len=4096, gpu_memory_utilization=0.9)
    assert not p.fits and "short by" in p.reason and p.shortfall_bytes > 0
    assert any(s.config.tensor_parallel_size == 4 and s.config.gpu_memory_utilization == 0.85 for s in p.advice)
    for s in p.advice:
        assert plan(s.config, gpu_preset("rtx-4090")).fits  # every suggestion is a whole configuration that fits


def test_a_change_that_fits_alone_is_suggested_without_a_lower_utilization_beside_it():
    """Qwen3-32B on an RTX 4090 (the pasted model): four GPUs at 0.9 fit with 61,744 KV tokens;
    the same four at 0.85 would fit too, with 42,480, and only cost KV cache."""
    p = plan("qwen3-32b", gpu_preset("rtx-4090"), max_model_len=4096)
    four = [s for s in p.advice if s.config.tensor_parallel_size == 4]
    assert [(s.change, s.config.gpu_memory_utilization) for s in four] == [("tensor_parallel_size=4 (4 GPUs)", 0.9)]
    assert four[0].kv_tokens == 61_744 and "0.85" not in four[0].why
    assert plan("qwen3-32b", gpu_preset("rtx-4090"), max_model_len=4096, tensor_parallel_size=4,
                gpu_memory_utilization=0.85).kv_tokens == 42_480  # the add-on's cost


def test_a_suggestions_kv_figure_is_the_one_its_own_verdict_counts_on():
    p = plan("qwen3-32b", gpu_preset("rtx-4090"), max_model_len=4096)
    assert p.advice
    for s in p.advice:
        applied = plan(s.config, gpu_preset("rtx-4090"))
        assert s.kv_tokens_low == applied.kv_tokens - applied.kv_tokens_spread and f"{s.kv_tokens_low:,}+ KV tokens" in applied.reason


def test_fp8_kv_with_float16_on_hopper_is_refused_with_the_fix():
    with pytest.raises(PlannerError, match="bfloat16"):
        plan("llama-3-8b", H100, kv_cache_dtype="fp8", dtype="float16")
    assert plan("llama-3-8b", H100, kv_cache_dtype="fp8").dtype == "bfloat16"


def test_too_little_free_memory_is_refused_like_vllm_does():
    from dataclasses import replace

    busy = replace(H100, free_bytes=20 * GIB)
    p = plan("llama-2-7b", busy, max_model_len=2048)
    assert not p.fits and "refuses to start" in p.reason
    assert any(s.config.gpu_memory_utilization < 0.25 for s in p.advice)


def test_latent_attention_on_vllms_v1_runner_sets_aside_its_own_cuda_graph_estimate():
    """GLM-4.7-Flash (MLA + MoE, V1 runner): vLLM logged 1.84 GiB of graph estimate, not the GQA MoE models' 0.51;
    DeepSeek-V2-Lite's MLA runs on the V2 runner and gets none; eager engines get none."""
    from planner.memory import CALIBRATION

    glm = plan("glm-4.7-flash", H200, max_model_len=1024)
    assert glm.cudagraph_estimate_bytes == CALIBRATION.mla_cudagraph_estimate_bytes
    assert CALIBRATION.mla_cudagraph_estimate_bytes > 3 * CALIBRATION.v1_runner_cudagraph_estimate_bytes
    assert plan("qwen3-30b-a3b", H200, max_model_len=1024).cudagraph_estimate_bytes == \
        CALIBRATION.v1_runner_cudagraph_estimate_bytes
    assert plan("deepseek-v2-lite", H200, max_model_len=1024).cudagraph_estimate_bytes == 0
    assert plan("glm-4.7-flash", H200, max_model_len=1024, enforce_eager=True).cudagraph_estimate_bytes == 0
    assert abs(glm.kv_tokens / 1_288_768 - 1) < 0.005  # what vLLM logged (docs/results/speed-rows/moe/)


def test_a_recurrent_family_the_planner_has_no_state_rule_for_is_refused_rather_than_guessed():
    config = {"model_type": "minimax", "hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2,
              "num_hidden_layers": 4, "intermediate_size": 5120, "vocab_size": 1000, "max_position_embeddings": 4096,
              "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"]}
    with pytest.raises(PlannerError, match="refuses rather than guess"):
        model_spec(config)


def test_only_moe_models_on_vllms_v1_runner_get_the_cuda_graph_estimate_and_the_v1_sampler_peak():
    from planner.memory import runs_on_v1_model_runner

    assert runs_on_v1_model_runner(model_spec("qwen3-30b-a3b")) and runs_on_v1_model_runner(model_spec("olmoe-1b-7b"))
    # dense models and vLLM's DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES run on V2: no estimate is subtracted
    for name in ("llama-3-8b", "deepseek-v2-lite", "qwen1.5-moe-a2.7b"):
        assert not runs_on_v1_model_runner(model_spec(name))
        assert plan(name, H100, max_model_len=4096).cudagraph_estimate_bytes == 0
    assert plan("qwen3-30b-a3b", H100, quantization="fp8", max_model_len=8192, enforce_eager=True).cudagraph_estimate_bytes == 0
    # the V1 dummy sampler run (151,936-token vocabulary) beside the MoE workspace is Qwen3's peak, not its forward
    qwen = plan("qwen3-30b-a3b", H100, quantization="fp8", max_model_len=8192)
    assert abs(qwen.activation_peak_bytes / GIB - 3.21) < 0.3  # vLLM logged 3.21 GiB


@pytest.mark.parametrize("row", [r for r in ROWS if r.get("vllm_weights_gib")],
                         ids=lambda r: f"{r['model']}-{r['quantization']}-tp{r.get('tensor_parallel_size', 1)}")
def test_weights_within_one_percent_of_what_vllm_logged_as_model_loading(row):
    """'Model loading took X GiB' (logged to two decimals): the tensors plus the allocator's blocks around them."""
    p = _plan(row)
    assert abs(p.weights_bytes / GIB - row["vllm_weights_gib"]) <= max(0.01 * row["vllm_weights_gib"], 0.006)


def test_held_out_rows_meet_the_bar():
    held_out = [r for r in ROWS if r.get("held_out")]
    assert len(held_out) >= 6  # MoE, MLA, FP8 and TP=2 rows measured after the calibration was fixed
    for r in held_out:
        p = _plan(r)
        tolerance = max(0.015 * r["measured_kv_tokens"], 0.25 * GIB / (p.kv_cache_bytes / p.kv_tokens))
        assert abs(p.kv_tokens - r["measured_kv_tokens"]) <= tolerance, r["model"]


def test_vllms_batch_defaults_depend_on_who_builds_the_engine():
    """vllm/engine/arg_utils.py get_batch_defaults: LLM class, `vllm serve`, and AsyncLLM's SchedulerConfig."""
    from planner.memory import default_batch_limits

    assert default_batch_limits(H100) == (1024, 16384)
    assert default_batch_limits(H100, "serve") == (1024, 8192)
    assert default_batch_limits(H100, "engine") == (128, 2048)
    assert default_batch_limits(gpu_preset("a100-80gb")) == (256, 8192)  # no larger defaults on an A100
    assert default_batch_limits(gpu_preset("a100-80gb"), "serve") == (256, 2048)
    with pytest.raises(PlannerError, match="entrypoint"):
        default_batch_limits(H100, "ray")
