"""vLLM's start-up memory arithmetic, predicted before anything is loaded.

It mirrors ``Worker.determine_available_memory`` in vllm/v1/worker/gpu_worker.py (vLLM 0.25.1):

    requested  = ceil(total_memory * gpu_memory_utilization)      (total_memory: CUDA's, not NVML's)
    kv_memory  = requested - weights - torch_peak_increase - non_torch_increase
    num_blocks = kv_memory // (page_bytes * layers_per_group)          (kv_cache_utils.get_num_blocks)
    kv_tokens  = num_blocks / blocks_per_request * max_model_len      (kv_cache_utils.get_kv_cache_capacity)

Every term is named after the line of vLLM's log it reproduces and derived from the model's
structure (planner/structure.py) with vLLM's rules; the few coefficients vLLM's source gives no
formula for are in one ``Calibration``, fitted across models by benchmarks/fit_calibration.py.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace

from planner.allocator import checkpoint_load_overhead_bytes, load_block_overhead_bytes
from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from planner.gpus import GIB, GpuSpec
from planner.models import DTYPE_BYTES, ModelSpec, model_spec
from planner.quantization import (check_requested, expert_bytes, expert_repack, expert_tensors, kernel, linear_bytes,
                                  linear_repack, linear_tensors, merged_linears, split_shape)
from planner.structure import REPLICATED_QUANTIZED

KV_CACHE_BYTES = {"auto": None, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
BLOCK_SIZE = 16  # vllm/config/cache.py CacheConfig.DEFAULT_BLOCK_SIZE


@dataclass(frozen=True)
class Calibration:
    """Coefficients of the terms vLLM measures at start-up for which its source gives no formula.
    Produced by benchmarks/fit_calibration.py from tests/data/vllm_kv_measurements.json (fitted rows
    only; held-out rows are reported apart). docs/planner.md shows the fit."""

    # Torch peak of the profile run per batched token, in activation-dtype elements, beyond the MLP's
    # (or the fused-MoE workspace's) own tensors: residual, attention input/output and norms.
    hidden_copies_per_token: float = 1.25
    fixed_peak_bytes: int = 365072220  # 0.34 GiB; the forward's (the dummy sampler run's tensors are derived)
    # One GPU's own correction, written by planner.calibrate (the KV memory vLLM had there minus the plan's),
    # taken off the torch peak whichever part of the profile run peaks; 0 in the shipped calibration.
    peak_offset_bytes: int = 0
    # "non-torch forward increase memory": 0.22 GiB in every single-GPU run measured (cuBLAS
    # workspace, attention backend buffers).
    non_torch_bytes: int = 236223201  # 0.22 GiB
    # The MoE forward's own peak per (token x routed expert) pair, in multiples of TritonExperts' three caches
    # (M*topk*N, M*topk*N/2, M*topk*K): fitted to OLMoE-1B-7B 16-bit (1.80 GiB torch peak logged). That row's
    # dummy sampler run, derived (v1_dummy_sampler_bytes + moe_workspace_bytes), comes to 1.76 GiB, so the
    # row cannot tell the two apart and the forward term is the upper end. The dummy sampler run itself has no
    # fitted constant: it is derived from vLLM's source (Qwen3-30B-A3B's 3.21 GiB and gpt-oss's 2.90 GiB
    # logged, 3.17 and 2.87 derived; gpt-oss-20b's 1.07 GiB at 256 sequences is its forward).
    moe_workspace_copies: float = 1.11
    # NCCL / custom all-reduce buffers: per extra GPU of the tensor-parallel group. vLLM logged a
    # non-torch increase of 0.54 GiB at TP=2 against 0.22 GiB at TP=1 (llama-3-8b, qwen2.5-32b FP8).
    non_torch_bytes_per_extra_gpu: int = 343597383  # 0.32 GiB
    # vLLM's "Estimated CUDA graph memory" (gpu_model_runner.profile_cudagraph_memory: the first FULL
    # capture plus one increment per further graph), subtracted from the KV cache. Only the V1 model
    # runner estimates it, and vLLM 0.25.1 runs MoE models on V1 except DeepSeek-V2 / Qwen2-MoE /
    # GraniteMoE (config/vllm.py, DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES). Logged 0.64 GiB for Qwen3-30B-A3B.
    v1_runner_cudagraph_estimate_bytes: int = 547608330  # 0.51 GiB
    # Hybrid models capture FULL and PIECEWISE graphs (MambaModelConfig: FULL_AND_PIECEWISE), and their
    # estimate is larger: logged 0.81 and 0.78 GiB for Falcon-H1-7B in 16-bit and FP8 (the fitted rows).
    hybrid_cudagraph_estimate_bytes: int = 858993459  # 0.8 GiB
    # Latent attention (MLA) on the V1 runner (GLM-4.7-Flash, DeepSeek-V3's family): logged 1.84 GiB for
    # GLM-4.7-Flash in 16-bit and FP8 alike (the fitted rows; held out first against the MoE value, its KV cache came
    # out 2.3% and 1.7% high).
    mla_cudagraph_estimate_bytes: int = 1932735283  # 1.8 GiB
    # The largest KV-token error of the fitted 16-bit (FP8) rows: the plan's ± as a fraction of KV tokens.
    kv_tokens_relative_spread: float = 0.003
    kv_tokens_relative_spread_fp8: float = 0.005
    # CUDA graphs, captured after the KV cache (outside the request): measured 0.67 to 1.20 GiB.
    cudagraph_bytes_per_layer: int = int(0.03 * GIB)
    # A CUDA context per process, outside vLLM's request (for two engines resident at once).
    cuda_context_bytes: int = int(0.55 * GIB)


CALIBRATION = Calibration()


@dataclass(frozen=True)
class Suggestion:
    """A complete configuration that the planner itself says fits, and why it was suggested."""

    change: str
    config: EngineConfig
    kv_tokens: int
    why: str = ""  # why these numbers: what the change buys, and where its value comes from
    kv_tokens_spread: int = 0  # the ± of the suggestion's own plan

    @property
    def kv_tokens_low(self) -> int:
        """The figure its plan's verdict counts on (the low end of the ±), as the page shows once applied."""
        return self.kv_tokens - self.kv_tokens_spread


