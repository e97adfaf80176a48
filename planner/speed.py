"""How fast vLLM will decode on a GPU, before anything runs: the roofline times what vLLM measured here.

One decode step of B sequences reads, on each GPU, the weights it touches and every running sequence's KV
cache (planner/roofline.py, decode_step_bytes_parts) and does 2 FLOPs per active parameter per sequence.
The measured steps sit above that ideal in a way one line describes in every run this project recorded:

    step_s = max(weight_factor[GEMMs] x weight bytes / bandwidth
                 + moe_weight_factor[GEMMs] x routed-expert bytes / bandwidth, GEMM FLOPs / (rate x compute_efficiency))
             + kv_factor[KV dtype] x head_width_factor[head dims] x KV bytes / min(bandwidth, kv_bandwidth_cap)
             + step_overhead_s + layer_overhead[GEMMs] x layers + sequence_overhead_s x B
             + moe_layer_overhead[GEMMs] x MoE layers + mla_layer_overhead x MLA layers
             + tensor-parallel all-reduces

(weight bytes here are those outside the routed experts; a dense model has no MoE terms, a GQA model no MLA one.)

The GEMMs (16-bit, or FP8 with its activation quantization) and the attention kernels get their own factors;
the attention kernels do not reach an H200's 4.8 TB/s (the H100 and H200 have the same 132 SMs, so the same
bytes in flight), hence the fitted cap on the bandwidth they read the KV cache at. The fixed costs: per step the
scheduler, the sampler and the gaps between CUDA graphs; per layer the dozen kernels each layer launches, whatever
they read (FP8 adds its activation-quantization kernels, an MoE layer its router, alignment and expert kernels);
per running sequence its share of the step's bookkeeping. TTFT is one prefill: the prompt's FLOPs over the datasheet rate times
compute_efficiency, plus a fixed cost per request. The coefficients are fitted by benchmarks/fit_speed.py
on the fitted rows of benchmarks/speed_runs.py; the ± is the largest relative residual of those rows, by
regime. Held-out runs (another shape, tensor parallelism, runs recorded later) are checked by
benchmarks/speed_accuracy.py and never fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import median

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from planner.fit import PRECISIONS, max_batch_size
from planner.gpus import GpuSpec
from planner.memory import default_batch_limits, engine_config, mla_layers, moe_layers, plan, resolve_dtype
from planner.models import DTYPE_BYTES, ModelSpec
from planner.quantization import kernel as quantized_kernel
from planner.roofline import NVLINK_GB_S, decode_step_bytes_parts, routed_expert_bytes

VLLM_VERSION = "0.25.1"  # the vLLM whose measured runs the coefficients are fitted to
MEASURED_BATCH = 256  # the largest batch among the fitted runs
# MoE (docs/speed.md): the routed experts' GEMMs get their own factors and each MoE layer a fixed cost (the router,
# top-k, alignment and fused-MoE kernels), fitted to one model (Qwen3-30B-A3B, one H200, dummy weights under vLLM's
# uniform routing simulator); the cost of a latent-attention (MLA) layer is fitted to DeepSeek-V2-Lite. The other
# MoE models are held out (benchmarks/speed_accuracy.py); their largest decode error, not the fitted models', is an
# MoE prediction's ±.
MOE_MEASURED_SPREAD = 0.16
MOE_NOTE = ("MoE: the expert terms are fitted to one MoE model (Qwen3-30B-A3B on an H200, experts drawn uniformly "
            "at random) and the latent-attention (MLA) layer's cost to DeepSeek-V2-Lite; four others held out "
            "(GLM-4.7-Flash with MLA among them) were within 16% (the farthest, GLM-4.7-Flash in FP8 at batch 8), the "
            "± here. A trained router is less even: at batch > 1 it may read fewer experts a step, so real decode can "
            "be faster than this")

# Attention head sizes: the dense fit's heads are 128 wide. FlashAttention-3's decode kernels are built per head size,
# and 96-wide heads read the KV cache 1.7x slower a byte (Phi-3-mini, docs/speed.md: the same at every batch and in
# both GEMM families; Phi-3-mini reshaped to 24 heads of 128, the same KV bytes, ran as predicted): a width with its
# own KV factor is fitted to its rows alone (SpeedCalibration.kv_head_dim_factors). Held out at 128's factors,
# SmolLM2-1.7B's 64-wide heads and Gemma-2's 256 met the bar. Other widths are unmeasured: a batched point takes
# Phi-3-mini's error before it had its factor (47%) as its ±.
MEASURED_HEAD_DIMS = (64, 128, 256)
HEAD_DIM_MEASURED_SPREAD = 0.47
HEAD_DIM_NOTE = ("attention heads of {head_dim} dims: never measured here (64, 128 and 256 read the KV cache alike; "
                 "Phi-3-mini's 96-wide heads 1.7x slower a byte, a factor of their own, and 46% slow at batch 64 "
                 "before it), so batches above 1 carry that ± here")
FITTED_HEAD_DIM_NOTE = ("attention heads of {head_dim} dims: the KV cache reads at {factor:g}x the time a byte of "
                        "128-wide heads, a factor fitted to {models} alone with a 16-bit KV cache (an FP8 one "
                        "was not measured at this width; docs/speed.md)")


# Engines too small for the GPU: Llama-3.2-1B's steps would take 1.1-1.9 ms from the GPU's side, and it ran 1.8 ms at
# batch 1 and 2.0-4.0 ms at 32 and 64 in both precisions (one H200, 2026-12-03, docs/speed.md): there the GPU waits on
# vLLM's own work per step (scheduling, sampling, the outputs of every running request), which grows with the batch
# and not with the model's bytes. That work is a line, SpeedCalibration.host_step_s + host_sequence_s x batch, fitted
# to Llama-3.2-1B's rows alone; no step is predicted shorter than it (a point it sets is "host"-bound), and an engine
# whose batch-1 step from the GPU's side is under it says so. That work is the host's CPU, not the GPU: held out,
# one run of an engine this small missed by up to 45% (Qwen3-0.6B's FP8 engine at batch 8, 2026-12-04: it ran 0.61x
# its 16-bit engine's speed there, in all three waves, where the line gives both the same; before it, Qwen2.5-0.5B
# 16-bit at batch 8 in its five-repeat sweep, 44%), and the same engine ran up to 1.5x slower on the host of one
# lease of the H200 than on another's (Qwen2.5-0.5B 16-bit at batch 1: 597 tok/s, then 395-513 in five waves). The
# ± such an engine carries is that held-out error of one run, what a user running it once meets, not the fitted
# rows' residual.
HOST_MEASURED_SPREAD = 0.45
HOST_MEASURED_BATCH = 64  # the largest batch among the rows the line is fitted to
HOST_EXTRAPOLATED_NOTE = ("from batch {batch:,} the step is vLLM's own work per step as the line extrapolates it: the "
                          "rows it is fitted to went to batch 64 only")
HOST_REACHED_NOTE = ("from batch {batch:,} the step is vLLM's own work per step, {base:.2f} ms + {per_request:.0f} µs "
                     "per running request (the line fitted to {models}), longer there than the GPU's: that work is "
                     "the host's CPU, so FP8 gains nothing at those batches and can lose, and they carry the ± of "
                     "held-out engines this small, {spread:.0%}")
HOST_BOUND_NOTE = ("from the GPU's side a step here would take under {floor:.2f} ms, what vLLM's own work per step "
                   "took for the smallest engine measured ({models}: {base:.2f} ms + {per_request:.0f} µs per running "
                   "request, a line fitted to its runs), so the step is that line wherever it is the longer one (the "
                   "same tok/s per request at several batches) and FP8 gains nothing there and can lose (Qwen3-0.6B's "
                   "FP8 engine ran 0.61-0.79x its 16-bit one). That work is "
                   "the host's CPU, not the GPU: the same engine ran up to 1.5x slower on one host of an H200 than on "
                   "another, and held-out engines this small missed by up to {spread:.0%}, the ± here")


@dataclass(frozen=True)
class SpeedCalibration:
    """The fitted coefficients of the decode-step and TTFT lines (benchmarks/fit_speed.py)."""

    weight_factor_16bit: float = 1.17  # GEMM time / (weight bytes / bandwidth), 16-bit kernels
    weight_factor_fp8: float = 1.12  # the same for FP8 GEMMs (activation quantization included)
    kv_factor_16bit: float = 1.07  # attention time / (KV bytes / min(bandwidth, cap)), 16-bit KV cache
    kv_factor_fp8: float = 1.43  # the same with an FP8 KV cache
    kv_bandwidth_cap_gb_s: float = 6000.0
    step_overhead_s: float = 0.00025
    layer_overhead_16bit_s: float = 2.8e-05  # per layer per step: its kernels' fixed latency, 16-bit GEMMs
    layer_overhead_fp8_s: float = 4.2e-05  # the same with FP8 GEMMs (their activation quantization kernels)
    sequence_overhead_s: float = 9.4e-06  # per running sequence per step
    compute_efficiency_16bit: float = 0.65  # prefill: FLOPs / (datasheet rate x time)
    compute_efficiency_fp8: float = 0.5
    ttft_overhead_s: float = 0.012
    # vLLM's custom all-reduce on NVLink for a decode step's few KiB: one-shot, latency-bound. Not fitted (no
    # tensor-parallel run is in the fitted rows); 10 us a call is the order NCCL and vLLM report for small messages.
    allreduce_latency_s: float = 10e-6
    # MoE: the routed experts' GEMMs (fused-MoE kernels) over their bytes read, and the fixed cost an MoE layer adds
    # beyond a dense one (benchmarks/fit_speed.py, from the MoE fitted rows alone)
    moe_weight_factor_16bit: float = 1.1
    moe_weight_factor_fp8: float = 1.15
    moe_layer_overhead_16bit_s: float = 2.3e-05
    moe_layer_overhead_fp8_s: float = 2.8e-05
    # MLA (DeepSeek's latent attention): the fixed cost a latent-attention layer adds beyond a GQA one, both GEMM
    # families (the latent's norm and the absorbed up-projections, batched GEMMs before and after the MLA kernel),
    # fitted to the MLA rows alone with every other term fixed
    mla_layer_overhead_s: float = 1.6e-05
    # KV reads by attention-head width, beyond the 128-wide heads of the dense fit: (head dims, factor) pairs, each
    # fitted to the rows of that width alone with every other term fixed; and the models those rows are of
    kv_head_dim_factors: tuple[tuple[int, float], ...] = ((96, 2.0),)
    kv_head_dim_models: tuple[tuple[int, str], ...] = ((96, "phi-3-mini"),)
    head_dim_spread: float = 0.11  # the largest relative residual of those rows: the ± of a model of such a width
    # vLLM's own work per decode step (HOST_BOUND_NOTE): a step is never shorter than host_step_s + host_sequence_s
    # x batch, fitted to the rows of engines too small for their GPU alone (host_models); host_spread their largest
    # relative residual
    host_step_s: float = 0.0018
    host_sequence_s: float = 1.9e-05
    host_models: str = "llama-3.2-1b"
    host_spread: float = 0.26
    # a pre-quantized checkpoint's GEMMs where vLLM runs them in a kernel of its own (planner.quantization.kernel):
    # (kernel, factor) pairs replacing weight_factor for the non-expert weights, each fitted to that kernel's rows
    # alone with every other term fixed; the checkpoints they come from; their rows' largest relative residual
    gemm_kernel_factors: tuple[tuple[str, float], ...] = (
        ("DeepGemmFp8BlockScaledMMKernel", 1.3), ("MacheteLinearKernel", 2.8))
    gemm_kernel_models: tuple[tuple[str, str], ...] = (
        ("DeepGemmFp8BlockScaledMMKernel", "llama-3.1-8b-instruct-fp8-block"),
        ("MacheteLinearKernel", "llama-3.1-8b-instruct-w4a16"))
    gemm_kernel_spread: float = 0.19
    # requests of a wave in the engine's first step (prefill_schedule): the rest are still on their way to it
    wave_first_step_requests: int = 2
    # the largest relative residual of the fitted rows: batch 1, batch >= 8, TTFT
    decode_spread_batch1: float = 0.07
    decode_spread_batched: float = 0.09
    ttft_spread: float = 0.34
    source: str = f"fitted to this project's H100 and H200 runs (vLLM {VLLM_VERSION})"

    def weight_factor(self, kernels: str) -> float:
        return self.weight_factor_fp8 if kernels == "fp8" else self.weight_factor_16bit

    def moe_weight_factor(self, kernels: str) -> float:
        return self.moe_weight_factor_fp8 if kernels == "fp8" else self.moe_weight_factor_16bit

    def layer_overhead_s(self, kernels: str) -> float:
        return self.layer_overhead_fp8_s if kernels == "fp8" else self.layer_overhead_16bit_s

    def moe_layer_overhead_s(self, kernels: str) -> float:
        return self.moe_layer_overhead_fp8_s if kernels == "fp8" else self.moe_layer_overhead_16bit_s

    def kv_factor(self, fp8_kv: bool) -> float:
        return self.kv_factor_fp8 if fp8_kv else self.kv_factor_16bit

    def kv_head_dim_factor(self, head_dim: int) -> float:
        return dict(self.kv_head_dim_factors).get(head_dim, 1.0)

    def gemm_factor(self, kernels: str, kernel: str | None) -> float:
        """The GEMMs' time a weight byte: the checkpoint kernel's own factor where one is fitted, else the family's."""
        return dict(self.gemm_kernel_factors).get(kernel or "", self.weight_factor(kernels))

    def compute_efficiency(self, kernels: str) -> float:
        return self.compute_efficiency_fp8 if kernels == "fp8" else self.compute_efficiency_16bit

    def host_floor_s(self, batch: int) -> float:
        """The shortest step vLLM's own per-step work allows at ``batch`` running requests."""
        return self.host_step_s + self.host_sequence_s * batch


