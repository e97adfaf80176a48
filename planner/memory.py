"""vLLM's start-up memory arithmetic, predicted before anything is loaded.

It mirrors ``Worker.determine_available_memory`` in vllm/v1/worker/gpu_worker.py (vLLM 0.25):

    requested  = ceil(total_memory * gpu_memory_utilization)      (total_memory: CUDA's, not NVML's)
    kv_memory  = requested - weights - torch_peak_increase - non_torch_increase - cudagraph_estimate
    num_blocks = kv_memory // (block_size * kv_bytes_per_token)        (kv_cache_utils.get_num_blocks)

The terms vLLM measures at start-up (activation peak, non-torch memory; the CUDA-graph estimate is
0 in vLLM 0.25's V2 model runner) are modelled from the shapes with coefficients fitted to H100
measurements (CALIBRATION, below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from planner.errors import PlannerError, check_range
from planner.gpus import GIB, GpuSpec
from planner.models import DTYPE_BYTES, ModelSpec

DTYPES = {"auto", "float16", "half", "bfloat16", "float32", "float"}
QUANTIZATIONS = (None, "fp8")
KV_CACHE_DTYPES = {"auto": None, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
BLOCK_SIZE = 16  # vllm/config/cache.py CacheConfig.DEFAULT_BLOCK_SIZE


@dataclass(frozen=True)
class Calibration:
    """Coefficients of the terms vLLM measures at start-up, fitted to the H100 runs recorded in
    tests/data/vllm_kv_measurements.json (vLLM 0.25.1); docs/planner.md shows the fit."""

    # Torch peak of the profile run per batched token, in activation-dtype elements: the MLP's
    # gate_up and SiLU-and-mul outputs (3 x intermediate) plus this many hidden-size tensors.
    # Fitted: Qwen2.5-7B, Llama-3.1-8B and Llama-2-13B (hidden 3584/4096/5120) at 16,384 tokens.
    hidden_copies_per_token: float = 2.94
    # The sampler dummy run: max_num_seqs x vocab float32 logits (the peak only if larger).
    sampler_logit_copies: float = 1.0
    fixed_peak_bytes: int = int(0.085 * GIB)
    # "non-torch forward increase memory": 0.22 GiB in every single-GPU run measured.
    non_torch_bytes: int = int(0.22 * GIB)
    non_torch_bytes_per_extra_gpu: int = int(0.25 * GIB)  # NCCL buffers; not measured here (one GPU)
    # vLLM 0.25 runs the V2 model runner, whose profile_cudagraph_memory() returns 0, so nothing is
    # subtracted for graphs: they are captured after the KV cache is allocated, outside the requested
    # memory. They still occupy the GPU (0.67 to 1.20 GiB measured), which matters when two engines
    # share it.
    cudagraph_bytes_per_layer: int = int(0.03 * GIB)
    # "Model loading took X GiB" exceeds the bytes of the tensors the model holds by a
    # model-dependent amount (benchmarks/inspect_weights.py counted the tensors): the measured
    # excess per (catalog model, quantization), GiB. Unmeasured models get 0.
    weight_load_excess_gib: tuple[tuple[str, str, float], ...] = (
        ("llama-2-7b", "fp8", 0.22), ("qwen2.5-14b", "fp8", 0.935), ("qwen2.5-7b", "none", 0.10),
        ("qwen2.5-7b", "fp8", 0.08), ("llama-2-13b", "none", 0.05), ("llama-3-8b", "fp8", 0.03),
        ("mistral-7b", "fp8", 0.03),
    )
    # A CUDA context per process, outside vLLM's request (for two engines resident at once).
    cuda_context_bytes: int = int(0.55 * GIB)

    def weight_excess_bytes(self, model: str, quantization: str | None) -> int:
        key = quantization or "none"
        return next((int(g * GIB) for m, q, g in self.weight_load_excess_gib if m == model and q == key), 0)


CALIBRATION = Calibration()


@dataclass(frozen=True)
class MemoryPlan:
    """What vLLM will do with one GPU (per GPU under tensor parallelism). Bytes throughout."""

    model: str
    gpu: str
    quantization: str | None
    kv_cache_dtype: str
    dtype: str
    gpu_memory_utilization: float
    max_model_len: int
    tensor_parallel_size: int
    max_num_seqs: int
    max_num_batched_tokens: int
    total_bytes: int
    cuda_total_bytes: int
    requested_bytes: int
    weights_bytes: int
    activation_peak_bytes: int
    non_torch_bytes: int
    cudagraph_bytes: int  # captured after the KV cache: outside the requested memory
    kv_cache_bytes: int
    kv_bytes_per_token: int
    block_size: int
    num_gpu_blocks: int
    fits: bool
    reason: str
    warnings: tuple[str, ...] = ()
    advice: tuple[str, ...] = field(default=())

    @property
    def kv_tokens(self) -> int:
        """vLLM's 'GPU KV cache size: N tokens' (num_gpu_blocks x block_size)."""
        return self.num_gpu_blocks * self.block_size

    @property
    def kv_concurrency(self) -> float:
        """vLLM's 'Maximum concurrency for max_model_len tokens per request'."""
        return self.kv_tokens / self.max_model_len

    @property
    def max_concurrent_seqs(self) -> int:
        """Sequences of max_model_len tokens that run at once: KV blocks, capped by max_num_seqs."""
        blocks_per_seq = math.ceil(self.max_model_len / self.block_size)
        return min(self.max_num_seqs, self.num_gpu_blocks // blocks_per_seq)

    @property
    def non_kv_bytes(self) -> int:
        return self.weights_bytes + self.activation_peak_bytes + self.non_torch_bytes

    def breakdown_gib(self) -> dict[str, float]:
        """The requested memory split into its parts, in GiB (for tables and charts)."""
        parts = {
            "weights": self.weights_bytes,
            "activation peak": self.activation_peak_bytes,
            "non-torch": self.non_torch_bytes,
            "KV cache": max(self.kv_cache_bytes, 0),
            "CUDA graphs (after the KV cache)": self.cudagraph_bytes,
            "driver-reserved": self.total_bytes - self.cuda_total_bytes,
            "free": max(self.cuda_total_bytes - self.requested_bytes - self.cudagraph_bytes, 0),
        }
        return {k: v / GIB for k, v in parts.items()}


def resolve_dtype(model: ModelSpec, dtype: str) -> str:
    if not isinstance(dtype, str) or dtype.lower() not in DTYPES:
        if isinstance(dtype, str) and "fp8" in dtype.lower():
            raise PlannerError(
                "dtype",
                f"{dtype!r} is not a vLLM dtype (vLLM rejects dtype='fp8'). FP8 weights are "
                "quantization='fp8'; an FP8 KV cache is kv_cache_dtype='fp8'.",
            )
        raise PlannerError("dtype", f"{dtype!r} is not one of {sorted(DTYPES)}")
    dtype = {"half": "float16", "float": "float32"}.get(dtype.lower(), dtype.lower())
    if dtype == "auto":
        # vLLM's 'auto' follows the checkpoint, except that float32 checkpoints run in bfloat16.
        return "bfloat16" if model.torch_dtype == "float32" else model.torch_dtype
    return dtype


def default_batch_limits(gpu: GpuSpec) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) that vLLM's LLM class picks for this GPU
    (EngineArgs.get_batch_defaults: >= 70 GiB and not an A100 gets the larger pair)."""
    if gpu.total_bytes >= 70 * GIB and "a100" not in gpu.name.lower():
        return 1024, 16384
    return 256, 8192


def _pad_vocab(vocab: int, tp: int) -> int:
    # vocab_parallel_embedding.pad_vocab_size: padded to a multiple of 64, then split over ranks.
    padded = math.ceil(vocab / 64) * 64
    return math.ceil(padded / tp)


def weights_bytes(model: ModelSpec, *, dtype_bytes: int, quantization: str | None, tp: int = 1,
                  calibration: Calibration = CALIBRATION) -> int:
    """Bytes of weights on one GPU: 'Model loading took X GiB' in vLLM's log."""
    vocab_rows = _pad_vocab(model.vocab_size, tp)
    embed = vocab_rows * model.hidden_size
    lm_head = 0 if model.tie_word_embeddings else embed
    rotary_cache = model.max_position_embeddings * model.head_dim  # RotaryEmbedding.cos_sin_cache
    sixteen_bit = (embed + lm_head + model.norm_params + rotary_cache) * dtype_bytes
    linear = model.linear_params // tp
    excess = calibration.weight_excess_bytes(model.name, quantization)
    if quantization == "fp8":
        # Online FP8: Linear weights in float8_e4m3fn with one float32 scale per (fused) tensor;
        # embeddings, lm_head and norms stay 16-bit.
        scales = model.num_layers * 4 * 4
        return linear + scales + sixteen_bit + excess
    return linear * dtype_bytes + sixteen_bit + excess


