"""Fit questions answered with plan(): largest batch, longest context, largest model, the three
precisions side by side, the smallest gpu_memory_utilization for a workload (the inverse of plan),
and how to split one GPU between engines resident at once (16-bit and FP8, or any N columns)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from planner.engine_config import EngineConfig
from planner.errors import PlannerError, check_range
from planner.gpus import GIB, GpuSpec
from planner.memory import BLOCK_SIZE, CALIBRATION, MemoryPlan, cudagraph_bytes, engine_config, plan
from planner.models import ModelSpec, catalog_names, model_spec

PRECISIONS = {
    "fp16": dict(quantization=None, kv_cache_dtype="auto"),
    "fp8": dict(quantization="fp8", kv_cache_dtype="auto"),
    "fp8-kv8": dict(quantization="fp8", kv_cache_dtype="fp8"),
}


def _whole(name: str, value, low: int = 1, high: int = 1 << 24) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlannerError(name, f"{value!r} must be a whole number")
    return check_range(name, value, low, high)


def max_batch_size(model, gpu: GpuSpec, *, context_len: int | None = None, **engine_args) -> int:
    """How many sequences of ``context_len`` tokens (prompt + output; default max_model_len) fit in
    the KV cache at once (the conservative end of the plan's ±), capped by max_num_seqs. 0 if the
    engine does not fit."""
    p = plan(model, gpu, advise=False, **engine_args)
    context_len = p.max_model_len if context_len is None else _whole("context_len", context_len)
    check_range("context_len", context_len, 1, p.max_model_len)
    if not p.fits:
        return 0
    if p.state_groups:  # hybrid: each sequence also holds its recurrent state, whatever its length
        return min(p.max_num_seqs, p.usable_blocks // p.blocks_for(1, context_len))
    return min(p.max_num_seqs, (p.kv_tokens - p.kv_tokens_spread) // (math.ceil(context_len / BLOCK_SIZE) * BLOCK_SIZE))


def max_context_len(model, gpu: GpuSpec, *, batch_size: int = 1, **engine_args) -> int:
    """The longest context each of ``batch_size`` concurrent sequences can have (0 if none)."""
    _whole("batch_size", batch_size, 1, 1 << 20)
    spec, config = engine_config(model, **engine_args)
    limit = config.max_model_len or spec.max_position_embeddings
    p = plan(spec, gpu, advise=False, **{**_fields(config), "max_model_len": limit})
    if p.kv_cache_bytes <= 0 or batch_size > p.max_num_seqs:
        return 0
    if p.state_groups and p.attention_groups:
        per_sequence = p.usable_blocks // batch_size - p.state_groups
        return max(0, min(limit, per_sequence // p.attention_groups * p.block_size))
    if p.state_groups:  # attention-free: the state does not grow with the context
        return limit if p.usable_blocks >= batch_size * p.state_groups else 0
    low = p.kv_tokens - p.kv_tokens_spread
    return min(limit, (low // batch_size) // BLOCK_SIZE * BLOCK_SIZE)


def _fields(config: EngineConfig) -> dict:
    from dataclasses import fields

    return {f.name: getattr(config, f.name) for f in fields(EngineConfig) if f.name != "model"}


def largest_model(gpu: GpuSpec, **engine_args) -> list[MemoryPlan]:
    """Plans of the catalog models that fit on ``gpu`` with these engine arguments, biggest first.
    max_model_len defaults to 4096 (or the model's own limit, if shorter)."""
    wanted_len = engine_args.pop("max_model_len", None) or 4096
    fitting = []
    for name in catalog_names():
        spec = model_spec(name)
        try:
            p = plan(spec, gpu, advise=False, **engine_args, max_model_len=min(wanted_len, spec.max_position_embeddings))
        except PlannerError:
            continue  # e.g. a tensor_parallel_size this model's heads do not divide
        if p.fits:
            fitting.append((spec.total_params, p))
    return [p for _, p in sorted(fitting, key=lambda item: -item[0])]


@dataclass(frozen=True)
class PrecisionRow:
    """One precision of compare_precisions: its plan and the two fit answers."""

    precision: str
    plan: MemoryPlan
    largest_batch: int  # at context_len
    longest_context: int  # at batch_size
    context_len: int = 0  # the context the largest batch is for (context_len, capped at the plan's max_model_len)
    batch_size: int = 0  # the batch the longest context is for


def checkpoint_precisions(spec: ModelSpec) -> dict[str, dict]:
    """The precisions one checkpoint can run at. A 16-bit checkpoint: PRECISIONS. A pre-quantized one keeps its
    own weights (vLLM refuses another --quantization for most methods), so its choices are the KV cache only."""
    if spec.quant is None:
        return PRECISIONS
    own = "checkpoint (FP8 KV)" if spec.quant.kv_cache_fp8 else "checkpoint"
    other = ("checkpoint, 16-bit KV", dict(quantization=None, kv_cache_dtype="bfloat16")) if spec.quant.kv_cache_fp8 \
        else ("checkpoint + FP8 KV", dict(quantization=None, kv_cache_dtype="fp8"))
    return {own: dict(quantization=None, kv_cache_dtype="auto"), other[0]: other[1]}


def precision_args(spec: ModelSpec, precision: str) -> dict:
    """Engine arguments of one PRECISIONS name for this checkpoint: a pre-quantized checkpoint keeps its weights
    (fp16 and fp8 both mean its own scheme) and fp8-kv8 adds an FP8 KV cache."""
    if precision not in PRECISIONS:
        raise PlannerError("precision", f"{precision!r} is not one of {', '.join(PRECISIONS)}")
    if spec.quant is None:
        return PRECISIONS[precision]
    return dict(quantization=None, kv_cache_dtype="fp8" if precision == "fp8-kv8" else "auto")


def compare_precisions(model, gpu: GpuSpec, *, context_len: int = 4096, batch_size: int = 32,
                       **engine_args) -> list[PrecisionRow]:
    """FP16, FP8 and FP8 + FP8 KV cache side by side for the same engine arguments; for a pre-quantized
    checkpoint, its own scheme with and without an FP8 KV cache (checkpoint_precisions)."""
    spec, base = engine_config(model, **engine_args)
    rows = []
    for name, precision in checkpoint_precisions(spec).items():
        config = replace(base, **precision)
        if config.fp8_kv and gpu.is_hopper and config.dtype == "float16":
            config = replace(config, dtype="bfloat16")  # the one Hopper rule, as EngineConfig.for_gpu states it
        p = plan(spec, gpu, **_fields(config))
        ctx = min(context_len, p.max_model_len)
        rows.append(PrecisionRow(name, p, max_batch_size(spec, gpu, context_len=ctx, **_fields(config)),
                                 max_context_len(spec, gpu, batch_size=batch_size, **_fields(config)), ctx, batch_size))
    return rows


@dataclass(frozen=True)
class NeedAnswer:
    """The inverse of plan: the smallest gpu_memory_utilization that holds a workload."""

    fits: bool
    plan: MemoryPlan  # the plan at that utilization (or at 0.99 when nothing fits)
    concurrency: int
    context_len: int
    reason: str

    @property
    def serve_command(self) -> str:
        return self.plan.config.command("serve")

    @property
    def kv_cache_memory_bytes(self) -> int:
        """The KV cache the workload needs, per GPU, in whole blocks: what --kv-cache-memory-bytes pins (vLLM
        divides it by a block's bytes, one page in each layer of a group, into the blocks it schedules)."""
        p = self.plan
        return p.blocks_for(self.concurrency, self.context_len) * p.kv_page_bytes * p.kv_layers_per_group

    @property
    def pinned_serve_command(self) -> str:
        """The same engine with its KV cache pinned to what the workload needs, instead of measured at start."""
        return replace(self.plan.config, kv_cache_memory_bytes=self.kv_cache_memory_bytes).command("serve")


def min_utilization_for(model, gpu: GpuSpec, *, concurrency: int, context_len: int, **engine_args) -> NeedAnswer:
    """Smallest gpu_memory_utilization (in steps of 0.01) at which ``concurrency`` sequences of
    ``context_len`` tokens fit in the KV cache at once (the conservative end of the ±), with
    max_model_len = context_len and max_num_seqs = concurrency pinned, as the printed flags say."""
    _whole("concurrency", concurrency, 1, 1 << 20)
    _whole("context_len", context_len)
    spec, config = engine_config(model, **engine_args)
    config = replace(config, max_model_len=context_len, max_num_seqs=max(concurrency, 1))
    needed_tokens = concurrency * math.ceil(context_len / BLOCK_SIZE) * BLOCK_SIZE
    last = None
    for hundredths in range(5, 100):
        trial = replace(config, gpu_memory_utilization=hundredths / 100)
        p = plan(spec, gpu, advise=False, **_fields(trial))
        last = p
        enough = (p.usable_blocks >= p.blocks_for(concurrency, context_len) if p.state_groups
                  else p.kv_tokens - p.kv_tokens_spread >= needed_tokens)
        if p.fits and enough:
            return NeedAnswer(True, p, concurrency, context_len,
                              f"gpu_memory_utilization={p.gpu_memory_utilization} gives {p.kv_tokens:,} KV tokens "
                              f"(± {p.kv_tokens_spread:,}) for {concurrency} x {context_len:,} = {needed_tokens:,} needed")
    p = plan(spec, gpu, **_fields(replace(config, gpu_memory_utilization=0.99)))
    short = max(0, needed_tokens - max(last.kv_tokens, 0)) * max(p.kv_bytes_per_token, 1)
    return NeedAnswer(False, p, concurrency, context_len,
                      f"{concurrency} x {context_len:,} tokens do not fit on {gpu.name} even at 0.99 "
                      f"(short by about {short / GIB:.2f} GiB of KV cache)")


@dataclass(frozen=True)
class SideBySideSplit:
    """gpu_memory_utilization for each of two engines started one after the other on one GPU."""

    baseline_utilization: float
    fp8_utilization: float
    baseline: MemoryPlan
    fp8: MemoryPlan
    fits: bool
    reason: str


def _min_utilization(spec: ModelSpec, gpu: GpuSpec, batch_size: int, context_len: int, config: EngineConfig) -> float | None:
    for hundredths in range(1, 101):
        p = plan(spec, gpu, advise=False, **_fields(replace(config, gpu_memory_utilization=hundredths / 100)))
        if p.fits and p.num_gpu_blocks >= p.blocks_for(batch_size, context_len):
            return hundredths / 100
    return None


@dataclass(frozen=True)
class ResidentSplit:
    """gpu_memory_utilization for each of N engines (the comparison's columns) started one after the
    other on one GPU, and each one's plan at its share."""

    labels: tuple[str, ...]
    utilizations: tuple[float, ...]
    plans: tuple[MemoryPlan, ...]
    fits: bool
    reason: str


def resident_split(columns, gpu: GpuSpec, *, batch_size: int = 1, context_len: int = 2048,
                   headroom: float = 0.04) -> ResidentSplit:
    """Split one GPU between the engines in ``columns`` ((label, ModelSpec, EngineConfig) each: every
    column its own checkpoint, weights and KV need) so that each holds ``batch_size`` sequences of
    ``context_len`` tokens. Columns left on dtype 'auto' share the activation dtype a column's FP8 KV
    on Hopper forces (bfloat16), so the comparison is of weights and KV, not of activations."""
    check_range("batch_size", batch_size, 1, 1 << 20)
    check_range("headroom", headroom, 0, 0.5)
    if not columns:
        raise PlannerError("columns", "give at least one engine to place on the GPU")
    labels, specs, configs = [], [], []
    for label, spec, config in columns:
        max_model_len = config.max_model_len or min(spec.max_position_embeddings, max(context_len, 2048))
        check_range("context_len", context_len, 1, max_model_len)
        config, _ = replace(config, max_model_len=max_model_len).for_gpu(is_hopper=gpu.is_hopper)
        labels.append(label), specs.append(spec), configs.append(config)
    forced = {c.dtype for c in configs if c.fp8_kv and c.dtype != "auto"}
    if len(forced) == 1:
        configs = [replace(c, dtype=next(iter(forced))) if c.dtype == "auto" else c for c in configs]
    empty_gpu = replace(gpu, free_bytes=None)
    needs = [_min_utilization(spec, empty_gpu, batch_size, context_len, c) for spec, c in zip(specs, configs)]
    # Each engine also holds, outside its request, a CUDA context and the CUDA graphs it captures
    # after the KV cache; each later engine is checked against what the earlier ones leave free.
    outside = sum(CALIBRATION.cuda_context_bytes + cudagraph_bytes(spec) for spec in specs)
    usable = (gpu.available_bytes - outside) / gpu.cuda_total_bytes - headroom
    n = len(configs)
    if None in needs or sum(needs) > usable:
        utils = [math.floor(max(usable, 0.02) / n * 100) / 100] * n
        fits = False
        alone = [label for label, need in zip(labels, needs) if need is None]
        missing = (" and ".join(alone) if alone else "the two engines together" if n == 2 else
                   f"the {n} engines together")
        known = ", ".join(f"{label} {need}" for label, need in zip(labels, needs) if need is not None)
        reason = (f"{missing} cannot hold {batch_size} x {context_len} tokens in {usable:.2f} of the GPU"
                  + (f" (each needs at least: {known})" if known else "")
                  + "; lower batch_size or context_len, use fewer columns, or give each engine its own GPU")
    else:
        slack = usable - sum(needs)
        utils = [math.floor((need + slack / n) * 100) / 100 for need in needs]
        fits = True
        reason = ("all fit: " + ", ".join(f"{label} at {u}" for label, u in zip(labels, utils))
                  + " (minimums " + ", ".join(str(need) for need in needs) + ")")
    plans = tuple(plan(spec, empty_gpu, **_fields(replace(c, gpu_memory_utilization=u)))
                  for spec, c, u in zip(specs, configs, utils))
    return ResidentSplit(tuple(labels), tuple(utils), plans, fits and all(p.fits for p in plans), reason)


def side_by_side_split(model, gpu: GpuSpec, *, batch_size: int = 1, context_len: int = 2048,
                       fp8_kv_cache: bool = False, headroom: float = 0.04, **engine_args) -> SideBySideSplit:
    """Split one GPU between a 16-bit engine and an FP8 engine resident at the same time so that each
    holds ``batch_size`` sequences of ``context_len`` tokens (the default two columns of resident_split)."""
    spec, base = engine_config(model, **engine_args)
    if spec.quant is not None:
        raise PlannerError("model", f"{spec.name} is a pre-quantized checkpoint ({spec.quant.label()}): it has no "
                                    "16-bit and online-FP8 pair to split the GPU between; plan each checkpoint as "
                                    "its own engine (resident_split: one column per checkpoint)")
    fp8 = replace(base, quantization="fp8", kv_cache_dtype="fp8" if fp8_kv_cache else "auto")
    split = resident_split([("16-bit", spec, base), ("FP8", spec, fp8)], gpu, batch_size=batch_size,
                           context_len=context_len, headroom=headroom)
    (base_util, fp8_util), (baseline, fp8_plan) = split.utilizations, split.plans
    reason = split.reason
    if split.fits:
        reason = f"both fit: 16-bit at {base_util}, FP8 at {fp8_util}" + reason[reason.index(" (minimums"):]
    return SideBySideSplit(base_util, fp8_util, baseline, fp8_plan, split.fits, reason)
