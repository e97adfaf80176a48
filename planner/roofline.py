"""The physical limit of a throughput point: how fast the hardware could possibly go.

A decode step reads every weight and each running sequence's KV cache from HBM once
(bytes / bandwidth) and does 2 FLOPs per active parameter per sequence plus attention
(FLOPs / tensor-core rate); the step takes at least the larger of the two. Prefill is
compute-bound: 2 FLOPs per active parameter per prompt token. Memory-bound at low concurrency,
compute-bound at high.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.gpus import GpuSpec
from planner.memory import KV_CACHE_DTYPES, kv_bytes_per_token, resolve_dtype, weights_bytes
from planner.models import DTYPE_BYTES, ModelSpec


@dataclass(frozen=True)
class RooflinePoint:
    output_tok_s: float  # the ceiling on output tokens per second
    decode_step_s: float
    bound: str  # "memory" or "compute" (of the decode step)


def roofline(model: ModelSpec, gpu: GpuSpec, *, concurrency: int, input_len: int, output_len: int,
             quantization: str | None = None, kv_cache_dtype: str = "auto", dtype: str = "auto",
             bandwidth_gb_s: float | None = None) -> RooflinePoint:
    """Upper bound on output tok/s for waves of ``concurrency`` requests of input_len + output_len."""
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
    step = max(memory_s, compute_s)
    prefill_s = concurrency * input_len * 2 * model.active_params_per_token / rate
    wave_s = prefill_s + output_len * step
    return RooflinePoint(concurrency * output_len / wave_s, step, "memory" if memory_s >= compute_s else "compute")