def activation_peak_bytes(model: ModelSpec, *, act_bytes: int, max_num_batched_tokens: int,
                          max_num_seqs: int, tp: int = 1, calibration: Calibration = CALIBRATION) -> int:
    """Increase of torch's peak allocation during vLLM's profile run."""
    tokens = max_num_batched_tokens
    experts = model.experts_per_token if model.num_experts else 1
    mlp = tokens * experts * 3 * model.intermediate_size // tp * act_bytes
    hidden = tokens * calibration.hidden_copies_per_token * model.hidden_size * act_bytes
    forward = mlp + hidden
    sampler = max_num_seqs * model.vocab_size * 4 * calibration.sampler_logit_copies
    return int(max(forward, sampler) + calibration.fixed_peak_bytes)


def cudagraph_bytes(model: ModelSpec, *, enforce_eager: bool = False, calibration: Calibration = CALIBRATION) -> int:
    """GPU memory the engine's CUDA graphs take after its KV cache is allocated (none when eager)."""
    return 0 if enforce_eager else model.num_layers * calibration.cudagraph_bytes_per_layer


def kv_bytes_per_token(model: ModelSpec, *, kv_bytes: int, tp: int = 1) -> int:
    """2 (K and V) x layers x KV heads on this GPU x head_dim x bytes per element."""
    kv_heads_here = max(1, model.num_kv_heads // tp)
    return 2 * model.num_layers * kv_heads_here * model.head_dim * kv_bytes


def _check_tp(model: ModelSpec, tp) -> int:
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise PlannerError("tensor_parallel_size", f"{tp!r} must be a positive integer")
    if model.num_heads % tp:
        raise PlannerError(
            "tensor_parallel_size",
            f"{tp} does not divide the {model.num_heads} attention heads of {model.name}",
        )
    kv = model.num_kv_heads
    if kv % tp and tp % kv:
        valid = [n for n in (1, 2, 4, 8, 16) if model.num_heads % n == 0 and (kv % n == 0 or n % kv == 0)]
        raise PlannerError(
            "tensor_parallel_size",
            f"{tp} does not divide the {kv} KV heads of {model.name}; valid sizes: {valid}",
        )
    return tp


def plan(model: ModelSpec, gpu: GpuSpec, *, quantization: str | None = None, kv_cache_dtype: str = "auto",
         dtype: str = "auto", gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
         tensor_parallel_size: int = 1, max_num_seqs: int | None = None,
         max_num_batched_tokens: int | None = None, enforce_eager: bool = False,
         calibration: Calibration = CALIBRATION, _advise: bool = True) -> MemoryPlan:
    """Predict what vLLM's start-up will report for ``model`` on ``gpu`` with these engine arguments.

    Keyword arguments are vLLM's engine arguments of the same names. Raises PlannerError for
    arguments vLLM would reject; returns a plan with ``fits=False`` (and advice) for settings
    that are valid but run out of memory.
    """
    if not isinstance(model, ModelSpec):
        raise PlannerError("model", f"expected a ModelSpec (see planner.model_spec), got {type(model).__name__}")
    if not isinstance(gpu, GpuSpec):
        raise PlannerError("gpu", f"expected a GpuSpec (see planner.gpu_preset / read_gpus), got {type(gpu).__name__}")
    check_range("gpu_memory_utilization", gpu_memory_utilization, 0, 1, low_inclusive=False)
    if quantization in ("none", "None", ""):
        quantization = None
    if quantization not in QUANTIZATIONS:
        raise PlannerError("quantization", f"{quantization!r} is not modelled; use None (16-bit) or 'fp8'")
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise PlannerError("kv_cache_dtype", f"{kv_cache_dtype!r} is not one of {sorted(KV_CACHE_DTYPES)}")
    resolved_dtype = resolve_dtype(model, dtype)
    tp = _check_tp(model, tensor_parallel_size)
    if max_model_len is None:
        max_model_len = model.max_position_embeddings
    if isinstance(max_model_len, bool) or not isinstance(max_model_len, int):
        raise PlannerError("max_model_len", f"{max_model_len!r} must be a whole number of tokens")
    check_range("max_model_len", max_model_len, 1, model.max_position_embeddings)
    default_seqs, default_tokens = default_batch_limits(gpu)
    max_num_seqs = default_seqs if max_num_seqs is None else max_num_seqs
    max_num_batched_tokens = default_tokens if max_num_batched_tokens is None else max_num_batched_tokens
    check_range("max_num_seqs", max_num_seqs, 1, 1 << 20)
    check_range("max_num_batched_tokens", max_num_batched_tokens, 1, 1 << 24)

    act_bytes = DTYPE_BYTES[resolved_dtype]
    kv_bytes = KV_CACHE_DTYPES[kv_cache_dtype] or act_bytes
    requested = math.ceil(gpu.cuda_total_bytes * gpu_memory_utilization)
    weights = weights_bytes(model, dtype_bytes=act_bytes, quantization=quantization, tp=tp, calibration=calibration)
    peak = activation_peak_bytes(model, act_bytes=act_bytes, max_num_batched_tokens=max_num_batched_tokens,
                                 max_num_seqs=max_num_seqs, tp=tp, calibration=calibration)
    non_torch = calibration.non_torch_bytes + (tp > 1) * calibration.non_torch_bytes_per_extra_gpu
    graphs = cudagraph_bytes(model, enforce_eager=enforce_eager, calibration=calibration)
    kv_memory = requested - weights - peak - non_torch
    per_token = kv_bytes_per_token(model, kv_bytes=kv_bytes, tp=tp)
    num_blocks = max(kv_memory, 0) // (BLOCK_SIZE * per_token)
    kv_tokens = num_blocks * BLOCK_SIZE

    warnings = []
    if kv_bytes == 1 and resolved_dtype == "float16" and gpu.is_hopper:
        warnings.append(
            "kv_cache_dtype='fp8' with dtype='float16' fails on Hopper in vLLM 0.25 "
            "(FlashAttention-3 needs bfloat16): use dtype='bfloat16'."
        )
    if quantization == "fp8" and not gpu.supports_fp8_tensor_cores:
        warnings.append(f"{gpu.name} has no FP8 tensor cores: vLLM stores FP8 weights but computes in 16-bit (Marlin W8A16).")

    fits, reason = True, f"{kv_tokens:,} KV tokens, {kv_tokens / max_model_len:.1f} sequences of {max_model_len:,} tokens"
    if gpu.free_bytes is not None and gpu.free_bytes < requested:
        fits = False
        reason = (f"vLLM refuses to start: {gpu.free_bytes / GIB:.2f} GiB free is less than the "
                  f"{requested / GIB:.2f} GiB that gpu_memory_utilization={gpu_memory_utilization} requests")
    elif weights >= requested:
        fits = False
        reason = f"the weights alone ({weights / GIB:.2f} GiB) exceed the requested {requested / GIB:.2f} GiB"
    elif kv_memory <= 0:
        fits = False
        reason = (f"nothing is left for the KV cache: weights, activations and graphs take "
                  f"{(requested - kv_memory) / GIB:.2f} GiB of the requested {requested / GIB:.2f} GiB")
    elif requested + graphs > gpu.available_bytes:
        fits = False
        reason = (f"the CUDA graphs (about {graphs / GIB:.2f} GiB, captured after the KV cache) do not fit beside "
                  f"the requested {requested / GIB:.2f} GiB: lower gpu_memory_utilization or set enforce_eager")
    elif kv_tokens < max_model_len:
        fits = False
        reason = (f"the KV cache holds {kv_tokens:,} tokens, fewer than one request of "
                  f"max_model_len={max_model_len:,}; vLLM refuses to start")

    result = MemoryPlan(
        model=model.name, gpu=gpu.name, quantization=quantization, kv_cache_dtype=kv_cache_dtype,
        dtype=resolved_dtype, gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
        tensor_parallel_size=tp, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
        total_bytes=gpu.total_bytes, cuda_total_bytes=gpu.cuda_total_bytes, requested_bytes=requested, weights_bytes=weights,
        activation_peak_bytes=peak, non_torch_bytes=non_torch, cudagraph_bytes=graphs,
        kv_cache_bytes=kv_memory, kv_bytes_per_token=per_token, block_size=BLOCK_SIZE,
        num_gpu_blocks=num_blocks, fits=fits, reason=reason, warnings=tuple(warnings),
    )
    if not fits and _advise:
        result = replace(result, advice=_advice(model, gpu, result, calibration, enforce_eager))
    return result


def _advice(model: ModelSpec, gpu: GpuSpec, failed: MemoryPlan, calibration: Calibration,
            enforce_eager: bool) -> tuple[str, ...]:
    """The smallest single changes (then pairs) that make the plan fit, each with its KV tokens."""
    args = dict(quantization=failed.quantization, kv_cache_dtype=failed.kv_cache_dtype, dtype=failed.dtype,
                gpu_memory_utilization=failed.gpu_memory_utilization, max_model_len=failed.max_model_len,
                tensor_parallel_size=failed.tensor_parallel_size, max_num_seqs=failed.max_num_seqs,
                max_num_batched_tokens=failed.max_num_batched_tokens, enforce_eager=enforce_eager)
    candidates: list[tuple[str, dict]] = []
    if gpu.free_bytes is not None and gpu.free_bytes < failed.requested_bytes:
        util = math.floor((gpu.free_bytes - failed.cudagraph_bytes) / gpu.cuda_total_bytes * 100) / 100
        if util > 0:
            candidates.append((f"gpu_memory_utilization={util}", {"gpu_memory_utilization": util}))
    elif failed.gpu_memory_utilization < 0.95:
        candidates.append(("gpu_memory_utilization=0.95", {"gpu_memory_utilization": 0.95}))
    if failed.quantization is None:
        candidates.append(("quantization='fp8'", {"quantization": "fp8"}))
    if KV_CACHE_DTYPES[failed.kv_cache_dtype] != 1:
        fp8_kv = {"kv_cache_dtype": "fp8"}
        if failed.dtype == "float16" and gpu.is_hopper:
            fp8_kv["dtype"] = "bfloat16"
        candidates.append(("kv_cache_dtype='fp8'" + (", dtype='bfloat16'" if "dtype" in fp8_kv else ""), fp8_kv))
    if failed.kv_tokens > 0 and failed.kv_tokens < failed.max_model_len:
        candidates.append((f"max_model_len={failed.kv_tokens}", {"max_model_len": failed.kv_tokens}))
    for tp in (2, 4, 8):
        if tp > failed.tensor_parallel_size:
            candidates.append((f"tensor_parallel_size={tp} ({tp} GPUs)", {"tensor_parallel_size": tp}))
    advice = []
    for label, change in candidates:
        try:
            trial = plan(model, gpu, **{**args, **change}, calibration=calibration, _advise=False)
        except PlannerError:
            continue
        if trial.fits:
            advice.append(f"{label}: fits, {trial.kv_tokens:,} KV tokens")
    if not advice and failed.quantization is None:
        try:
            both = plan(model, gpu, **{**args, "quantization": "fp8", "kv_cache_dtype": "fp8", "dtype": "bfloat16"},
                        calibration=calibration, _advise=False)
            if both.fits:
                advice.append(f"quantization='fp8', kv_cache_dtype='fp8', dtype='bfloat16': fits, {both.kv_tokens:,} KV tokens")
        except PlannerError:
            pass
    if not advice:
        advice.append("no single change fits this GPU: choose a smaller model (planner.largest_model) or more GPUs")
    return tuple(advice)