@dataclass(frozen=True)
class MemoryPlan:
    """What vLLM will do with one GPU (per GPU under tensor parallelism). Bytes throughout."""

    model: str
    gpu: str
    config: EngineConfig  # the engine this plan is for, with vLLM's defaults filled in
    structure_source: str
    total_bytes: int
    cuda_total_bytes: int
    requested_bytes: int
    weights_bytes: int
    activation_peak_bytes: int
    non_torch_bytes: int
    cudagraph_bytes: int  # captured after the KV cache: outside the requested memory
    kv_cache_bytes: int  # may be negative: the shortfall
    kv_bytes_per_token: int
    block_size: int
    num_gpu_blocks: int
    kv_tokens: int  # vLLM's "GPU KV cache size: N tokens"
    kv_tokens_spread: int  # ± from the validation of the planner
    fits: bool
    reason: str
    warnings: tuple[str, ...] = ()
    advice: tuple[Suggestion, ...] = field(default=())
    # vLLM's own estimate of the CUDA graphs, taken from the KV cache before it is sized (V1 runner only)
    cudagraph_estimate_bytes: int = 0
    # vLLM's KV-cache groups: a block is one page in each of kv_layers_per_group layers; a sequence of L tokens
    # takes attention_groups x ceil(L / block_size) blocks plus state_groups blocks (hybrid models' recurrent state)
    kv_page_bytes: int = 0
    kv_layers_per_group: int = 0
    attention_groups: int = 1
    state_groups: int = 0
    # what the weights were sized as: "compressed-tensors FP8 (channel scales, from config.json); ..."
    weights_scheme: str = ""

    @property
    def usable_blocks(self) -> int:
        """KV-cache blocks at the conservative end of the plan's ±."""
        return conservative_blocks(self.num_gpu_blocks, self.kv_tokens, self.kv_tokens_spread)

    def blocks_for(self, sequences: int, context_len: int) -> int:
        """KV-cache blocks that ``sequences`` sequences of ``context_len`` tokens hold at once."""
        per_sequence = self.attention_groups * math.ceil(context_len / self.block_size) + self.state_groups
        return sequences * per_sequence

    # The engine arguments, as attributes, for readers of the plan.
    @property
    def quantization(self) -> str | None:
        return self.config.quantization

    @property
    def kv_cache_dtype(self) -> str:
        return self.config.kv_cache_dtype

    @property
    def dtype(self) -> str:
        return self.config.dtype

    @property
    def gpu_memory_utilization(self) -> float:
        return self.config.gpu_memory_utilization

    @property
    def max_model_len(self) -> int:
        return self.config.max_model_len

    @property
    def tensor_parallel_size(self) -> int:
        return self.config.tensor_parallel_size

    @property
    def max_num_seqs(self) -> int:
        return self.config.max_num_seqs

    @property
    def max_num_batched_tokens(self) -> int:
        return self.config.max_num_batched_tokens

    @property
    def kv_concurrency(self) -> float:
        """vLLM's 'Maximum concurrency for max_model_len tokens per request'."""
        return self.kv_tokens / self.max_model_len

    @property
    def max_concurrent_seqs(self) -> int:
        """Sequences of max_model_len tokens that run at once: KV capacity, capped by max_num_seqs."""
        return min(self.max_num_seqs, int(self.kv_concurrency))

    @property
    def shortfall_bytes(self) -> int:
        """How much is missing when the plan does not fit (0 when it fits)."""
        return max(0, -self.kv_cache_bytes) if not self.fits else 0

    @property
    def non_kv_bytes(self) -> int:
        return self.weights_bytes + self.activation_peak_bytes + self.non_torch_bytes + self.cudagraph_estimate_bytes

    def breakdown_gib(self) -> dict[str, float]:
        """The parts of the GPU, in GiB (for tables and charts); never negative."""
        parts = {
            "weights": self.weights_bytes,
            "activation peak": self.activation_peak_bytes,
            "non-torch": self.non_torch_bytes,
            "CUDA-graph estimate": self.cudagraph_estimate_bytes,
            "KV cache": max(self.kv_cache_bytes, 0),
            "CUDA graphs (after the KV cache)": self.cudagraph_bytes,
        }
        return {k: v / GIB for k, v in parts.items()}

    def as_dict(self) -> dict:
        """JSON-ready: every field, the engine arguments flat, and the derived answers."""
        from dataclasses import asdict

        out = asdict(self)
        out.pop("config")
        out.update(engine=asdict(self.config), kv_concurrency=self.kv_concurrency,
                   max_concurrent_seqs=self.max_concurrent_seqs, shortfall_bytes=self.shortfall_bytes,
                   vllm_serve_command=self.config.command("serve"),
                   advice=[{"change": s.change, "kv_tokens": s.kv_tokens, "kv_tokens_spread": s.kv_tokens_spread, "why": s.why, "engine": asdict(s.config),
                            "vllm_serve_command": s.config.command("serve")} for s in self.advice])
        return out


# ------------------------------------------------------------------------------------------- terms
def resolve_dtype(model: ModelSpec, dtype: str) -> str:
    """vLLM's 'auto' follows the checkpoint, except that float32 checkpoints run in bfloat16."""
    if dtype == "auto":
        return "bfloat16" if model.torch_dtype == "float32" else model.torch_dtype
    return dtype