SPEED_CALIBRATION = SpeedCalibration()


@dataclass(frozen=True)
class SpeedPoint:
    """One batch size: the decode step and what it gives."""

    batch: int
    step_s: float
    bound: str  # "memory", "compute" or "host" (SpeedCalibration.host_floor_s): which term sets the step
    spread: float  # relative ± (from the fit's residuals)

    @property
    def decode_tok_s(self) -> float:
        """Tokens per second each request sees (1 / TPOT)."""
        return 1 / self.step_s

    @property
    def output_tok_s(self) -> float:
        """Output tokens per second of all ``batch`` requests together while they decode."""
        return self.batch / self.step_s


@dataclass(frozen=True)
class SpeedPrediction:
    model: str
    gpu: str
    precision: str  # fp16 / fp8 / fp8-kv8, or the checkpoint's own scheme
    kernels: str  # "16bit" or "fp8": which fitted factors apply
    config: EngineConfig
    points: tuple[SpeedPoint, ...]  # batch 1, 8, 64 (those that fit) and the largest that fits
    largest_batch: int
    prompt_len: int
    output_len: int
    ttft_s: float
    ttft_spread: float
    calibration_source: str
    notes: tuple[str, ...] = ()

    def at(self, batch: int) -> SpeedPoint | None:
        return next((p for p in self.points if p.batch == batch), None)

    def as_dict(self) -> dict:
        return {"model": self.model, "gpu": self.gpu, "precision": self.precision, "kernels": self.kernels,
                "largest_batch": self.largest_batch, "prompt_len": self.prompt_len, "output_len": self.output_len,
                "ttft_s": self.ttft_s, "ttft_spread": self.ttft_spread, "calibration": self.calibration_source,
                "vllm_version": VLLM_VERSION, "notes": list(self.notes),
                "points": [{"batch": p.batch, "decode_tok_s": p.decode_tok_s, "output_tok_s": p.output_tok_s,
                            "step_s": p.step_s, "bound": p.bound, "spread": p.spread} for p in self.points]}


