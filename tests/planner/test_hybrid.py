"""Hybrid models (Mamba / gated-delta-net layers beside attention): vLLM 0.25.1's state pages and block size.

Each expected number is worked by hand from vLLM's source, not from the planner:
MambaStateShapeCalculator (vllm/model_executor/layers/mamba/mamba_utils.py) for the state,
Platform._align_hybrid_block_size (vllm/platforms/interface.py) for the attention block, and
kv_cache_utils._get_kv_cache_groups_uniform_page_size / get_max_concurrency_for_kv_cache_config for the
groups and the logged token count."""

import math

import pytest

from planner import gpu_preset, model_spec, plan
from planner.fit import max_batch_size, max_context_len, min_utilization_for
from planner.gpus import GIB
from planner.memory import runs_on_v1_model_runner

H100 = gpu_preset("h100-sxm")


def test_granite_4_h_tiny_state_block_size_and_groups_follow_vllm():
    spec = model_spec("granite-4.0-h-tiny")
    assert (len(spec.layers), len(spec.state_layers)) == (4, 36)
    # conv state: (d_conv - 1) x (2 x 1536 + 2 x 1 x 128) channels; SSM state: 48 heads x 64 x 128; bfloat16
    state = 3 * (2 * 1536 + 2 * 128) * 2 + 48 * 64 * 128 * 2
    assert spec.state_layers[0].state_bytes(2) == state == 806_400
    p = plan(spec, H100, max_model_len=8192)
    per_token = 2 * 4 * 128 * 2  # K and V, 4 KV heads of 128, bfloat16
    block = 16 * math.ceil(state / (16 * per_token))  # 400 tokens: the attention page must hold one state
    assert (p.block_size, p.kv_page_bytes) == (block, block * per_token) == (400, 819_200)
    # 4 attention layers and 36 state layers: groups of 4 -> 1 attention group and 9 state groups
    assert (p.kv_layers_per_group, p.attention_groups, p.state_groups) == (4, 1, 9)
    assert p.num_gpu_blocks == p.kv_cache_bytes // (819_200 * 4)
    # "GPU KV cache size" = blocks / blocks-per-request x max_model_len; a request holds 21 + 9 blocks
    assert p.kv_tokens == int(p.num_gpu_blocks / (math.ceil(8192 / 400) + 9) * 8192)
    assert runs_on_v1_model_runner(spec) and p.cudagraph_estimate_bytes > 0  # hybrids run on vLLM's V1 runner
    # the seed of issue 14: 6.9 B parameters (64 experts of 512) fit one H100 with room to spare
    assert 6.8e9 < spec.total_params < 7.0e9 and p.fits and p.weights_bytes < 14 * GIB


def test_falcon_h1_layers_hold_attention_and_a_mamba_state_each():
    spec = model_spec("falcon-h1-7b")
    assert (len(spec.layers), len(spec.state_layers)) == (44, 44)
    state = 3 * (3072 + 2 * 256) * 2 + 24 * 128 * 256 * 2  # mamba_d_ssm 3072 channels, d_state 256
    p = plan(spec, H100, max_model_len=8192)
    assert spec.state_layers[0].state_bytes(2) == state
    assert p.block_size == 16 * math.ceil(state / (16 * 1024)) == 1568
    assert (p.kv_layers_per_group, p.attention_groups, p.state_groups) == (44, 1, 1)


def test_a_sequence_holds_its_state_whatever_its_length():
    gpu, args = H100, dict(max_model_len=8192, gpu_memory_utilization=0.5)
    p = plan("granite-4.0-h-tiny", gpu, **args)
    usable = int(p.num_gpu_blocks * (p.kv_tokens - p.kv_tokens_spread) / p.kv_tokens)
    # 16-token sequences: 1 attention block + 9 state blocks each, not 16 tokens of KV
    assert max_batch_size("granite-4.0-h-tiny", gpu, context_len=16, **args) == min(p.max_num_seqs, usable // 10)
    assert max_batch_size("granite-4.0-h-tiny", gpu, context_len=8192, **args) == usable // 30
    assert max_context_len("granite-4.0-h-tiny", gpu, batch_size=500, **args) == (usable // 500 - 9) * 400


def test_the_inverse_plan_pins_a_hybrid_kv_cache_in_whole_blocks_of_every_group():
    need = min_utilization_for("granite-4.0-h-tiny", H100, concurrency=64, context_len=8192)
    p = need.plan
    assert need.fits and p.num_gpu_blocks >= 64 * 30
    assert need.kv_cache_memory_bytes == 64 * 30 * 819_200 * 4
    assert f"--kv-cache-memory-bytes {need.kv_cache_memory_bytes}" in need.pinned_serve_command


def test_nemotron_h_keeps_its_ssm_state_in_float32_and_mlp_layers_hold_nothing():
    config = {"model_type": "nemotron_h", "hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
              "num_key_value_heads": 2, "head_dim": 128, "intermediate_size": 2048, "vocab_size": 1000,
              "max_position_embeddings": 4096, "hybrid_override_pattern": "M-M*", "mamba_num_heads": 16,
              "mamba_head_dim": 64, "n_groups": 2, "ssm_state_size": 32, "conv_kernel": 4}
    spec = model_spec(config)
    assert (len(spec.layers), len(spec.state_layers)) == (1, 2)
    assert spec.state_layers[0].state_bytes(2) == 3 * (16 * 64 + 2 * 2 * 32) * 2 + 16 * 64 * 32 * 4


def test_qwen3_next_gated_delta_net_state_and_tensor_parallel_split():
    config = {"model_type": "qwen3_next", "hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2,
              "head_dim": 256, "num_hidden_layers": 4, "intermediate_size": 5120, "vocab_size": 1000,
              "max_position_embeddings": 4096, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
              "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
              "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"]}
    layer = model_spec(config).state_layers[0]
    conv = 2 * 16 * 128 + 32 * 128
    assert layer.state_bytes(2) == 3 * conv * 2 + 32 * 128 * 128 * 2
    assert layer.state_bytes(2, tp=2) == 3 * conv // 2 * 2 + 16 * 128 * 128 * 2


@pytest.mark.parametrize("tp", [1, 2])
def test_mamba2_groups_are_replicated_when_tensor_parallelism_splits_heads(tp):
    layer = model_spec("granite-4.0-h-tiny").state_layers[0]
    groups = 1 if tp == 1 else tp  # extra_groups_for_head_shards: one group is copied to every rank
    assert layer.state_bytes(2, tp) == 3 * (3072 + 2 * groups * 128) // tp * 2 + 48 // tp * 64 * 128 * 2


def test_falcon_h1_at_vllms_defaults_is_refused_as_vllm_refused_it_and_the_fix_fits():
    # measured on the H100: "max_num_seqs (1024) exceeds available Mamba cache blocks (821)" (FP8: 914)
    for quantization in (None, "fp8"):
        p = plan("falcon-h1-7b", H100, max_model_len=8192, quantization=quantization)
        assert not p.fits and "max_num_seqs=1,024 exceeds" in p.reason
        assert p.advice and p.advice[0].change.startswith("max_num_seqs=")
        assert plan(p.advice[0].config, H100).fits
    assert plan("falcon-h1-7b", H100, max_model_len=8192, max_num_seqs=512).fits  # vLLM started at 512
    assert plan("falcon-h1-7b", H100, max_model_len=8192, enforce_eager=True).fits  # no full CUDA graphs: no check
