"""The roofline checked against arithmetic done by hand on small, fully known shapes."""

import dataclasses

import pytest

from planner import EngineConfig, gpu_preset, model_spec
from planner.roofline import NVLINK_GB_S, decode_step_bytes, experts_touched, roofline

H, V, L = 256, 1024, 2  # hidden size, vocabulary (a multiple of 64: no padding), layers


def tiny_llama(tied: bool) -> dict:
    return {"model_type": "llama", "hidden_size": H, "intermediate_size": 512, "num_hidden_layers": L,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": V, "max_position_embeddings": 128,
            "tie_word_embeddings": tied}


def test_experts_touched_by_hand():
    assert experts_touched(4, 1, 2) == pytest.approx(4 * (1 - (3 / 4) ** 2))  # 1.75 of 4 experts
    assert experts_touched(128, 8, 1) == pytest.approx(8)  # batch 1 reads exactly the k routed experts
    assert experts_touched(128, 8, 4096) == pytest.approx(128)  # a big batch reads them all
    assert experts_touched(0, 0, 8) == 0


@pytest.mark.parametrize("batch", [1, 7])
def test_a_tied_embedding_is_read_whole_as_the_lm_head_an_untied_one_only_as_gathered_rows(batch):
    tied, untied = model_spec(tiny_llama(True), name="tied"), model_spec(tiny_llama(False), name="untied")
    config = EngineConfig(model="tiny", dtype="bfloat16")
    step_tied = decode_step_bytes(tied, config, batch=batch, mean_context=0)
    step_untied = decode_step_bytes(untied, config, batch=batch, mean_context=0)
    # Untied: + a V x H LM head read whole, - the V x H embedding (gathered instead), + batch rows of H.
    assert step_untied - step_tied == batch * H * 2


def test_at_batch_1_an_moe_step_reads_only_the_routed_experts():
    spec = model_spec("qwen3-30b-a3b")
    config = EngineConfig(model="qwen3-30b-a3b", dtype="bfloat16", quantization="fp8")
    all_experts = spec.params.experts  # FP8: one byte each
    one_expert_per_layer = all_experts / spec.num_experts
    step_1 = decode_step_bytes(spec, config, batch=1, mean_context=0)
    step_2 = decode_step_bytes(spec, config, batch=2, mean_context=0)
    # Going from batch 1 to 2 touches experts_touched(E, k, 2) - k more experts per layer, plus one more
    # embedding row and one more rotary cos/sin row.
    extra = (experts_touched(spec.num_experts, spec.experts_per_token, 2) - spec.experts_per_token) * one_expert_per_layer
    assert step_2 - step_1 == pytest.approx(extra + (spec.hidden_size + spec.rotary_dim) * 2, rel=1e-9)
    # And batch 1 reads 8 of 128 experts: far less than the FP8 weights on the GPU.
    assert step_1 < 0.25 * all_experts


def test_tensor_parallel_splits_the_bytes_and_adds_two_all_reduces_per_layer():
    spec = model_spec("llama-3.1-8b")
    h100 = gpu_preset("h100-sxm")
    one = EngineConfig(model="llama-3.1-8b", dtype="bfloat16")
    two = dataclasses.replace(one, tensor_parallel_size=2)
    bytes_1 = decode_step_bytes(spec, one, batch=1, mean_context=1000)
    bytes_2 = decode_step_bytes(spec, two, batch=1, mean_context=1000)
    # Everything but norms (replicated, a few hundred KB) and the gathered embedding row halves.
    assert bytes_2 == pytest.approx(bytes_1 / 2, rel=1e-3)
    point = roofline(spec, h100, concurrency=1, input_len=1000, output_len=256, tensor_parallel_size=2, dtype="bfloat16")
    all_reduce_s = 2 * spec.num_layers * 1 * spec.hidden_size * 2 * 2 * (2 - 1) / 2 / (NVLINK_GB_S * 1e9)
    mean_context = 1000 + 256 / 2
    expected_step = decode_step_bytes(spec, two, batch=1, mean_context=mean_context) / (h100.bandwidth_gb_s * 1e9) + all_reduce_s
    assert point.bound == "memory"
    assert point.decode_step_s == pytest.approx(expected_step, rel=1e-9)
    assert point.output_tok_s == pytest.approx(1 / expected_step, rel=1e-9)


def test_fp8_reads_one_byte_per_linear_weight():
    spec = model_spec("llama-3.1-8b")
    bf16 = EngineConfig(model="llama-3.1-8b", dtype="bfloat16")
    fp8 = dataclasses.replace(bf16, quantization="fp8")
    saved = decode_step_bytes(spec, bf16, batch=1, mean_context=0) - decode_step_bytes(spec, fp8, batch=1, mean_context=0)
    linear = spec.params.linear_split + spec.params.linear_replicated
    assert saved == pytest.approx(linear, rel=1e-4)  # 2 bytes -> 1 byte (+ a few float32 scales)