def kernels_for(model: ModelSpec, config: EngineConfig) -> str:
    """Which GEMMs run: online FP8, or a checkpoint that quantizes its activations too (W8A8: FP8 or INT8 GEMMs),
    uses the FP8 factors; 16-bit and weight-only checkpoints (W4A16, Marlin), whose GEMMs run in 16-bit on
    their own bytes, use the 16-bit ones."""
    quant = getattr(model, "quant", None)  # the checkpoint's quantization_config, as the planner parsed it
    if config.quantization == "fp8" or (quant is not None and quant.weight in ("fp8", "int8") and quant.activations):
        return "fp8"
    return "16bit"


# A pre-quantized checkpoint's GEMM kernel. Held out at the FP8 line's factors (one H200, Llama-3.1-8B-Instruct's
# shape): CUTLASS's per-tensor FP8 (FP8-dynamic) and INT8 W8A8 kernels within the bar; those are the line's. The others
# read their bytes at a pace of their own: W4A16 in Machete 1.3x faster than 16-bit at batch 1 where its bytes say
# 1.9x, DeepGEMM's block FP8 23% slow at batch 1 and about 10% from batch 8 (each held out, then fitted:
# SpeedCalibration.gemm_kernel_factors). A kernel never measured carries Machete's miss before its factor.
LINE_KERNELS = frozenset({"CutlassFP8ScaledMMLinearKernel", "CutlassInt8ScaledMMLinearKernel"})
UNMEASURED_KERNEL_SPREAD = 0.54
UNMEASURED_KERNEL_NOTE = ("this checkpoint's GEMMs run in {kernel}, never measured here: its bytes are read at the "
                          "{family} line's pace, and such kernels missed that by up to 54% before a factor of their own "
                          "(Machete W4A16 at batch 64), the ± here")
