"""Pre-quantized checkpoints: the planner reads config.json's quantization_config as vLLM 0.25.1 does and counts
every tensor each method creates, with the kernel vLLM picks per GPU. Byte counts are worked by hand in each test
for one small Linear (out x in) or one small routed-expert stack."""

import copy

import pytest

from planner import PlannerError, gpu_preset, model_spec, plan
from planner.memory import DEEP_GEMM_INIT_BYTES, weights_bytes
from planner.models import catalog_config
from planner.quantization import expert_bytes, linear_bytes, parse_quantization_config

H100, A100, L40S = gpu_preset("h100-sxm"), gpu_preset("a100-80gb"), gpu_preset("l40s")
HOPPER, AMPERE, ADA = (9, 0), (8, 0), (8, 9)


def scheme(name: str):
    config = catalog_config(name)
    return parse_quantization_config(config, config["model_type"])


def one_linear(name, cc=HOPPER, out=256, inp=512, dtype_bytes=2):
    return linear_bytes(scheme(name), out_features=out, in_features=inp, dtype_bytes=dtype_bytes, cc=cc)


# ------------------------------------------------------------------------------------------- one Linear, by hand
def test_fp8_per_tensor_static_keeps_one_weight_scale_and_one_input_scale():
    # llama-3-8b-instruct-fp8 (quant_method fp8, activation_scheme static): weight 256 x 512 float8 = 131,072 bytes;
    # the shard scales requantized to one float32 weight_scale (4) and the max input_scale (4)
    assert one_linear("llama-3-8b-instruct-fp8") == 256 * 512 + 4 + 4 == 131_080


def test_fp8_block_scales_one_float32_per_128x128_tile():
    # qwen3-8b-fp8: 384 x 200 float8 = 76,800; weight_scale_inv ceil(384/128)=3 x ceil(200/128)=2 = 6 x 4 bytes
    assert one_linear("qwen3-8b-fp8", out=384, inp=200) == 384 * 200 + 3 * 2 * 4 == 76_824


def test_compressed_tensors_fp8_channel_keeps_a_float32_scale_per_output_row():
    # llama-3.1-8b-instruct-fp8-dynamic: 131,072 + 256 rows x 4 bytes; dynamic per-token activations: no input_scale
    assert one_linear("llama-3.1-8b-instruct-fp8-dynamic") == 131_072 + 256 * 4 == 132_096


def test_compressed_tensors_fp8_block_scales_one_float32_per_128x128_tile():
    # llama-3.1-8b-instruct-fp8-block (llm-compressor's FP8_BLOCK): 384 x 200 float8 = 76,800; weight_scale
    # (ceil(384/128)=3, ceil(200/128)=2) float32 = 24; activations dynamic in groups of 128: no input_scale
    assert one_linear("llama-3.1-8b-instruct-fp8-block", out=384, inp=200) == 384 * 200 + 3 * 2 * 4 == 76_824
    s = scheme("llama-3.1-8b-instruct-fp8-block")
    assert (s.method, s.granularity, s.block, s.activations) == ("compressed-tensors", "block", (128, 128), "dynamic")


def test_compressed_tensors_fp8_static_tensor_adds_an_input_scale():
    assert one_linear("llama-3.1-8b-instruct-fp8-kv") == 131_072 + 4 + 4


def test_compressed_tensors_int8_w8a8_channel():
    # int8 weight 131,072 + float32 channel scales 1,024 (symmetric dynamic tokens: no zero point)
    assert one_linear("llama-3.1-8b-instruct-w8a8") == 131_072 + 1_024


def test_compressed_tensors_w4a16_packs_eight_values_per_int32_with_16_bit_group_scales():
    # weight_packed (256, 512 / 8) int32 = 65,536 bytes; weight_scale (256, 512 / 128 = 4) bf16 = 2,048;
    # weight_shape: two int64 = 16
    assert one_linear("llama-3.1-8b-instruct-w4a16") == 65_536 + 2_048 + 16 == 67_600