def default_batch_limits(gpu: GpuSpec, entrypoint: str = "llm") -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) vLLM picks when they are not given, by who builds the
    engine (EngineArgs.get_batch_defaults by UsageContext; >= 70 GiB and not an A100 gets the larger
    pairs): 'llm' (the LLM class, `vllm bench throughput`), 'serve' (`vllm serve`), 'engine'
    (AsyncLLM.from_engine_args: SchedulerConfig's defaults whatever the GPU)."""
    big = gpu.total_bytes >= 70 * GIB and "a100" not in gpu.name.lower()
    if entrypoint == "llm":
        return (1024, 16384) if big else (256, 8192)
    if entrypoint == "serve":
        return (1024, 8192) if big else (256, 2048)
    if entrypoint == "engine":
        return 128, 2048
    raise PlannerError("entrypoint", f"{entrypoint!r} is not one of llm, serve, engine")


def _padded_vocab_rows(vocab: int, tp: int) -> int:
    # vocab_parallel_embedding.pad_vocab_size: padded to a multiple of 64, then split over ranks.
    return math.ceil(math.ceil(vocab / 64) * 64 / tp)


def weights_bytes(model: ModelSpec, *, dtype_bytes: int, quantization: str | None, tp: int = 1,
                  calibration: Calibration = CALIBRATION, compute_capability: tuple[int, int] = (9, 0)) -> int:
    """Bytes of the model's tensors on one GPU after loading (what the forward pass reads). A checkpoint that
    names its own quantization (model.quant) is sized by its scheme, with the kernel vLLM picks on a GPU of
    ``compute_capability``."""
    p = model.params
    vocab_rows = _padded_vocab_rows(model.vocab_size, tp)
    embed = vocab_rows * model.hidden_size
    lm_head = 0 if model.tie_word_embeddings else embed
    rotary_cache = model.max_position_embeddings * model.rotary_dim  # RotaryEmbedding.cos_sin_cache
    sixteen_bit = (embed + lm_head + rotary_cache + p.sixteen_bit_replicated + p.sixteen_bit_split // tp) * dtype_bytes
    linear = p.linear_split // tp + p.experts // tp + p.linear_replicated
    if model.quant is not None:  # the checkpoint's own scheme: every Linear and expert stack as vLLM creates it
        if model.quant.lm_head_quantized and lm_head:
            sixteen_bit -= lm_head * dtype_bytes
            sixteen_bit += linear_bytes(model.quant, out_features=vocab_rows, in_features=model.hidden_size,
                                        dtype_bytes=dtype_bytes, cc=compute_capability)
        return (checkpoint_linear_bytes(model, dtype_bytes=dtype_bytes, tp=tp, cc=compute_capability) + sixteen_bit
                + (_mla_dequantized_bytes(model, dtype_bytes, tp) if model.quant.quantizes("*.kv_b_proj") else 0))
    if quantization == "fp8":
        # Online FP8: Linear and expert weights in float8_e4m3fn with float32 scales (a few per layer);
        # embeddings, lm_head, routers and norms stay 16-bit.
        scales = model.num_layers * 8 * 4
        return linear + scales + sixteen_bit + _mla_dequantized_bytes(model, dtype_bytes, tp)
    return linear * dtype_bytes + sixteen_bit


def weights_description(model: ModelSpec, gpu: GpuSpec, config: EngineConfig) -> str:
    """One line saying how the weights were sized: the scheme, where it came from, the kernel on this GPU
    and what stays 16-bit. Raises PlannerError where vLLM refuses the checkpoint on this GPU."""
    scheme = model.quant
    if scheme is None:
        if config.quantization == "fp8":
            return "online FP8 (quantization='fp8': per-tensor scales); embeddings, lm_head, norms 16-bit"
        return f"16-bit ({config.dtype}); no quantization_config in config.json"
    kern = kernel(scheme, gpu.compute_capability)
    kept = sorted({name.split(".")[-2] if name.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "o_proj") else
                   name.split(".")[-1] for name, *_ in model.params.linears if not scheme.quantizes(name)})
    kept = (["self_attn"] if any(k == "self_attn" for k in kept) else []) + [k for k in kept if k != "self_attn"]
    if model.num_experts:
        kept.append("router")
    kept += (["embed_tokens (tied lm_head)"] if model.tie_word_embeddings else
             ["embed_tokens"] + ([] if scheme.lm_head_quantized else ["lm_head"]))
    if model.is_mla and scheme.quantizes("*.kv_b_proj"):
        kept.append("W_UK/W_UV (dequantized from kv_b_proj)")
    head = "; lm_head FP8 too (config.json's flat layout names no 'ignore')" if scheme.lm_head_quantized else ""
    return f"{scheme.label()}; {kern}; {', '.join(kept)} 16-bit{head}"


def _mla_dequantized_bytes(model: ModelSpec, dtype_bytes: int, tp: int) -> int:
    """MLAAttention.process_weights_after_loading keeps 16-bit W_UK / W_UV, dequantized from an FP8
    kv_b_proj (vllm/model_executor/layers/attention/mla_attention.py): one 16-bit copy of kv_b_proj per
    layer (split by heads across ranks, as kv_b_proj is). A 16-bit kv_b_proj is used as it is."""
    return model.kv_b_proj_params // tp * dtype_bytes


# DeepGEMM's first use on Hopper and newer (vllm/utils/deep_gemm.py _lazy_init, reached from QuantFP8's
# constructor) allocates 32 MiB while the model is built: measured on the H100 in every FP8 load.
DEEP_GEMM_INIT_BYTES = 32 * 2**20


def loaded_bytes(model: ModelSpec, gpu: GpuSpec, *, dtype_bytes: int, quantization: str | None, tp: int = 1,
                 calibration: Calibration = CALIBRATION) -> int:
    """'Model loading took X GiB': the tensors, plus the allocator blocks around them during the load
    (planner/allocator.py), plus DeepGEMM's buffer for FP8 on Hopper."""
    tensors = weights_bytes(model, dtype_bytes=dtype_bytes, quantization=quantization, tp=tp, calibration=calibration,
                            compute_capability=gpu.compute_capability)
    if model.quant is not None:
        # A pre-quantized checkpoint's tensors are allocated once, at their final size, when the model is built
        # (no 16-bit copy to quantize and free): no allocator blocks are replayed for it.
        fp8_compute = model.quant.is_fp8 and gpu.supports_fp8_tensor_cores
        return (tensors + checkpoint_load_blocks(model, dtype_bytes=dtype_bytes, tp=tp, cc=gpu.compute_capability)
                + (DEEP_GEMM_INIT_BYTES if fp8_compute and gpu.is_hopper else 0))
    blocks = load_block_overhead_bytes(model, dtype_bytes=dtype_bytes, quantization=quantization, tp=tp,
                                       vocab_rows=_padded_vocab_rows(model.vocab_size, tp),
                                       rotary_elements=model.max_position_embeddings * model.rotary_dim)
    deep_gemm = DEEP_GEMM_INIT_BYTES if quantization == "fp8" and gpu.is_hopper else 0
    return tensors + blocks + deep_gemm


def checkpoint_load_blocks(model: ModelSpec, *, dtype_bytes: int, tp: int, cc: tuple[int, int]) -> int:
    """The allocator blocks around a pre-quantized checkpoint's tensors: its build replayed in order (a tensor of
    20 MiB or more takes a whole 2 MiB-rounded segment), then the kernels' repacks (Machete / Marlin 4-bit,
    AWQ's conversion, the Triton MXFP4 swizzle), each new tensor landing where the allocator puts it."""
    scheme, p = model.quant, model.params
    vocab_rows = _padded_vocab_rows(model.vocab_size, tp)
    build = [vocab_rows * model.hidden_size * dtype_bytes]
    repacks: list[list] = []
    groups = merged_linears(p.linears, tp, REPLICATED_QUANTIZED)
    moe_layers = p.expert_layers if p.experts else 0
    params = 1  # tensors built so far (the repacks name them param:INDEX); the build's temporaries are not counted
    for layer in range(model.num_layers):
        for name, n, k, count, hf_name in groups:
            if layer >= count:
                continue
            quantized = scheme.quantizes(hf_name)
            tensors = linear_tensors(scheme if quantized else None, n, k, dtype_bytes, cc)
            build += tensors
            if quantized:
                repacks.append(linear_repack(scheme, n, k, dtype_bytes, cc, params))
            params += len(tensors)
            if layer == 0 and name.endswith(("o_proj", "dense", "out_proj")):
                build += _rotary_cache_events(model, dtype_bytes)  # get_rope, built right after the attention linears
        if layer < moe_layers and (scheme.experts_only or scheme.quantizes("*.mlp.experts")):
            shape = dict(experts=model.num_experts, hidden=model.hidden_size, width=model.intermediate_size // tp,
                         has_bias=bool(p.expert_bias), cc=cc)
            tensors = expert_tensors(scheme, dtype_bytes=dtype_bytes, **shape)
            build += tensors
            repacks.append(expert_repack(scheme, first=params, **shape))
            params += len(tensors)
    if not model.tie_word_embeddings:
        build.append(vocab_rows * model.hidden_size * dtype_bytes)
    return checkpoint_load_overhead_bytes(build, repacks)


def _rotary_cache_events(model: ModelSpec, dtype_bytes: int) -> list:
    """RotaryEmbedding._compute_cos_sin_cache on the GPU (the model is built under the CUDA device): float32 freqs,
    cos, sin and their concatenation, then the cache in the model dtype (RotaryEmbedding.__init__, cache.to(dtype));
    the float32 tensors are freed and later weights land in their blocks. The cache is named, not a param:INDEX, so
    the repacks' indices keep naming the Linears' own tensors. For Llama-3.1's 131,072 positions these
    are 32 and 64 MiB blocks: 0.02 GiB of "Model loading took" beyond the tensors."""
    positions, dim = model.max_position_embeddings, model.rotary_dim
    if not dim:
        return []
    half = positions * dim // 2 * 4
    return [("alloc", "build:freqs", half), ("alloc", "build:cos", half), ("alloc", "build:sin", half),
            ("alloc", "build:cat", 2 * half), ("free", "build:freqs", 0), ("free", "build:cos", 0),
            ("free", "build:sin", 0), ("alloc", "build:cos_sin_cache", positions * dim * dtype_bytes),
            ("free", "build:cat", 0)]


def checkpoint_linear_bytes(model: ModelSpec, *, dtype_bytes: int, tp: int, cc: tuple[int, int]) -> int:
    """Every decoder Linear and routed-expert stack of a pre-quantized checkpoint on one rank, as its
    quantization method creates it and the kernel vLLM picks on ``cc`` repacks it (planner/quantization.py)."""
    scheme, p = model.quant, model.params
    total = 0
    linears = p.linears or (("*.linear", model.hidden_size, max(1, p.linear_split // model.hidden_size), 1),)
    for name, in_features, out_features, count in linears:
        replicated = name.rsplit(".", 1)[-1] in REPLICATED_QUANTIZED
        out_rank, in_rank = split_shape(name, in_features, out_features, tp, replicated)
        if scheme.quantizes(name):
            total += count * linear_bytes(scheme, out_features=out_rank, in_features=in_rank, dtype_bytes=dtype_bytes,
                                          cc=cc)
        else:
            total += count * out_rank * in_rank * dtype_bytes
    return total + routed_expert_stack_bytes(model, dtype_bytes=dtype_bytes, quantization=None, tp=tp, cc=cc)


def routed_expert_stack_bytes(model: ModelSpec, *, dtype_bytes: int, quantization: str | None, tp: int = 1,
                              cc: tuple[int, int] = (9, 0)) -> int:
    """Every MoE layer's routed-expert stacks on one rank as loaded: 16-bit, online FP8 (one byte a weight), or
    a checkpoint's own scheme (its expert stacks as the method creates them on a GPU of ``cc``)."""
    p, scheme = model.params, model.quant
    if not p.experts:
        return 0
    if scheme is None:
        return p.experts // tp * (1 if quantization == "fp8" else dtype_bytes)
    if not (scheme.experts_only or scheme.quantizes("*.mlp.experts")):
        return p.experts // tp * dtype_bytes
    layers = moe_layers(model)
    return layers * expert_bytes(scheme, experts=model.num_experts, hidden=model.hidden_size,
                                 width=model.intermediate_size // tp,
                                 bias_elements=p.expert_bias // max(1, layers) // tp, dtype_bytes=dtype_bytes, cc=cc)


def mla_layers(model: ModelSpec) -> int:
    """Layers whose attention is DeepSeek's multi-head latent attention (one cached latent per token)."""
    return sum(layer.kind == "mla" for layer in model.layers)


def moe_layers(model: ModelSpec) -> int:
    """Layers with routed experts (a model's first dense layers, as DeepSeek's, are not)."""
    return (model.params.expert_layers or model.num_layers) if model.num_experts else 0


def moe_workspace_bytes(model: ModelSpec, *, act_bytes: int, max_num_batched_tokens: int, tp: int = 1) -> int:
    """The fused-MoE buffer vLLM's WorkspaceManager holds (v1/worker/workspace.py _ensure_workspace_size):
    allocated by the first MoE layer of the profile run and kept for the rest of it, the dummy sampler run
    included. FusedMoEKernelModularImpl._allocate_buffers (fused_moe/modular_kernel.py) takes one block of
    max(workspace13, output) and one of workspace2, in the activation dtype, for all M tokens (no chunking);
    TritonExperts.workspace_shapes (experts/triton_moe.py): workspace13 (M, topk, max(N/2, K)),
    workspace2 (M, topk, max(N, K)), output (M, K), with N = 2 x expert width / TP and K = hidden.
    gpt-oss's MXFP4 experts on the Triton backend take none: oracle/mxfp4.py prefers the monolithic
    OAITritonMxfp4ExpertsMonolithic, whose triton_kernel_moe_forward allocates its cache per call."""
    if not model.num_experts or _monolithic_mxfp4_experts(model):
        return 0
    m, topk, n, k = max_num_batched_tokens, model.experts_per_token, 2 * model.intermediate_size // tp, model.hidden_size
    workspace13 = max(m * topk * max(n // 2, k), m * k)
    workspace2 = m * topk * max(n, k)
    return (workspace13 + workspace2) * act_bytes


def _monolithic_mxfp4_experts(model: ModelSpec) -> bool:
    return model.quant is not None and model.quant.weight == "mxfp4"


def v1_dummy_sampler_bytes(model: ModelSpec, *, act_bytes: int, max_num_batched_tokens: int, max_num_seqs: int) -> int:
    """What the V1 runner's dummy sampler run (gpu_model_runner._dummy_sampler_run: top_k = vocab - 1, top_p 0.9,
    no logprobs, twice: the second with a generator) holds at once, beyond the MoE workspace.
    Per logit of max_num_seqs x vocab: the logits in the model dtype (LogitsProcessor, lm_head's output), their
    float32 copy (Sampler.forward: logits.to(torch.float32), a copy unless they are float32 already),
    softmax's float32 probs and random_sample's float32 exponential noise (topk_topp_sampler.forward_native;
    with VLLM_USE_FLASHINFER_SAMPLER=0, and always in the second call). Top-k / top-p of 8 rows or more runs
    in place in the Triton kernel (apply_top_k_top_p -> apply_top_k_top_p_triton: no sort), whose scratch
    buffer is one float32 vocabulary row per program, min(SMs, rows), and stays cached. The forward's
    hidden states (max_num_batched_tokens x hidden) are still alive (profile_run deletes them after)."""
    per_logit = act_bytes + (4 if act_bytes != 4 else 0) + 4 + 4
    scratch_rows = min(TOPK_TOPP_SCRATCH_ROWS, max_num_seqs) if max_num_seqs >= 8 else 0
    return (max_num_seqs * per_logit + scratch_rows * 4) * model.vocab_size \
        + max_num_batched_tokens * model.hidden_size * act_bytes


# topk_topp_triton.apply_top_k_top_p_triton: NUM_PROGRAMS = min(num_compute_units, batch) buffer rows;
# 132 SMs on the H100 SXM and the H200 (the GPUs measured).
TOPK_TOPP_SCRATCH_ROWS = 132


def activation_peak_bytes(model: ModelSpec, *, act_bytes: int, max_num_batched_tokens: int,
                          max_num_seqs: int, tp: int = 1, calibration: Calibration = CALIBRATION) -> int:
    """Increase of torch's peak allocation during vLLM's profile run ("torch peak memory increase"): the larger
    of the forward pass (gpu_model_runner.profile_run's _dummy_run) and the dummy sampler run after it, which
    still has the forward's MoE workspace beside it."""
    tokens = max_num_batched_tokens
    hidden = model.hidden_size
    if model.num_experts and _monolithic_mxfp4_experts(model):
        # triton_kernel_fused_experts (experts/gpt_oss_triton_kernels_moe.py), freed after each layer: the
        # (M x topk, N/2) cache of the first matmul_ogs (SwiGLU fused in) and the (M, K) output; the second
        # matmul_ogs cannot fuse its top-k scatter (third_party/triton_kernels/matmul_ogs.py: n_expts_act > 1)
        # and writes an (M x topk, K) scratchpad first, reduced into the output
        topk = model.experts_per_token
        mlp = tokens * (topk * model.intermediate_size // tp + topk * hidden + hidden)
    elif model.num_experts:
        # the forward's own peak, fitted on top of TritonExperts' caches (M, topk, N), (M*topk, N/2), (M, topk, K):
        # the workspace, and the rest of an MoE layer that the dense terms below do not cover
        n = 2 * model.intermediate_size // tp
        mlp = tokens * calibration.moe_workspace_copies * model.experts_per_token * (n + n // 2 + hidden)
    else:
        mlp = tokens * 3 * model.intermediate_size // tp  # gate_up output and SiLU-and-mul output
    forward = (mlp + tokens * calibration.hidden_copies_per_token * hidden) * act_bytes + calibration.fixed_peak_bytes
    if model.is_hybrid and model.layers:
        # Measured on Falcon-H1-7B (V1 runner): the peak grows by 3.2 bytes per logit of max_num_seqs x vocab
        # on top of the dense formula (1.94 GiB at 1,024 sequences, 1.74 at 512); the Mamba mixer's own
        # tensors, which the dense formula does not know, are not modelled apart. An attention-free model
        # shows no such term: Falcon-Mamba-7B logged 1.28 GiB on the H200, the dense formula gives 1.25.
        forward += max_num_seqs * model.vocab_size * 4
    if runs_on_v1_model_runner(model):
        sampler = v1_dummy_sampler_bytes(model, act_bytes=act_bytes, max_num_batched_tokens=tokens,
                                         max_num_seqs=max_num_seqs)
    else:
        # V2 runner (v1/worker/gpu/model_runner.py _dummy_sampler_run: no top-k / top-p in the dummy batch):
        # the float32 logits; below its forward in every row measured
        sampler = max_num_seqs * model.vocab_size * 4
    sampler += moe_workspace_bytes(model, act_bytes=act_bytes, max_num_batched_tokens=tokens, tp=tp)
    return int(max(forward, sampler) - calibration.peak_offset_bytes)


V2_RUNNER_MOE_ARCHITECTURES = frozenset({"DeepseekV2ForCausalLM", "Qwen2MoeForCausalLM", "GraniteMoeForCausalLM"})


def runs_on_v1_model_runner(model: ModelSpec) -> bool:
    """vLLM 0.25.1's VllmConfig._is_default_v2_model_runner_model: dense models and three MoE families run on
    the V2 runner; hybrid / attention-free models and every other MoE model on V1, whose profile run also
    estimates CUDA-graph memory."""
    if model.is_hybrid:
        return True
    return bool(model.num_experts) and model.architecture not in V2_RUNNER_MOE_ARCHITECTURES


def cudagraph_estimate_bytes(model: ModelSpec, *, enforce_eager: bool, calibration: Calibration = CALIBRATION) -> int:
    """What vLLM subtracts from the KV cache for CUDA graphs before sizing it (0 on the V2 runner or eager)."""
    if enforce_eager or not runs_on_v1_model_runner(model):
        return 0
    if model.is_hybrid:
        return calibration.hybrid_cudagraph_estimate_bytes
    if mla_layers(model):
        return calibration.mla_cudagraph_estimate_bytes
    return calibration.v1_runner_cudagraph_estimate_bytes


def cudagraph_bytes(model: ModelSpec, *, enforce_eager: bool = False, calibration: Calibration = CALIBRATION) -> int:
    """GPU memory the engine's CUDA graphs take after its KV cache is allocated (none when eager)."""
    return 0 if enforce_eager else model.num_layers * calibration.cudagraph_bytes_per_layer


def kv_bytes_per_token(model: ModelSpec, *, kv_bytes: int, tp: int = 1) -> int:
    """Bytes one token takes in every layer's cache together (MLA: one latent per layer)."""
    return sum(layer.bytes_per_token(kv_bytes, tp) for layer in model.layers)


@dataclass(frozen=True)
class KvLayout:
    """vLLM's KV-cache groups for this model (kv_cache_utils._get_kv_cache_groups_uniform_page_size).

    Every group's page (one block of one layer) has the same size. A hybrid model's recurrent state takes one
    page per sequence per state group; its attention block is made large enough to hold that state
    (Platform._align_hybrid_block_size), so its block_size is not 16."""

    page_bytes: int  # one block of one layer
    layers_per_group: int
    blocks_per_request: int  # for one request of max_model_len (get_max_concurrency_for_kv_cache_config)
    block_size: int = BLOCK_SIZE  # tokens per attention block
    attention_groups: int = 1  # groups whose blocks grow with the sequence
    state_groups: int = 0  # recurrent-state groups: one block per sequence each, whatever its length

    def num_blocks(self, kv_memory: int) -> int:
        return max(kv_memory, 0) // (self.page_bytes * self.layers_per_group)

    def tokens(self, num_blocks: int, max_model_len: int) -> int:
        return int(num_blocks / self.blocks_per_request * max_model_len)


def _hybrid_block_size(attention_page_1_token: int, state_bytes: int) -> int:
    """Platform._align_hybrid_block_size (vllm/platforms/interface.py), prefix caching off (vLLM's default for
    hybrid models): the smallest multiple of the kernel's block alignment (16 for FlashAttention) whose
    attention page holds one sequence's recurrent state; the state page is then padded to it."""
    return BLOCK_SIZE * math.ceil(state_bytes / (BLOCK_SIZE * attention_page_1_token))


def kv_layout(model: ModelSpec, *, kv_bytes: int, tp: int, max_model_len: int, max_num_batched_tokens: int,
              state_dtype_bytes: int = 2) -> KvLayout:
    types = Counter(model.layers)
    per_layer = {layer.bytes_per_token(kv_bytes, tp) for layer in types}
    if len(per_layer) > 1:
        raise PlannerError("model", "layers keep different bytes per token; vLLM's uniform-page layout does not apply")
    block_size = BLOCK_SIZE
    if model.state_layers:
        # mamba_cache_dtype 'auto': the recurrent state follows the model dtype, not kv_cache_dtype
        state = max(layer.state_bytes(state_dtype_bytes, tp) for layer in model.state_layers)
        if not per_layer:  # attention-free: one group of state pages, one page per sequence
            return KvLayout(state, len(model.state_layers), 1, block_size=max_model_len, attention_groups=0, state_groups=1)
        block_size = _hybrid_block_size(next(iter(per_layer)), state)
        types["state"] = len(model.state_layers)
    page = block_size * per_layer.pop()
    if len(types) == 1:
        group_size, groups = sum(types.values()), [next(iter(types))]
    else:
        smallest, largest = min(types.values()), max(types.values())
        group_size = largest if largest < smallest * 1.5 else smallest
        groups = [layer for layer, count in types.items() for _ in range(math.ceil(count / group_size))]
    blocks = attention_groups = state_groups = 0
    for layer in groups:
        if layer == "state":  # MambaSpec.max_memory_usage_bytes, mamba_cache_mode 'none': one page
            blocks += 1
            state_groups += 1
            continue
        attention_groups += 1
        if layer.kind == "sliding":  # SlidingWindowSpec.max_admission_blocks_per_request
            blocks += math.ceil(min(layer.window - 1 + max_num_batched_tokens, max_model_len) / block_size) + 1
        else:
            blocks += math.ceil(max_model_len / block_size)
    return KvLayout(page, group_size, blocks, block_size, attention_groups, state_groups)


def _check_tp(model: ModelSpec, tp: int) -> int:
    if model.num_heads % tp:
        valid = [n for n in (1, 2, 4, 8, 16) if model.num_heads % n == 0]
        raise PlannerError("tensor_parallel_size", f"{tp} does not divide the {model.num_heads} attention heads of "
                                                   f"{model.name}; valid sizes: {valid}")
    kv = model.num_kv_heads
    if not model.is_mla and kv % tp and tp % kv:
        valid = [n for n in (1, 2, 4, 8, 16) if model.num_heads % n == 0 and (kv % n == 0 or n % kv == 0)]
        raise PlannerError("tensor_parallel_size", f"{tp} does not divide the {kv} KV heads of {model.name}; valid sizes: {valid}")
    return tp


# ------------------------------------------------------------------------------------------- plan
def engine_config(model: ModelSpec | EngineConfig | str, **engine_args) -> tuple[ModelSpec, EngineConfig]:
    """The (shapes, configuration) pair a plan is made of, from either spelling."""
    if isinstance(model, EngineConfig):
        config = replace(model, **engine_args) if engine_args else model
        return model_spec(config.model), config
    if isinstance(model, str):
        model = model_spec(model)
    if not isinstance(model, ModelSpec):
        raise PlannerError("model", f"expected an EngineConfig, a ModelSpec or a catalog name, got {type(model).__name__}")
    return model, EngineConfig(model=model.name, **engine_args)


def plan(model: ModelSpec | EngineConfig | str, gpu: GpuSpec, *, calibration: Calibration = CALIBRATION,
         advise: bool = True, **engine_args) -> MemoryPlan:
    """Predict what vLLM's start-up will report for this engine on ``gpu``.

    ``model`` is an EngineConfig, or a ModelSpec / catalog name with vLLM's engine arguments as
    keyword arguments. Raises PlannerError for arguments vLLM would reject; returns a plan with
    ``fits=False`` (and complete suggestions that fit) for settings that run out of memory."""
    spec, config = engine_config(model, **engine_args)
    if not isinstance(gpu, GpuSpec):
        raise PlannerError("gpu", f"expected a GpuSpec (see planner.gpu_preset / read_gpus), got {type(gpu).__name__}")
    return _plan(spec, gpu, config, calibration, advise)


def _plan(spec: ModelSpec, gpu: GpuSpec, config: EngineConfig, calibration: Calibration, advise: bool) -> MemoryPlan:
    config, notes = config.for_gpu(is_hopper=gpu.is_hopper)
    config, model_notes = config.for_model(spec)
    notes = (*notes, *model_notes)
    tp = _check_tp(spec, config.tensor_parallel_size)
    max_model_len = config.max_model_len or spec.max_position_embeddings
    if max_model_len > spec.max_position_embeddings:
        raise PlannerError("max_model_len", f"{max_model_len:,} is longer than {spec.name}'s "
                                            f"max_position_embeddings={spec.max_position_embeddings:,}")
    default_seqs, default_tokens = default_batch_limits(gpu)
    config = replace(config, dtype=resolve_dtype(spec, config.dtype), max_model_len=max_model_len,
                     max_num_seqs=config.max_num_seqs or default_seqs,
                     max_num_batched_tokens=config.max_num_batched_tokens or default_tokens)
    act_bytes = DTYPE_BYTES[config.dtype]
    check_requested(spec.quant, config.quantization)  # vLLM's refusal of a conflicting --quantization, said first
    checkpoint_kv_fp8 = spec.quant is not None and spec.quant.kv_cache_fp8 and config.kv_cache_dtype == "auto"
    # kv_cache_dtype 'auto' follows a checkpoint's FP8 KV scheme (resolve_kv_cache_dtype_string for ModelOpt;
    # Attention.__init__ sets cache_dtype 'fp8' for a compressed-tensors kv_cache_scheme)
    kv_bytes = 1 if checkpoint_kv_fp8 else KV_CACHE_BYTES[config.kv_cache_dtype] or act_bytes
    requested = math.ceil(gpu.cuda_total_bytes * config.gpu_memory_utilization)
    weights = loaded_bytes(spec, gpu, dtype_bytes=act_bytes, quantization=config.quantization, tp=tp,
                           calibration=calibration)
    peak = activation_peak_bytes(spec, act_bytes=act_bytes, max_num_batched_tokens=config.max_num_batched_tokens,
                                 max_num_seqs=config.max_num_seqs, tp=tp, calibration=calibration)
    non_torch = calibration.non_torch_bytes + (tp - 1) * calibration.non_torch_bytes_per_extra_gpu
    graphs = cudagraph_bytes(spec, enforce_eager=config.enforce_eager, calibration=calibration)
    graph_estimate = cudagraph_estimate_bytes(spec, enforce_eager=config.enforce_eager, calibration=calibration)
    if config.kv_cache_memory_bytes:
        # vLLM reserves exactly this for the KV cache and skips the utilization arithmetic; what the engine
        # takes is then the sum of its parts
        kv_memory = config.kv_cache_memory_bytes
        requested = weights + peak + non_torch + graph_estimate + kv_memory
    else:
        kv_memory = requested - weights - peak - non_torch - graph_estimate
    layout = kv_layout(spec, kv_bytes=kv_bytes, tp=tp, max_model_len=max_model_len,
                       max_num_batched_tokens=config.max_num_batched_tokens, state_dtype_bytes=act_bytes)
    num_blocks = layout.num_blocks(kv_memory)
    kv_tokens = layout.tokens(num_blocks, max_model_len)
    quantized = config.quantization == "fp8" or spec.quant is not None
    spread = math.ceil(kv_tokens * (calibration.kv_tokens_relative_spread_fp8 if quantized
                                    else calibration.kv_tokens_relative_spread))

    warnings = list(notes) + list(spec.notes)
    if checkpoint_kv_fp8:
        warnings.append("the checkpoint declares an FP8 KV cache (its kv_cache_scheme / kv_cache_quant_algo): vLLM "
                        "stores the KV cache in FP8 under kv_cache_dtype='auto'")
    if (config.quantization == "fp8" or spec.quant is not None and spec.quant.is_fp8) and not gpu.supports_fp8_tensor_cores:
        warnings.append(f"{gpu.name} has no FP8 tensor cores: vLLM stores FP8 weights but computes in 16-bit (Marlin W8A16).")
    # vLLM's CompilationConfig: with full decode CUDA graphs, every running sequence of a hybrid model needs one
    # Mamba block, so max_num_seqs above the block count is refused at start-up (config/compilation.py)
    state_blocks = conservative_blocks(num_blocks, kv_tokens, spread) if spec.is_hybrid and not config.enforce_eager \
        else None
    fits, reason = _verdict(gpu, requested, weights, kv_memory, graphs, kv_tokens - spread, max_model_len, config,
                            state_blocks)
    result = MemoryPlan(
        model=spec.name, gpu=gpu.name, config=config, structure_source=spec.structure_source,
        total_bytes=gpu.total_bytes, cuda_total_bytes=gpu.cuda_total_bytes, requested_bytes=requested,
        weights_bytes=weights, activation_peak_bytes=peak, non_torch_bytes=non_torch, cudagraph_bytes=graphs,
        kv_cache_bytes=kv_memory, kv_bytes_per_token=kv_bytes_per_token(spec, kv_bytes=kv_bytes, tp=tp),
        block_size=layout.block_size, num_gpu_blocks=num_blocks, kv_tokens=kv_tokens, kv_tokens_spread=spread,
        fits=fits, reason=reason, warnings=tuple(warnings), cudagraph_estimate_bytes=graph_estimate,
        kv_page_bytes=layout.page_bytes, kv_layers_per_group=layout.layers_per_group,
        attention_groups=layout.attention_groups, state_groups=layout.state_groups,
        weights_scheme=weights_description(spec, gpu, config),
    )
    if not fits and advise:
        result = replace(result, advice=suggestions(spec, gpu, config, calibration))
    return result


def conservative_blocks(num_blocks: int, kv_tokens: int, spread: int) -> int:
    """The blocks left when the KV tokens are at the low end of their ± (0 when there is no KV cache)."""
    return int(num_blocks * (kv_tokens - spread) / kv_tokens) if kv_tokens > 0 else 0


def _verdict(gpu, requested, weights, kv_memory, graphs, kv_tokens_low, max_model_len, config,
             state_blocks: int | None = None) -> tuple[bool, str]:
    """Fits, or the first reason vLLM would refuse (conservative: the low end of the ± band)."""
    if gpu.free_bytes is not None and gpu.free_bytes < requested:
        return False, (f"vLLM refuses to start: {gpu.free_bytes / GIB:.2f} GiB free is less than the {requested / GIB:.2f} "
                       f"GiB that gpu_memory_utilization={config.gpu_memory_utilization} requests")
    if weights >= requested:
        # one shortfall figure on every page: all that must fit before the KV cache (MemoryPlan.shortfall_bytes)
        return False, (f"the weights alone ({weights / GIB:.2f} GiB per GPU) exceed the requested {requested / GIB:.2f} "
                       f"GiB; with the activations and the rest, short by {-kv_memory / GIB:.2f} GiB before any KV cache")
    if kv_memory <= 0:
        return False, (f"nothing is left for the KV cache: weights and activations need {(requested - kv_memory) / GIB:.2f} "
                       f"GiB of the requested {requested / GIB:.2f} GiB (short by {-kv_memory / GIB:.2f} GiB)")
    if requested + graphs > gpu.available_bytes:
        return False, (f"the CUDA graphs (about {graphs / GIB:.2f} GiB, captured after the KV cache) do not fit beside the "
                       f"requested {requested / GIB:.2f} GiB: lower gpu_memory_utilization or set enforce_eager")
    if kv_tokens_low < max_model_len:
        return False, (f"the KV cache holds about {max(kv_tokens_low, 0):,} tokens, fewer than one request of "
                       f"max_model_len={max_model_len:,}; vLLM refuses to start")
    if state_blocks is not None and config.max_num_seqs > state_blocks:
        return False, (f"vLLM refuses to start: max_num_seqs={config.max_num_seqs:,} exceeds the about {state_blocks:,} "
                       f"Mamba cache blocks (each running sequence holds one); lower max_num_seqs to {state_blocks:,} "
                       "or raise gpu_memory_utilization")
    return True, f"{kv_tokens_low:,}+ KV tokens, {kv_tokens_low / max_model_len:.1f} sequences of {max_model_len:,} tokens"


UTILIZATION_STEPS = (0.85, 0.9, 0.95)  # the shares people set; vLLM's default is 0.9


def suggestions(spec: ModelSpec, gpu: GpuSpec, failed: EngineConfig, calibration: Calibration = CALIBRATION,
                limit: int = 4) -> tuple[Suggestion, ...]:
    """Complete configurations that fit, smallest change first; each was planned and fits, and says why
    its numbers are what they are."""
    graphs_gib = cudagraph_bytes(spec, calibration=calibration) / GIB
    candidates: list[tuple[str, dict, str]] = []
    if spec.is_hybrid:  # the hybrid refusal: fewer Mamba blocks than max_num_seqs
        seqs = _plan(spec, gpu, replace(failed, enforce_eager=True), calibration, advise=False).num_gpu_blocks
        for n in (seqs * 9 // 10 // 8 * 8, 256, 128):
            if 0 < n < failed.max_num_seqs:
                why = (f"each running sequence holds one Mamba block: {n} is 90% of the about {seqs:,} blocks, "
                       "a multiple of 8" if n == seqs * 9 // 10 // 8 * 8 else f"a round figure below the about {seqs:,} blocks")
                candidates.append((f"max_num_seqs={n}", {"max_num_seqs": n}, why))
    # the step nearest the failed value first (the smallest change), the higher of two equally near (more KV cache)
    steps = sorted((u for u in UTILIZATION_STEPS if u != failed.gpu_memory_utilization),
                   key=lambda u: (abs(u - failed.gpu_memory_utilization), -u))
    utils = [(u, _utilization_why(u, failed.gpu_memory_utilization, graphs_gib)) for u in steps]
    if gpu.free_bytes is not None:
        free_util = math.floor((gpu.free_bytes - cudagraph_bytes(spec)) / gpu.cuda_total_bytes * 100) / 100
        utils.insert(0, (free_util, f"what is free on the GPU now ({gpu.free_bytes / GIB:.2f} GiB) less the "
                                    f"{graphs_gib:.2f} GiB of CUDA graphs captured outside the request"))
    for util, why in utils:
        candidates.append((f"gpu_memory_utilization={util}", {"gpu_memory_utilization": util}, why))
    candidates.append(("enforce_eager (no CUDA graphs)", {"enforce_eager": True},
                       f"no CUDA graphs: frees their {graphs_gib:.2f} GiB; decode is slower"))
    online_fp8 = failed.quantization is None and spec.quant is None  # a pre-quantized checkpoint keeps its own scheme
    if online_fp8:
        candidates.append(("quantization=fp8", {"quantization": "fp8"}, "FP8 weights: about half the bytes of 16-bit"))
    kv_dtype = {"dtype": "bfloat16" if gpu.is_hopper else failed.dtype}
    kv_why = "an FP8 KV cache: half the bytes per token" + (" (with bfloat16 activations, as vLLM needs on Hopper)"
                                                            if gpu.is_hopper else "")
    if not failed.fp8_kv:
        candidates.append(("kv_cache_dtype=fp8", {"kv_cache_dtype": "fp8", **kv_dtype}, kv_why))
    for length, part in ((failed.max_model_len // 2, "half"), (failed.max_model_len // 4, "a quarter"),
                         (4096, "a common limit"), (2048, "a common limit")):
        if 0 < length < failed.max_model_len:
            why = (f"{part} of max_model_len={failed.max_model_len:,}: one request of that length must fit "
                   "the KV cache") if part != "a common limit" else f"{length:,} tokens, {part}"
            candidates.append((f"max_model_len={length}", {"max_model_len": length}, why))
    for tp in (2, 4, 8):
        if tp > failed.tensor_parallel_size:
            tp_why = f"the weights and the KV cache split across {tp} GPUs"
            candidates.append((f"tensor_parallel_size={tp} ({tp} GPUs)", {"tensor_parallel_size": tp}, tp_why))
            for util, why in utils:
                candidates.append((f"tensor_parallel_size={tp} ({tp} GPUs), gpu_memory_utilization={util}",
                                   {"tensor_parallel_size": tp, "gpu_memory_utilization": util}, f"{tp_why}; {why}"))
            if online_fp8:
                candidates.append((f"tensor_parallel_size={tp} ({tp} GPUs), quantization=fp8",
                                   {"tensor_parallel_size": tp, "quantization": "fp8"}, f"{tp_why}, in FP8"))
    if online_fp8:
        candidates.append(("quantization=fp8, kv_cache_dtype=fp8", {"quantization": "fp8", "kv_cache_dtype": "fp8",
                                                                     **kv_dtype}, f"FP8 weights and {kv_why}"))
    found: list[Suggestion] = []
    fitted: list[dict] = []
    for change, fields, why in candidates:
        if any(f.items() < fields.items() for f in fitted):
            continue  # a change that already fits on its own needs nothing added (it would only cost KV cache)
        try:
            trial = _plan(spec, gpu, replace(failed, **fields), calibration, advise=False)
        except PlannerError:
            continue
        if trial.fits:
            found.append(Suggestion(change, trial.config, trial.kv_tokens, why, trial.kv_tokens_spread))
            fitted.append(fields)
        if len(found) >= limit:
            break
    return tuple(found)


def _utilization_why(util: float, failed: float, graphs_gib: float) -> str:
    """Why a utilization step: a higher share buys KV cache; a lower one leaves room for what vLLM
    allocates outside the request (the CUDA graphs, captured after the KV cache is sized)."""
    if util > failed:
        return f"more of the GPU for the KV cache ({util} instead of {failed}, the next of the usual steps)"
    return (f"the nearest usual step below {failed}: it leaves room outside the request for the "
            f"{graphs_gib:.2f} GiB of CUDA graphs captured after the KV cache")