FITTED_KERNEL_NOTE = ("this checkpoint's GEMMs run in {kernel}: reading its weights takes {factor:g}x their bytes / "
                      "bandwidth ({line:g}x for the {family} line's GEMMs), a factor fitted to {models} alone "
                      "(one H200; docs/speed.md); the ± is those rows' largest error")


def checkpoint_kernel(model: ModelSpec, gpu: GpuSpec) -> str | None:
    """The GEMM kernel vLLM picks for a pre-quantized checkpoint's Linear layers on ``gpu`` (None: not a checkpoint,
    or one vLLM refuses there)."""
    quant = getattr(model, "quant", None)
    if quant is None:
        return None
    try:
        return quantized_kernel(quant, gpu.compute_capability)
    except PlannerError:
        return None


def own_gemm_kernel(model: ModelSpec, gpu: GpuSpec) -> str | None:
    """The kernel of a checkpoint whose GEMMs are not the 16-bit or FP8 line's (LINE_KERNELS): one with a factor of
    its own, or one never measured."""
    return _own(checkpoint_kernel(model, gpu))


def _own(kernel: str | None) -> str | None:
    return kernel if kernel is not None and kernel not in LINE_KERNELS else None


def decode_step_s(model: ModelSpec, config: EngineConfig, gpu: GpuSpec, *, batch: int, mean_context: float,
                  calibration: SpeedCalibration = SPEED_CALIBRATION, bandwidth_gb_s: float | None = None) -> tuple[float, str]:
    """(seconds, bound) of one decode step of ``batch`` sequences of ``mean_context`` tokens on average."""
    bandwidth = (bandwidth_gb_s or gpu.bandwidth_gb_s) * 1e9
    if bandwidth <= 0 or gpu.fp16_tflops <= 0:
        raise PlannerError("gpu", f"{gpu.name}: its bandwidth and tensor-core rate are unknown, so there is no speed "
                                  "prediction; choose a preset that names it")
    kernels = kernels_for(model, config)
    tp = config.tensor_parallel_size
    weight_bytes, kv_bytes = decode_step_bytes_parts(model, config, batch=batch, mean_context=mean_context)
    expert_bytes = routed_expert_bytes(model, config, batch=batch)
    gemm_s = (calibration.gemm_factor(kernels, checkpoint_kernel(model, gpu)) * (weight_bytes - expert_bytes)
              + calibration.moe_weight_factor(kernels) * expert_bytes) / bandwidth
    attention_flops = 4 * model.num_layers * model.num_heads * model.head_dim * mean_context
    compute_s = batch * (2 * model.active_params_per_token + attention_flops) / tp / (
        _rate(gpu, kernels) * calibration.compute_efficiency(kernels))
    kv_s = (calibration.kv_factor(config.fp8_kv) * calibration.kv_head_dim_factor(model.head_dim) * kv_bytes
            / min(bandwidth, calibration.kv_bandwidth_cap_gb_s * 1e9))
    step = max(gemm_s, compute_s) + kv_s + fixed_step_s(model, kernels, batch=batch, calibration=calibration)
    if tp > 1:  # two all-reduces of the hidden states per layer (attention and MLP outputs)
        act_bytes = DTYPE_BYTES[resolve_dtype(model, config.dtype)]
        reduce_bytes = batch * model.hidden_size * act_bytes * 2 * (tp - 1) / tp
        step += 2 * model.num_layers * (calibration.allreduce_latency_s + reduce_bytes / (NVLINK_GB_S * 1e9))
    return step, "memory" if gemm_s >= compute_s else "compute"