def test_modelopt_fp8_is_per_tensor_with_static_activations():
    assert one_linear("llama-3.1-8b-instruct-modelopt-fp8") == 131_072 + 4 + 4


def test_awq_zero_points_become_16_bit_on_hopper_machete_and_stay_packed_on_marlin():
    # qweight (512, 256 / 8) int32 = 65,536; scales (4 groups, 256) bf16 = 2,048;
    # qzeros: Machete (Hopper) pre-applies the scales: (4, 256) bf16 = 2,048; Marlin keeps (4, 256 / 8) int32 = 512
    assert one_linear("qwen2.5-7b-instruct-awq", HOPPER) == 65_536 + 2_048 + 2_048 == 69_632
    assert one_linear("qwen2.5-7b-instruct-awq", AMPERE) == 65_536 + 2_048 + 512 == 68_096


def test_gptq_keeps_g_idx_and_qzeros_on_machete_and_drops_them_on_marlin():
    # qweight 65,536 + scales 2,048 + qzeros (4, 256 / 8) int32 512 + g_idx 512 int32 = 2,048 on Hopper;
    # Marlin replaces g_idx and the symmetric qzeros by empty tensors
    assert one_linear("qwen2.5-7b-instruct-gptq-int4", HOPPER) == 65_536 + 2_048 + 512 + 2_048 == 70_144
    assert one_linear("qwen2.5-7b-instruct-gptq-int4", AMPERE) == 65_536 + 2_048 == 67_584


def test_fp8_below_compute_capability_8_9_is_fp8_marlin_with_16_bit_channel_scales():
    # A100: weight-only FP8-Marlin; the per-tensor scale becomes 256 bf16 channel scales, no input scale
    assert one_linear("llama-3-8b-instruct-fp8", AMPERE) == 131_072 + 256 * 2
    assert one_linear("llama-3-8b-instruct-fp8", ADA) == 131_080  # L40S has FP8 tensor cores: as on Hopper


# ------------------------------------------------------------------------------------------- routed experts
def test_mxfp4_experts_on_hopper_pad_the_scale_rows_to_256():
    s = scheme("gpt-oss-20b")
    # 4 experts, hidden 512, width 256: w13 (4, 2 x 256, 512 / 2) uint8 (two e2m1 per byte) = 524,288; w2
    # (4, 512, 256 / 2) = 262,144; scales one e8m0 per 32 values: w13 4 x 512 rows x 16 = 32,768, w2 4 x 512 rows x 8
    # = 16,384 (512 rows are already a multiple of 256); biases 4 x (512 + 512), float32 on Triton = 16,384
    assert expert_bytes(s, experts=4, hidden=512, width=256, bias_elements=1, dtype_bytes=2, cc=HOPPER) == (
        524_288 + 262_144 + 32_768 + 16_384 + 16_384)
    # gpt-oss's 2880: w13 scale rows 5760 -> 5888, w2 scale rows 2880 -> 3072 (HopperMXScaleLayout)
    got = expert_bytes(s, experts=1, hidden=2880, width=2880, bias_elements=0, dtype_bytes=2, cc=HOPPER)
    assert got == 5760 * 1440 + 2880 * 1440 + 5888 * 90 + 3072 * 90


def test_mxfp4_on_ampere_runs_marlin_and_pads_hidden_to_256_and_width_to_128():
    s = scheme("gpt-oss-20b")
    got = expert_bytes(s, experts=1, hidden=2880, width=2880, bias_elements=0, dtype_bytes=2, cc=AMPERE)
    h, i = 3072, 2944
    assert got == 2 * i * h // 2 + h * i // 2 + 2 * i * (h // 32) + h * (i // 32)


