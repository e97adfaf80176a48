"""The physical limit of a throughput point: how fast the hardware could possibly go.

A decode step reads, on each GPU, its share of every weight the step touches and each running
sequence's KV cache from HBM once, and does 2 FLOPs per active parameter per sequence plus
attention; prefill does 2 FLOPs per active parameter per prompt token. vLLM's chunked prefill runs
prefill inside decode steps, so a wave of requests takes at least max(bytes / bandwidth, FLOPs /
tensor-core rate). Under tensor parallelism each GPU reads 1/TP of the split weights at its own
bandwidth, and each layer adds one all-reduce of the step's hidden states (two for attention + MLP).

What a decode step reads: the LM head whole (also when it is the tied embedding matrix); the
embedding only as gathered rows when it is not tied; the rotary cos/sin cache only at the step's
positions; of an MoE layer's E routed experts, the
expected number touched by B sequences choosing k each: E * (1 - (1 - k/E)^B).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.engine_config import EngineConfig
from planner.gpus import GpuSpec
from planner.memory import (
    KV_CACHE_BYTES, engine_config, kv_bytes_per_token, moe_layers, resolve_dtype, routed_expert_stack_bytes,
    weights_bytes,
)
from planner.models import DTYPE_BYTES, ModelSpec

NVLINK_GB_S = 450.0  # H100 SXM NVLink 4, one direction: the all-reduce ceiling between GPUs


@dataclass(frozen=True)
class RooflinePoint:
    output_tok_s: float  # the ceiling on output tokens per second
    decode_step_s: float  # the shortest possible decode step at this concurrency
    bound: str  # "memory" or "compute": which limit sets the wave's time


def experts_touched(num_experts: int, experts_per_token: int, batch: int) -> float:
    """Expected distinct experts of one layer that ``batch`` tokens route to (uniform routing)."""
    if not num_experts:
        return 0.0
    return num_experts * (1 - (1 - experts_per_token / num_experts) ** batch)


def routed_expert_bytes(model: ModelSpec, config: EngineConfig, *, batch: int) -> float:
    """Of decode_step_bytes_parts' weights, the routed experts' share: the stacks of the experts ``batch`` tokens
    route to (16-bit, online FP8 or the checkpoint's own scheme), what the fused-MoE kernels read."""
    if not model.params.experts:
        return 0.0
    touched = experts_touched(model.num_experts, model.experts_per_token, batch) / model.num_experts
    return touched * _expert_stacks(model, config)


def _expert_stacks(model: ModelSpec, config: EngineConfig) -> int:
    return routed_expert_stack_bytes(model, dtype_bytes=DTYPE_BYTES[resolve_dtype(model, config.dtype)],
                                     quantization=config.quantization, tp=config.tensor_parallel_size)


def decode_step_bytes(model: ModelSpec, config: EngineConfig, *, batch: int, mean_context: float) -> float:
    """Bytes one GPU reads from HBM in one decode step of ``batch`` sequences."""
    return sum(decode_step_bytes_parts(model, config, batch=batch, mean_context=mean_context))


def decode_step_bytes_parts(model: ModelSpec, config: EngineConfig, *, batch: int,
                            mean_context: float) -> tuple[float, float]:
    """(weights, KV cache): what one GPU's GEMMs and its attention kernels read in one decode step."""
    act_bytes = DTYPE_BYTES[resolve_dtype(model, config.dtype)]
    kv_bytes = KV_CACHE_BYTES[config.kv_cache_dtype] or act_bytes
    tp = config.tensor_parallel_size
    stored = weights_bytes(model, dtype_bytes=act_bytes, quantization=config.quantization, tp=tp)
    if not model.tie_word_embeddings:
        # The embedding is gathered (batch rows), not read whole; a tied matrix is read as the LM head.
        stored -= model.embedding_params * act_bytes / tp
        stored += batch * model.hidden_size * act_bytes
    # RotaryEmbedding.cos_sin_cache is on the GPU for every position but a step reads only its rows.
    stored -= (model.max_position_embeddings - batch) * model.rotary_dim * act_bytes
    if model.params.experts:  # only the experts the batch routes to are read
        stored -= _expert_stacks(model, config) - routed_expert_bytes(model, config, batch=batch)
    kv = batch * mean_context * kv_bytes_per_token(model, kv_bytes=kv_bytes, tp=tp)
    return stored, kv


def roofline(model: ModelSpec | EngineConfig, gpu: GpuSpec, *, concurrency: int, input_len: int, output_len: int,
             bandwidth_gb_s: float | None = None, kv_tokens: int | None = None, **engine_args) -> RooflinePoint:
    """Upper bound on output tok/s for waves of ``concurrency`` requests of input_len + output_len.
    With ``kv_tokens`` (the engine's KV-cache size) only as many requests as the cache holds run at
    once, as vLLM's scheduler does."""
    spec, config = engine_config(model, **engine_args)
    if kv_tokens is not None:
        concurrency = max(1, min(concurrency, kv_tokens // (input_len + output_len)))
    bandwidth = (bandwidth_gb_s or gpu.bandwidth_gb_s) * 1e9
    if bandwidth <= 0 or gpu.fp16_tflops <= 0:
        raise ValueError(f"{gpu.name}: bandwidth and tensor-core rate are unknown, so there is no roofline")
    tp = config.tensor_parallel_size
    rate = (gpu.fp8_tflops if config.quantization == "fp8" and gpu.fp8_tflops else gpu.fp16_tflops) * 1e12
    mean_context = input_len + output_len / 2
    step_bytes = decode_step_bytes(spec, config, batch=concurrency, mean_context=mean_context)
    memory_s = step_bytes / bandwidth
    if tp > 1:  # ring all-reduce of the step's hidden states, twice per layer
        act_bytes = DTYPE_BYTES[resolve_dtype(spec, config.dtype)]
        reduce_bytes = 2 * spec.num_layers * concurrency * spec.hidden_size * act_bytes * 2 * (tp - 1) / tp
        memory_s += reduce_bytes / (NVLINK_GB_S * 1e9)
    attention_flops = 4 * spec.num_layers * spec.num_heads * spec.head_dim * mean_context
    step_flops = concurrency * (2 * spec.active_params_per_token + attention_flops) / tp
    compute_s = step_flops / rate
    prefill_flops = concurrency * input_len * 2 * spec.active_params_per_token / tp
    wave_s = max(output_len * memory_s, (prefill_flops + output_len * step_flops) / rate)
    bound = "memory" if output_len * memory_s >= wave_s else "compute"
    return RooflinePoint(concurrency * output_len / wave_s, max(memory_s, compute_s), bound)