def steady_step_s(model: ModelSpec, config: EngineConfig, gpu: GpuSpec, *, batch: int, mean_context: float,
                  calibration: SpeedCalibration = SPEED_CALIBRATION) -> tuple[float, str]:
    """(seconds, bound) of a decode step as a run sees it: the GPU's step, never under vLLM's own work per step."""
    step, bound = decode_step_s(model, config, gpu, batch=batch, mean_context=mean_context, calibration=calibration)
    floor = calibration.host_floor_s(batch)
    return (floor, "host") if step < floor else (step, bound)


def host_bound(model: ModelSpec, config: EngineConfig, gpu: GpuSpec, *, mean_context: float,
               calibration: SpeedCalibration = SPEED_CALIBRATION) -> bool:
    """Whether this engine is too small for the GPU: its batch-1 step, from the GPU's side, is shorter than vLLM's
    own work per step (HOST_BOUND_NOTE). Not said of MoE engines: OLMoE-1B-7B, predicted under the line at batch 1,
    ran its step in 1.59 ms, under the line too (within its MoE ±)."""
    one, _ = decode_step_s(model, config, gpu, batch=1, mean_context=mean_context, calibration=calibration)
    return one < calibration.host_floor_s(1) and not model.num_experts


def own_kv_width(model: ModelSpec) -> int | None:
    """The head width of a model whose (non-latent) attention heads do not read the KV cache as 128-wide ones do
    (MEASURED_HEAD_DIMS): a width with a factor of its own, or one never measured."""
    attention = bool(model.layers) and not mla_layers(model)
    return model.head_dim if attention and model.head_dim not in MEASURED_HEAD_DIMS else None


def fixed_step_s(model: ModelSpec, kernels: str, *, batch: int, calibration: SpeedCalibration = SPEED_CALIBRATION) -> float:
    """What a decode step costs whatever it reads: per step, per layer (and MoE layer) and per running sequence."""
    return (calibration.step_overhead_s + calibration.layer_overhead_s(kernels) * model.num_layers
            + calibration.moe_layer_overhead_s(kernels) * moe_layers(model)
            + calibration.mla_layer_overhead_s * mla_layers(model) + calibration.sequence_overhead_s * batch)


def ttft_s(model: ModelSpec, config: EngineConfig, gpu: GpuSpec, *, prompt_len: int,
           calibration: SpeedCalibration = SPEED_CALIBRATION) -> float:
    """Time to first token of one request alone: its prefill plus the fixed cost of a request."""
    return prefill_s(model, config, gpu, prompt_len=prompt_len, calibration=calibration) + calibration.ttft_overhead_s