def test_fp8_block_experts():
    # 2 experts, hidden 256, width 128: weights 2 x 3 x 256 x 128 = 196,608; scales per expert w13 (256/128 x 256/128
    # = 4) + w2 (256/128 x 128/128 = 2) = 6 float32: 48
    s = scheme("deepseek-v3")
    assert expert_bytes(s, experts=2, hidden=256, width=128, bias_elements=0, dtype_bytes=2, cc=HOPPER) == 196_656


# ------------------------------------------------------------------------------------------- a whole (tiny) model
TINY = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
        "max_position_embeddings": 2048, "torch_dtype": "bfloat16"}
# per layer: q 256x256, k 128x256, v 128x256, o 256x256, gate 512x256, up 512x256, down 256x512
LAYER_ELEMENTS = 65_536 + 32_768 + 32_768 + 65_536 + 131_072 + 131_072 + 131_072  # 589,824
LAYER_ROWS = 256 + 128 + 128 + 256 + 512 + 512 + 256  # 2,048


def tiny(quantization_config=None, **fields):
    config = {**TINY, **fields}
    if quantization_config is not None:
        config["quantization_config"] = quantization_config
    return model_spec(config, name="tiny")


def test_a_checkpoint_is_sized_by_its_scheme_not_as_16_bit():
    channel = copy.deepcopy(catalog_config("llama-3.1-8b-instruct-fp8-dynamic")["quantization_config"])
    sixteen = weights_bytes(tiny(), dtype_bytes=2, quantization=None)
    fp8 = weights_bytes(tiny(channel), dtype_bytes=2, quantization=None)
    # the decoder Linears go from 2 bytes per weight to 1 byte plus a float32 scale per output row; the rest
    # (embeddings, lm_head, norms, rotary cache) is unchanged
    assert sixteen - fp8 == 2 * (LAYER_ELEMENTS * 2) - 2 * (LAYER_ELEMENTS + LAYER_ROWS * 4)
    p = plan(tiny(channel), H100, max_model_len=2048)
    assert p.weights_bytes == fp8 + DEEP_GEMM_INIT_BYTES  # DeepGEMM's buffer, as for online FP8 on Hopper
    assert "FP8 (channel scales, from config.json)" in p.weights_scheme and "lm_head 16-bit" in p.weights_scheme
    assert p.as_dict()["weights_scheme"] == p.weights_scheme


def test_ignored_layers_stay_16_bit():
    qc = {"quant_method": "fp8", "activation_scheme": "dynamic", "ignored_layers": ["re:.*mlp.*"]}
    got = weights_bytes(tiny(qc), dtype_bytes=2, quantization=None)
    attention = 65_536 + 32_768 + 32_768 + 65_536  # the MLP keeps its 2 bytes per weight
    assert weights_bytes(tiny(), dtype_bytes=2, quantization=None) - got == 2 * (attention * 2 - (attention + 4 * 4))


def test_checkpoint_fp8_kv_cache_halves_the_kv_bytes_under_auto():
    kv = plan("llama-3.1-8b-instruct-fp8-kv", H100, max_model_len=8192)
    dynamic = plan("llama-3.1-8b-instruct-fp8-dynamic", H100, max_model_len=8192)
    assert kv.kv_bytes_per_token * 2 == dynamic.kv_bytes_per_token == 32 * 2 * 8 * 128 * 2
    assert any("FP8 KV" in w for w in kv.warnings)
    explicit = plan("llama-3.1-8b-instruct-fp8-kv", H100, max_model_len=8192, kv_cache_dtype="bfloat16")
    assert explicit.kv_bytes_per_token == dynamic.kv_bytes_per_token  # an explicit choice wins
    assert plan("llama-3.1-8b-instruct-modelopt-fp8", H100, max_model_len=8192).kv_bytes_per_token == 65_536


# ------------------------------------------------------------------------------------------- per GPU
def test_fp8_checkpoint_on_a100_says_fp8_marlin():
    p = plan("qwen3-8b-fp8", A100, max_model_len=8192)
    assert "FP8-Marlin" in p.weights_scheme and any("no FP8 tensor cores" in w for w in p.warnings)


