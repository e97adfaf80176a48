"""Fit questions answered with plan(): largest batch, longest context, largest model, and how to
split one GPU between a 16-bit and an FP8 engine resident at once."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from planner.errors import PlannerError, check_range
from planner.gpus import GpuSpec
from planner.memory import BLOCK_SIZE, CALIBRATION, MemoryPlan, cudagraph_bytes, plan
from planner.models import ModelSpec, catalog_names, model_spec


def _blocks_for(context_len: int) -> int:
    return math.ceil(context_len / BLOCK_SIZE)


def max_batch_size(model: ModelSpec, gpu: GpuSpec, *, context_len: int | None = None, **engine_args) -> int:
    """How many sequences of ``context_len`` tokens (prompt + output; default max_model_len) run at
    once: whole KV blocks per sequence, capped by max_num_seqs. 0 if the engine does not fit."""
    p = plan(model, gpu, **engine_args)
    context_len = p.max_model_len if context_len is None else context_len
    check_range("context_len", context_len, 1, p.max_model_len)
    if not p.fits:
        return 0
    return min(p.max_num_seqs, p.num_gpu_blocks // _blocks_for(context_len))


def max_context_len(model: ModelSpec, gpu: GpuSpec, *, batch_size: int = 1, **engine_args) -> int:
    """The longest context each of ``batch_size`` concurrent sequences can have. The KV budget does
    not depend on max_model_len (chunked prefill keeps the profile at max_num_batched_tokens), so
    this plans once at the model's full length and divides the blocks."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise PlannerError("batch_size", f"{batch_size!r} must be a whole number")
    check_range("batch_size", batch_size, 1, 1 << 20)
    limit = engine_args.pop("max_model_len", None) or model.max_position_embeddings
    p = plan(model, gpu, **engine_args, max_model_len=model.max_position_embeddings, _advise=False)
    if p.kv_cache_bytes <= 0 or batch_size > p.max_num_seqs:
        return 0
    return min(limit, (p.num_gpu_blocks // batch_size) * BLOCK_SIZE)


def largest_model(gpu: GpuSpec, **engine_args) -> list[MemoryPlan]:
    """Plans of the catalog models that fit on ``gpu`` with these engine arguments, biggest first.
    max_model_len defaults to 4096 (or the model's own limit, if shorter)."""
    wanted_len = engine_args.pop("max_model_len", None) or 4096
    fitting = []
    for name in catalog_names():
        spec = model_spec(name)
        try:
            p = plan(spec, gpu, **engine_args, max_model_len=min(wanted_len, spec.max_position_embeddings))
        except PlannerError:
            continue  # e.g. a tensor_parallel_size this model's heads do not divide
        if p.fits:
            fitting.append((spec.total_params, p))
    return [p for _, p in sorted(fitting, key=lambda item: -item[0])]


@dataclass(frozen=True)
class SideBySideSplit:
    """gpu_memory_utilization for each of two engines started one after the other on one GPU."""

    baseline_utilization: float
    fp8_utilization: float
    baseline: MemoryPlan
    fp8: MemoryPlan
    fits: bool
    reason: str


def _min_utilization(model: ModelSpec, gpu: GpuSpec, blocks_needed: int, **engine_args) -> float | None:
    """Smallest utilization (in steps of 0.01) whose plan fits and has ``blocks_needed`` KV blocks."""
    for hundredths in range(1, 101):
        p = plan(model, gpu, gpu_memory_utilization=hundredths / 100, _advise=False, **engine_args)
        if p.fits and p.num_gpu_blocks >= blocks_needed:
            return hundredths / 100
    return None


def side_by_side_split(model: ModelSpec, gpu: GpuSpec, *, batch_size: int = 1, context_len: int = 2048,
                       fp8_kv_cache: bool = False, dtype: str = "auto", max_model_len: int | None = None,
                       tensor_parallel_size: int = 1, max_num_seqs: int | None = None,
                       max_num_batched_tokens: int | None = None, headroom: float = 0.04) -> SideBySideSplit:
    """Split one GPU between a 16-bit engine and an FP8 engine resident at the same time so that each
    holds ``batch_size`` sequences of ``context_len`` tokens. The slack beyond both minimums is shared
    equally. Each process also pays for its own CUDA context outside its request, and ``headroom``
    (a fraction of the GPU) is kept free."""
    check_range("batch_size", batch_size, 1, 1 << 20)
    check_range("headroom", headroom, 0, 0.5)
    max_model_len = max_model_len or min(model.max_position_embeddings, max(context_len, 2048))
    check_range("context_len", context_len, 1, max_model_len)
    common = dict(dtype=dtype, max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
                  max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
    fp8_args = dict(common, quantization="fp8", kv_cache_dtype="fp8" if fp8_kv_cache else "auto")
    if fp8_kv_cache and gpu.is_hopper and dtype in ("float16", "half"):
        raise PlannerError("dtype", "fp8_kv_cache on Hopper needs dtype='bfloat16' in vLLM 0.25 (FlashAttention-3)")
    empty_gpu = replace(gpu, free_bytes=None)
    blocks = batch_size * _blocks_for(context_len)
    need_base = _min_utilization(model, empty_gpu, blocks, **common)
    need_fp8 = _min_utilization(model, empty_gpu, blocks, **fp8_args)
    # Each engine also holds, outside its request, a CUDA context and the CUDA graphs it captures
    # after the KV cache; the second engine is checked against what the first leaves free.
    outside = 2 * (CALIBRATION.cuda_context_bytes + cudagraph_bytes(model))
    usable = (gpu.available_bytes - outside) / gpu.cuda_total_bytes - headroom
    if need_base is None or need_fp8 is None or need_base + need_fp8 > usable:
        base_util = fp8_util = math.floor(max(usable, 0.02) / 2 * 100) / 100
        fits = False
        missing = "the 16-bit engine" if need_base is None else "the FP8 engine" if need_fp8 is None else "both engines"
        reason = (f"{missing} cannot hold {batch_size} x {context_len} tokens in {usable:.2f} of the GPU "
                  f"(needs {need_base} + {need_fp8}); lower batch_size or context_len, or use a larger GPU")
    else:
        slack = usable - need_base - need_fp8
        base_util = math.floor((need_base + slack / 2) * 100) / 100
        fp8_util = math.floor((need_fp8 + slack / 2) * 100) / 100
        fits = True
        reason = f"both fit: 16-bit at {base_util}, FP8 at {fp8_util} (minimums {need_base} and {need_fp8})"
    baseline = plan(model, empty_gpu, gpu_memory_utilization=base_util, **common)
    fp8 = plan(model, empty_gpu, gpu_memory_utilization=fp8_util, **fp8_args)
    return SideBySideSplit(base_util, fp8_util, baseline, fp8, fits and baseline.fits and fp8.fits, reason)