CACHED_PROMPT_TOKENS = 16  # a prompt found in the prefix cache still recomputes its last block (the hit stops a token short)


@dataclass(frozen=True)
class WavePrediction:
    """One benchmark point as playground.bench and `vllm bench throughput` run it: ``concurrency`` requests sent
    at once, each input_len + output_len tokens. Their prefills (chunked into the decode steps) delay the
    requests that already decode, which is why a wave's TPOT is above the steady decode step."""

    running: int  # requests decoding at once (fewer than sent when the KV cache holds fewer)
    step_s: float
    tpot_s: float
    ttft_s: float  # the median request's
    output_tok_s: float

    @property
    def decode_tok_s(self) -> float:
        return 1 / self.tpot_s


def prefill_s(model: ModelSpec, config: EngineConfig, gpu: GpuSpec, *, prompt_len: int,
              calibration: SpeedCalibration = SPEED_CALIBRATION) -> float:
    """GPU time of one prompt's prefill: its FLOPs over the rate, and never less than one read of the weights."""
    kernels = kernels_for(model, config)
    attention = 2 * model.num_layers * model.num_heads * model.head_dim * prompt_len  # causal: half of 4 x L x d x n
    flops = prompt_len * (2 * model.active_params_per_token + attention) / config.tensor_parallel_size
    compute = flops / (_rate(gpu, kernels) * calibration.compute_efficiency(kernels))
    step, _ = decode_step_s(model, config, gpu, batch=1, mean_context=prompt_len, calibration=calibration)
    return max(compute, step - fixed_step_s(model, kernels, batch=1, calibration=calibration))