def test_modelopt_fp8_is_refused_on_a100_as_vllm_does():
    with pytest.raises(PlannerError) as e:
        plan("llama-3.1-8b-instruct-modelopt-fp8", A100, max_model_len=8192)
    assert e.value.argument == "gpu" and "Minimum capability: 89" in str(e.value)


def test_gpt_oss_runs_triton_on_hopper_and_marlin_with_padding_on_a100():
    hopper, ampere = plan("gpt-oss-20b", H100, max_model_len=8192), plan("gpt-oss-20b", A100, max_model_len=8192)
    assert "Triton" in hopper.weights_scheme and "Marlin" in ampere.weights_scheme
    assert "self_attn" in hopper.weights_scheme and "router" in hopper.weights_scheme
    assert ampere.weights_bytes > hopper.weights_bytes  # Marlin pads 2880 to 3072 / 2944


# ------------------------------------------------------------------------------------------- --quantization
def test_quantization_matching_or_compatible_with_the_checkpoint_is_accepted():
    base = plan("qwen2.5-7b-instruct-awq", H100, max_model_len=8192)
    for name in ("awq", "awq_marlin", "marlin"):
        assert plan("qwen2.5-7b-instruct-awq", H100, max_model_len=8192, quantization=name).weights_bytes == base.weights_bytes
    # ModelOpt overrides whatever was asked (ModelOptFp8Config.override_quantization_method)
    assert plan("llama-3.1-8b-instruct-modelopt-fp8", H100, max_model_len=8192, quantization="fp8").fits


@pytest.mark.parametrize("model, asked", [("llama-3.1-8b-instruct-fp8-dynamic", "fp8"),
                                          ("qwen2.5-7b-instruct-awq", "gptq"), ("qwen3-8b-fp8", "compressed-tensors")])
def test_a_different_quantization_is_vllms_error_said_before_loading(model, asked):
    with pytest.raises(PlannerError) as e:
        plan(model, H100, max_model_len=8192, quantization=asked)
    assert e.value.argument == "quantization" and "does not match" in str(e.value)


def test_a_checkpoint_method_on_a_16_bit_checkpoint_is_refused():
    with pytest.raises(PlannerError) as e:
        plan("llama-3-8b", H100, max_model_len=4096, quantization="awq")
    assert e.value.argument == "quantization" and "no quantization_config" in str(e.value)


# ------------------------------------------------------------------------------------------- bad configs
@pytest.mark.parametrize("qc, field", [
    ({"quant_method": "gguf"}, "quantization_config.quant_method"),
    ({"bits": 4}, "quantization_config.quant_method"),
    ("fp8", "quantization_config"),
    ({"quant_method": "fp8"}, "quantization_config.activation_scheme"),
    ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128]}, "quantization_config.weight_block_size"),
    ({"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": [128, 128]}, "quantization_config.activation_scheme"),
    ({"quant_method": "compressed-tensors"}, "quantization_config.config_groups"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "quantization_config.zero_point"),
    ({"quant_method": "gptq", "bits": 3, "group_size": 128}, "quantization_config.bits"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "quantization_config.quant_algo"),
    ({"quant_method": "fp8", "activation_scheme": "dynamic", "ignored_layers": "lm_head"}, "quantization_config.ignored_layers"),
])
def test_a_malformed_or_unknown_quantization_config_names_the_field(qc, field):
    with pytest.raises(PlannerError) as e:
        tiny(qc)
    assert e.value.argument == field


def test_an_unknown_method_lists_the_methods_known():
    with pytest.raises(PlannerError) as e:
        tiny({"quant_method": "bitsandbytes"})
    assert "'bitsandbytes'" in str(e.value) and "compressed-tensors" in str(e.value) and "16-bit" in str(e.value)


