"""The physical limit of a throughput point: how fast the hardware could possibly go.

A decode step reads every weight and each running sequence's KV cache from HBM once, and does
2 FLOPs per active parameter per sequence plus attention; prefill does 2 FLOPs per active
parameter per prompt token. vLLM's chunked prefill runs prefill tokens inside decode steps, so
the two phases overlap: a wave of requests takes at least max(all bytes / bandwidth, all FLOPs /
tensor-core rate). Memory-bound at low concurrency, compute-bound at high.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.gpus import GpuSpec
from planner.memory import KV_CACHE_DTYPES, kv_bytes_per_token, resolve_dtype, weights_bytes
from planner.models import DTYPE_BYTES, ModelSpec


@dataclass(frozen=True)
class RooflinePoint:
    output_tok_s: float  # the ceiling on output tokens per second
    decode_step_s: float  # the shortest possible decode step at this concurrency
    bound: str  # "memory" or "compute": which limit sets the wave's time


def roofline(model: ModelSpec, gpu: GpuSpec, *, concurrency: int, input_len: int, output_len: int,
             quantization: str | None = None, kv_cache_dtype: str = "auto", dtype: str = "auto",
             bandwidth_gb_s: float | None = None, kv_tokens: int | None = None) -> RooflinePoint:
    """Upper bound on output tok/s for waves of ``concurrency`` requests of input_len + output_len.
    With ``kv_tokens`` (the engine's KV-cache size) only as many requests as the cache holds run at
    once, as vLLM's scheduler does."""
    if kv_tokens is not None:
        concurrency = max(1, min(concurrency, kv_tokens // (input_len + output_len)))
    bandwidth = (bandwidth_gb_s or gpu.bandwidth_gb_s) * 1e9
    if bandwidth <= 0 or gpu.fp16_tflops <= 0:
        raise ValueError(f"{gpu.name}: bandwidth and tensor-core rate are unknown, so there is no roofline")
    act_dtype = resolve_dtype(model, dtype)
    act_bytes = DTYPE_BYTES[act_dtype]
    kv_bytes = KV_CACHE_DTYPES[kv_cache_dtype] or act_bytes
    rate = (gpu.fp8_tflops if quantization == "fp8" and gpu.fp8_tflops else gpu.fp16_tflops) * 1e12
    weights = weights_bytes(model, dtype_bytes=act_bytes, quantization=quantization)
    weights -= model.embedding_params * act_bytes  # the embedding is gathered, not read whole
    mean_context = input_len + output_len / 2
    kv_read = concurrency * mean_context * kv_bytes_per_token(model, kv_bytes=kv_bytes)
    step_bytes = weights + kv_read
    attention_flops = 4 * model.num_layers * model.num_heads * model.head_dim * mean_context
    step_flops = concurrency * (2 * model.active_params_per_token + attention_flops)
    memory_s, compute_s = step_bytes / bandwidth, step_flops / rate
    prefill_flops = concurrency * input_len * 2 * model.active_params_per_token
    wave_s = max(output_len * memory_s, (prefill_flops + output_len * step_flops) / rate)
    bound = "memory" if output_len * memory_s >= wave_s else "compute"
    return RooflinePoint(concurrency * output_len / wave_s, max(memory_s, compute_s), bound)