def prefill_schedule(requests: int, prompt_tokens: int, budget: int, first: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """How vLLM's scheduler prefills a wave of ``requests`` prompts sent at once: (the prompt tokens each engine
    step carries, the step in which each request's prefill completes, in the order sent). Each step's budget is
    max_num_batched_tokens less one token a request already decoding (the V1 scheduler serves running requests
    first); prompts fill the rest in order, the last one chunked. The first step holds only the ``first``
    requests that reached the engine before it began."""
    left = [prompt_tokens] * requests
    done: list[int] = [0] * requests
    carried: list[int] = []
    decoding = nxt = 0
    while nxt < requests:
        room = max(budget - decoding, 1)
        arrived = min(first, requests) if not carried else requests
        tokens = 0
        while nxt < arrived and room > 0:
            take = min(left[nxt], room)
            left[nxt] -= take
            room -= take
            tokens += take
            if left[nxt] == 0:
                done[nxt] = len(carried)
                nxt += 1
        carried.append(tokens)
        decoding = nxt
    return tuple(carried), tuple(done)


def wave(model: ModelSpec, config: EngineConfig, gpu: GpuSpec, *, concurrency: int, input_len: int, output_len: int,
         kv_tokens: int | None = None, prompts_cached: bool = False,
         calibration: SpeedCalibration = SPEED_CALIBRATION) -> WavePrediction:
    """What a benchmark point should measure (the prediction beside each measured point): each request decodes
    through the prefill steps after its own (prefill_schedule), and the point's TPOT and TTFT are the medians
    over the requests, as the sweep takes them."""
    running = concurrency
    if kv_tokens is not None and input_len:
        running = max(1, min(concurrency, kv_tokens // (input_len + output_len)))
    step, _ = steady_step_s(model, config, gpu, batch=running, mean_context=input_len + output_len / 2,
                            calibration=calibration)
    prompt = CACHED_PROMPT_TOKENS if prompts_cached else max(input_len, 1)
    one = prefill_s(model, config, gpu, prompt_len=prompt, calibration=calibration)
    budget = config.max_num_batched_tokens or default_batch_limits(gpu)[1]
    carried, done = prefill_schedule(running, prompt, budget, calibration.wave_first_step_requests)
    cost = [tokens * one / prompt for tokens in carried]
    through = [sum(cost[: s + 1]) for s in range(len(cost))]  # prefill time up to the end of each step
    stall = median(through[-1] - through[s] for s in done)  # the prefill steps after a request's own
    tpot = step + stall / max(output_len - 1, 1)
    ttft = calibration.ttft_overhead_s + median(through[s] for s in done)
    prefills = running * one
    return WavePrediction(running, step, tpot, ttft, running * output_len / (prefills + calibration.ttft_overhead_s
                                                                             + (output_len - 1) * step))


def _rate(gpu: GpuSpec, kernels: str) -> float:
    # No FP8 tensor cores (A100): vLLM runs FP8 weights through Marlin W8A16, so the math is 16-bit.
    return (gpu.fp8_tflops if kernels == "fp8" and gpu.fp8_tflops and gpu.supports_fp8_tensor_cores
            else gpu.fp16_tflops) * 1e12


def predict_speed(model: ModelSpec | EngineConfig | str, gpu: GpuSpec, *, batches: tuple[int, ...] = (1, 8, 64),
                  prompt_len: int = 512, output_len: int = 256, precision: str = "",
                  calibration: SpeedCalibration = SPEED_CALIBRATION, **engine_args) -> SpeedPrediction:
    """Predicted decode speed of this engine on ``gpu``: per-request decode tok/s at batch 1, output tok/s at each
    of ``batches`` that fits and at the largest batch that fits requests of prompt_len + output_len tokens, and
    the TTFT of a prompt_len prompt. Each with its ± from the fit."""
    spec, config = engine_config(model, **engine_args)
    for name, value in (("prompt_len", prompt_len), ("output_len", output_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlannerError(name, f"{value!r} must be a whole number of tokens, at least 1")
    p = plan(spec, gpu, advise=False, **_engine_fields(config))
    config = p.config
    context = min(prompt_len + output_len, p.max_model_len)
    largest = max_batch_size(spec, gpu, context_len=context, **_engine_fields(config)) if p.fits else 0
    notes = []
    if not p.fits:
        notes.append(f"the engine does not fit ({p.reason}); speeds are for the GPU as if it did")
    sizes = sorted({b for b in batches if b >= 1 and (not largest or b <= largest)} | ({largest} if largest else {1}))
    mean_context = min(prompt_len + output_len / 2, p.max_model_len)
    width = own_kv_width(spec)
    line_kernel = checkpoint_kernel(spec, gpu)
    gemm_kernel = _own(line_kernel)
    # the kernel's ± beside the rest: its own rows', or a never-measured kernel's
    kernel_spread = 0.0
    fitted_kernel = gemm_kernel is not None and gemm_kernel in dict(calibration.gemm_kernel_factors)
    fitted_heads = width is not None and width in dict(calibration.kv_head_dim_factors)
    unmeasured_heads = width is not None and not fitted_heads
    if gemm_kernel is not None:
        kernel_spread = calibration.gemm_kernel_spread if fitted_kernel else UNMEASURED_KERNEL_SPREAD
    small = host_bound(spec, config, gpu, mean_context=mean_context, calibration=calibration)
    points = []
    for b in sizes:
        step, bound = steady_step_s(spec, config, gpu, batch=b, mean_context=mean_context, calibration=calibration)
        spread = calibration.decode_spread_batch1 if b == 1 else calibration.decode_spread_batched
        if small or (bound == "host" and not spec.num_experts):
            spread = max(spread, calibration.host_spread, HOST_MEASURED_SPREAD)
        if spec.num_experts:
            spread = max(spread, MOE_MEASURED_SPREAD)
        if fitted_heads:
            spread = max(spread, calibration.head_dim_spread)
        if unmeasured_heads and b > 1:
            spread = max(spread, HEAD_DIM_MEASURED_SPREAD)
        spread = max(spread, kernel_spread)
        points.append(SpeedPoint(b, step, bound, spread))
    kernels = kernels_for(spec, config)
    compute_bound = [pt.batch for pt in points if pt.bound == "compute"]
    if compute_bound:
        notes.append(f"from batch {compute_bound[0]:,} the GEMMs are compute-bound: their efficiency comes from the "
                     "fitted runs' waves of 64 uncached 512-token prompts (two models), so these points are less sure "
                     "than the memory-bound ones")
    beyond = [pt.batch for pt in points if pt.bound == "host" and pt.batch > HOST_MEASURED_BATCH]
    if beyond:
        notes.append(HOST_EXTRAPOLATED_NOTE.format(batch=beyond[0]))
    reached = [pt.batch for pt in points if pt.bound == "host" and pt.batch <= HOST_MEASURED_BATCH]
    if reached and not small and not spec.num_experts:
        notes.append(HOST_REACHED_NOTE.format(batch=reached[0], base=1e3 * calibration.host_step_s,
                                              per_request=1e6 * calibration.host_sequence_s,
                                              models=calibration.host_models,
                                              spread=max(calibration.host_spread, HOST_MEASURED_SPREAD)))
    if small:
        notes.append(HOST_BOUND_NOTE.format(floor=1e3 * calibration.host_floor_s(1), models=calibration.host_models,
                                            base=1e3 * calibration.host_step_s,
                                            per_request=1e6 * calibration.host_sequence_s,
                                            spread=max(calibration.host_spread, HOST_MEASURED_SPREAD)))
    if spec.num_experts:
        notes.append(MOE_NOTE)
    if unmeasured_heads:
        notes.append(HEAD_DIM_NOTE.format(head_dim=spec.head_dim))
    if fitted_heads:
        notes.append(FITTED_HEAD_DIM_NOTE.format(head_dim=spec.head_dim,
                                                 factor=calibration.kv_head_dim_factor(spec.head_dim),
                                                 models=dict(calibration.kv_head_dim_models)[spec.head_dim]))
    if fitted_kernel:
        notes.append(FITTED_KERNEL_NOTE.format(kernel=gemm_kernel, factor=dict(calibration.gemm_kernel_factors)[gemm_kernel],
                                               line=calibration.weight_factor(kernels),
                                               family="FP8" if kernels == "fp8" else "16-bit",
                                               models=dict(calibration.gemm_kernel_models)[gemm_kernel]))
    elif gemm_kernel is not None:
        notes.append(UNMEASURED_KERNEL_NOTE.format(kernel=gemm_kernel, family="FP8" if kernels == "fp8" else "16-bit"))
    if any(pt.batch > MEASURED_BATCH for pt in points):
        notes.append(f"batches above {MEASURED_BATCH} were never measured here: an extrapolation of the fit")
    if kernels == "fp8" and not gpu.supports_fp8_tensor_cores:
        notes.append(f"{gpu.name} has no FP8 tensor cores: vLLM runs FP8 weights through Marlin (W8A16); "
                     "the fit has no such run, so this speed is less sure")
    if gpu.name not in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        notes.append(f"fitted on Hopper GPUs; on {gpu.name} the efficiencies are assumed to carry over")
    return SpeedPrediction(
        model=spec.name, gpu=gpu.name, precision=precision or _precision_label(config, spec), kernels=kernels, config=config,
        points=tuple(points), largest_batch=largest, prompt_len=prompt_len, output_len=output_len,
        ttft_s=ttft_s(spec, config, gpu, prompt_len=min(prompt_len, p.max_model_len), calibration=calibration),
        ttft_spread=calibration.ttft_spread, calibration_source=calibration.source, notes=tuple(notes))


def compare_speeds(model, gpu: GpuSpec, *, batches: tuple[int, ...] = (1, 8, 64), prompt_len: int = 512,
                   output_len: int = 256, calibration: SpeedCalibration = SPEED_CALIBRATION,
                   **engine_args) -> list[SpeedPrediction]:
    """16-bit, FP8 and FP8 + FP8 KV (the planner's three precisions) for the same engine arguments."""
    spec, base = engine_config(model, **engine_args)
    if getattr(spec, "quant", None) is not None:
        # a pre-quantized checkpoint: its own scheme (and with an FP8 KV cache) beside the same shape in 16-bit
        twin = replace(spec, quant=None)
        common = dict(batches=batches, prompt_len=prompt_len, output_len=output_len, calibration=calibration)
        fields = {**_engine_fields(base), "quantization": None}
        kv8 = {**fields, "kv_cache_dtype": "fp8", "dtype": "bfloat16" if gpu.is_hopper else base.dtype}
        return [predict_speed(twin, gpu, precision="fp16", **common, **{**fields, "kv_cache_dtype": "auto"}),
                predict_speed(spec, gpu, precision="checkpoint", **common, **fields),
                predict_speed(spec, gpu, precision="checkpoint-kv8", **common, **kv8)]
    out = []
    for name, fields in PRECISIONS.items():
        config = replace(base, **fields)
        if config.fp8_kv and gpu.is_hopper and config.dtype == "float16":
            config = replace(config, dtype="bfloat16")
        out.append(predict_speed(spec, gpu, batches=batches, prompt_len=prompt_len, output_len=output_len,
                                 precision=name, calibration=calibration, **_engine_fields(config)))
    return out


def speed_notes(predictions: list[SpeedPrediction]) -> list[str]:
    """The predictions' notes once each: a note every precision carries as it is, one that only some carry
    (a compute-bound batch, a refusal) with the precision it belongs to."""
    everyone = [n for n in dict.fromkeys(n for p in predictions for n in p.notes)
                if all(n in p.notes for p in predictions)]
    own = [f"{p.precision}: {n}" for p in predictions for n in p.notes if n not in everyone]
    return everyone + list(dict.fromkeys(own))


def ratio(fp8: SpeedPrediction, base: SpeedPrediction, batch: int) -> float | None:
    """fp8's decode speed over base's at ``batch`` (None when either has no such point)."""
    a, b = fp8.at(batch), base.at(batch)
    return a.decode_tok_s / b.decode_tok_s if a and b else None


def _precision_label(config: EngineConfig, model: ModelSpec | None = None) -> str:
    if getattr(model, "quant", None) is not None:
        return "checkpoint"  # the checkpoint's own scheme (config.json's quantization_config)
    if config.quantization == "fp8":
        return "fp8-kv8" if config.fp8_kv else "fp8"
    return "fp16"


def _engine_fields(config: EngineConfig) -> dict:
    from dataclasses import fields

    return {f.name: getattr(config, f.name) for f in fields(EngineConfig) if f.name != "model"}