def test_a_compressed_tensors_scheme_not_sized_is_refused_naming_the_weights():
    qc = copy.deepcopy(catalog_config("llama-3.1-8b-instruct-w4a16")["quantization_config"])
    qc["config_groups"]["group_0"]["weights"]["type"] = "float"
    qc["config_groups"]["group_0"]["weights"]["num_bits"] = 4
    with pytest.raises(PlannerError) as e:
        tiny(qc)
    assert e.value.argument == "quantization_config.config_groups.group_0.weights"


# ------------------------------------------------------------------------------------------- the fit answers
def test_the_fit_answers_use_the_checkpoints_sizing():
    from planner import compare_precisions, largest_model, max_batch_size, min_utilization_for

    p = plan("qwen3-32b-fp8", H100, max_model_len=8192)
    sixteen = plan("qwen3-32b", H100, max_model_len=8192)
    assert p.weights_bytes < 0.6 * sixteen.weights_bytes and p.kv_tokens > sixteen.kv_tokens
    assert max_batch_size("qwen3-32b-fp8", H100, max_model_len=8192) > max_batch_size("qwen3-32b", H100, max_model_len=8192)
    need = min_utilization_for("qwen3-32b-fp8", H100, concurrency=8, context_len=8192)
    assert need.fits and need.plan.weights_bytes == p.weights_bytes
    rows = compare_precisions("llama-3.1-8b-instruct-fp8-dynamic", H100, max_model_len=8192)
    assert [r.precision for r in rows] == ["checkpoint", "checkpoint + FP8 KV"]
    assert rows[0].plan.weights_bytes == rows[1].plan.weights_bytes
    assert rows[1].plan.kv_bytes_per_token * 2 == rows[0].plan.kv_bytes_per_token
    fitting = {q.model: q for q in largest_model(H100, max_model_len=8192)}
    assert fitting["qwen3-32b-fp8"].weights_bytes == p.weights_bytes


def test_side_by_side_split_refuses_a_pre_quantized_checkpoint():
    from planner.fit import side_by_side_split

    with pytest.raises(PlannerError) as e:
        side_by_side_split("qwen3-8b-fp8", H100)
    assert e.value.argument == "model" and "pre-quantized" in str(e.value)


def test_the_cli_says_what_it_sized(capsys):
    from planner.cli import main

    main(["--model", "qwen3-32b-fp8", "--gpu", "h100-sxm", "--max-model-len", "8192"])
    out = capsys.readouterr().out
    assert "FP8 (128x128 block scales, from config.json)" in out and "lm_head 16-bit" in out


# ------------------------------------------------------------------------------------------- measured on the H200
def test_measured_checkpoint_rows_meet_the_weights_bar():
    """Every pre-quantized row of tests/data (one per method, measured on an H200): the planned weights within 1%
    of vLLM's "Model loading took" (the KV bar is checked for every row in test_memory.py)."""
    import json
    from pathlib import Path

    from planner.gpus import GIB
    from planner.measured import plan_measured_row

    rows = [r for r in json.loads((Path(__file__).resolve().parents[1] / "data" / "vllm_kv_measurements.json")
                                  .read_text())["rows"] if r.get("checkpoint_quantization")]
    assert len(rows) >= 9 and all(r["held_out"] for r in rows)
    for r in rows:
        assert abs(plan_measured_row(r).weights_bytes / GIB / r["vllm_weights_gib"] - 1) <= 0.01, r["model"]


def test_a_tensor_of_20_mib_or_more_counts_its_whole_2_mib_segment():
    from planner.allocator import checkpoint_load_overhead_bytes

    mib = 1 << 20
    # 30 MiB + 512 B takes a 32 MiB segment, counted whole under max_split_size_mb=20: 2 MiB - 512 B beyond it;
    # a 3 MiB tensor is split out of its 20 MiB segment (counted at its own size)
    assert checkpoint_load_overhead_bytes([30 * mib + 512], []) == 2 * mib - 512
    assert checkpoint_load_overhead_bytes([3 * mib], []) == 0
    # a repack that frees a 40 MiB tensor and allocates a 24 MiB one reuses the freed block only if it is less
    # than 20 MiB larger: here it is not, so the new tensor gets its own 24 MiB segment and nothing is wasted
    assert checkpoint_load_overhead_bytes([40 * mib], [[("alloc", "new", 24 * mib), ("free", "param:0", 0)]]) == 0
    # ... while a 30 MiB one lands in the freed 40 MiB block after it is freed, and the block counts whole
    assert checkpoint_load_overhead_bytes([40 * mib, 40 * mib], [[("free", "param:0", 0), ("alloc", "new", 30 * mib)]]) \
        == 10 * mib


