"""Architectures sized from their published config.json (assets/models.json), numbers checked by hand."""

from planner import gpu_preset, model_spec, plan
from planner.models import DEFAULT_MAX_LEN

H200 = gpu_preset("h200")


def test_llama_4_scouts_chunked_layers_are_sized_as_vllm_sizes_them_by_default():
    spec = model_spec("llama-4-scout")
    # vLLM 0.25.1 turns the hybrid KV-cache manager off for chunked local attention: all 48 layers full,
    # 2 (K and V) x 8 KV heads x 128 x 2 bytes each
    assert len(spec.layers) == 48 and {layer.kind for layer in spec.layers} == {"full"}
    p = plan(spec, H200, quantization="fp8", max_model_len=8192)
    assert p.kv_bytes_per_token == 48 * 2 * 8 * 128 * 2 == 196_608
    assert any("chunked local attention" in w and "8,192" in w for w in p.warnings)
    assert p.fits


def test_llama_4_scout_has_16_experts_one_per_token_and_a_16_bit_router():
    spec = model_spec("llama-4-scout")
    assert (spec.num_experts, spec.experts_per_token) == (16, 1)
    assert spec.params.experts == 48 * 16 * 3 * 5120 * 8192  # gate, up and down of every routed expert
    assert spec.params.sixteen_bit_replicated >= 48 * 16 * 5120  # the routers (quant_config=None in llama4.py)
    # the shared expert and attention are touched by every token; one routed expert of 16
    assert spec.active_params_per_token == spec.total_params - spec.params.experts * 15 // 16


def test_falcon_mamba_is_planned_as_attention_free_state():
    spec = model_spec("falcon-mamba-7b")
    assert spec.layers == () and len(spec.state_layers) == 64 and spec.num_heads == 0
    # conv state 3 x 8192 and SSM state 8192 x 16 per layer, bfloat16 (MambaStateShapeCalculator.mamba1_state_shape)
    assert spec.state_layers[0].state_bytes(2) == (3 * 8192 + 8192 * 16) * 2 == 311_296
    p = plan(spec, H200)
    assert p.max_model_len == DEFAULT_MAX_LEN and p.kv_bytes_per_token == 0
    assert p.num_gpu_blocks == p.kv_cache_bytes // (311_296 * 64)  # one page per layer per sequence
    assert any("attention-free" in w for w in p.warnings)


def test_falcon_mamba_splits_its_state_over_tensor_parallel_ranks():
    spec = model_spec("falcon-mamba-7b")
    assert spec.state_layers[0].state_bytes(2, tp=2) == 311_296 // 2


def test_a_mamba_config_without_heads_gets_no_misleading_field_message():
    config = {"model_type": "falcon_mamba", "hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512,
              "state_size": 16, "conv_kernel": 4, "vocab_size": 1000}
    assert model_spec(config).state_layers  # no "num_attention_heads must be a positive integer"


def test_qwen3_next_fits_one_h200_in_fp8_with_its_gated_delta_net_state():
    spec = model_spec("qwen3-next-80b-a3b")
    assert len(spec.layers) == 12 and len(spec.state_layers) == 36  # full attention every 4th layer
    gdn = spec.state_layers[0]
    # conv over 2 x 16 x 128 + 32 x 128 channels (kernel 4: 3 kept), state 32 x 128 x 128, bfloat16
    assert gdn.state_bytes(2) == (3 * (2 * 16 * 128 + 32 * 128) + 32 * 128 * 128) * 2
    p = plan(spec, H200, quantization="fp8", max_model_len=8192)
    assert p.kv_bytes_per_token == 12 * 2 * 2 * 256 * 2
    assert p.fits and not plan(spec, H200, max_model_len=8192).fits  # 16-bit: 80 B parameters do not fit


def test_gemma_3_keeps_five_sliding_layers_per_full_one():
    spec = model_spec("gemma-3-27b")
    kinds = [layer.kind for layer in spec.layers]
    assert kinds.count("sliding") == 52 and kinds.count("full") == 10 and spec.sliding_window == 1024
    assert spec.tie_word_embeddings
    p = plan(spec, H200, max_model_len=8192)
    assert p.kv_bytes_per_token == 62 * 2 * 16 * 128 * 2


def test_a_multimodal_model_is_planned_and_printed_as_vllm_runs_its_language_model_alone():
    """The planner sizes Gemma-3's language model; vLLM would also build its SigLIP tower and profile an
    encoder cache unless told --language-model-only. The plan carries the flag so that the printed command
    starts the engine the plan sized (and a dummy folder without an image processor can start at all)."""
    from planner import EngineConfig, gpu_preset, plan

    h200 = gpu_preset("h200")
    gemma = plan("gemma-3-27b", h200, max_model_len=8192)
    assert gemma.config.language_model_only
    assert "--language-model-only" in gemma.config.command("serve")
    assert any("--language-model-only" in w for w in gemma.warnings)
    assert all(s.config.language_model_only for s in gemma.advice)
    assert EngineConfig.parse_command(gemma.config.command("serve")).language_model_only
    text = plan("llama-3-8b", h200, max_model_len=8192)
    assert not text.config.language_model_only and "--language-model-only" not in text.config.command("serve")
    assert "language_model_only" not in text.config.engine_kwargs()  # an older vLLM never sees the argument
    assert gemma.config.engine_kwargs()["language_model_only"] is True


def test_a_flat_multimodal_config_is_planned_as_its_language_model_alone():
    """Qwen2-VL publishes its text fields at the top level beside vision_config, with no text_config."""
    from planner import model_spec, plan

    flat = {"model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"], "hidden_size": 1536,
            "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
            "intermediate_size": 8960, "vocab_size": 151936, "max_position_embeddings": 32768,
            "tie_word_embeddings": True,
            "vision_config": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16}}
    spec = model_spec(flat)
    assert spec.is_multimodal and (spec.num_layers, spec.hidden_size) == (28, 1536)
    assert "--language-model-only" in plan(spec, H200, max_model_len=4096).config.command("serve")
    text_only = {k: v for k, v in flat.items() if k != "vision_config"}
    text_only["model_type"], text_only["architectures"] = "qwen2", ["Qwen2ForCausalLM"]
    assert not model_spec(text_only).is_multimodal


def test_a_published_config_plans_without_transformers_warnings_on_the_terminal(capfd):
    """Llama-4-Scout's config.json sets equal rope frequency factors, which transformers warns about; the plan's
    output is the planner's own lines only."""
    from transformers.utils import logging

    before = logging.get_verbosity()
    model_spec("llama-4-scout")
    assert "high_freq_factor" not in capfd.readouterr().err
    assert logging.get_verbosity() == before  # the caller's own transformers logging is left as it was


def test_glm_4_5_air_fp8_sizes_its_channel_fp8_experts_and_keeps_the_routers_out():
    spec = model_spec("glm-4.5-air-fp8")
    assert (spec.num_experts, spec.experts_per_token) == (128, 8)
    # 45 MoE layers (first_k_dense_replace 1): gate, up and down of 128 experts of width 1,408
    assert spec.params.experts == 45 * 128 * 3 * 4096 * 1408
    assert spec.quant.quantizes("model.layers.3.mlp.experts.0.up_proj")
    assert not spec.quant.quantizes("model.layers.3.mlp.gate") and not spec.quant.quantizes("lm_head")
    p = plan(spec, H200, gpu_memory_utilization=0.95, max_model_len=8192, enforce_eager=True)
    assert p.fits and 100 * 2**30 < p.weights_bytes < 102 * 2**30  # vLLM loaded 100.97 GiB on an H200