def test_gptq_on_machete_prepacks_qweight_through_a_column_major_copy_and_keeps_g_idx_qzeros_scales():
    from planner.quantization import linear_repack, linear_tensors

    gptq = scheme("qwen2.5-7b-instruct-gptq-int4")
    # create_weights, in allocation order: qweight (512 / 8, 256) int32 = 65,536; g_idx (512,) int32 = 2,048;
    # qzeros (4 groups, 256 / 8) int32 = 512; scales (4, 256) fp16 = 2,048
    assert linear_tensors(gptq, 256, 512, 2, HOPPER) == [65_536, 2_048, 512, 2_048]
    # Built as param:7..10. machete_prepack_B(x.data.t().contiguous().t()): the contiguous copy, then the prepacked
    # tensor of the same size; the copy dies when the call returns, the old qweight when x.data is replaced.
    # g_idx (param:8), qzeros (param:9) and the already-contiguous scales (param:10) are not touched.
    assert linear_repack(gptq, 256, 512, 2, HOPPER, first=7) == [
        ("alloc", "tmp:contiguous", 65_536), ("alloc", "machete:qweight", 65_536),
        ("free", "tmp:contiguous", 0), ("free", "param:7", 0)]


def test_each_gptq_repack_frees_its_own_linears_qweight_also_after_the_rotary_cache(monkeypatch):
    """The rotary cache is built between layer 0's attention and its MLP; the repacks after it must still free
    their own qweight (same size as the prepacked one), not the tensor built before it."""
    import planner.memory as memory

    config = copy.deepcopy(catalog_config("qwen2.5-7b-instruct-gptq-int4"))
    config["num_hidden_layers"] = 2
    seen = {}
    monkeypatch.setattr(memory, "checkpoint_load_overhead_bytes", lambda build, repacks: seen.update(
        build=build, repacks=repacks) or 0)
    memory.checkpoint_load_blocks(model_spec(config), dtype_bytes=2, tp=1, cc=HOPPER)
    params = [item for item in seen["build"] if not isinstance(item, tuple)]  # param:INDEX, in build order
    assert len(seen["repacks"]) == 8  # qkv, o, gate_up, down per layer
    for events in seen["repacks"]:
        prepacked = dict((key, size) for op, key, size in events if op == "alloc")["machete:qweight"]
        freed = [int(key.split(":")[1]) for op, key, _ in events if op == "free" and key.startswith("param:")]
        assert [params[i] for i in freed] == [prepacked]


def test_dummy_folders_gptq_module_list_is_sized_as_the_published_checkpoint():
    """model_dirs.dummy_config names modules_in_block_to_quantize so that vLLM quantizes the Linears of a folder
    without safetensors; the planner sizes that folder's config as it sizes the published one."""
    from planner.memory import weights_bytes
    from playground.model_dirs import GPTQ_DENSE_MODULES, dummy_config

    published = catalog_config("qwen2.5-7b-instruct-gptq-int4")
    written = dummy_config(published)
    assert parse_quantization_config(written, "qwen2").only == tuple(GPTQ_DENSE_MODULES)
    spec = model_spec(written)
    assert all(spec.quant.quantizes(name) for name, *_ in spec.params.linears)
    assert weights_bytes(spec, dtype_bytes=2, quantization=None) == weights_bytes(
        model_spec(published), dtype_bytes=2, quantization=None)
