"""What PyTorch's CUDA caching allocator counts while vLLM loads a model: "Model loading took" is the
growth of ``torch.cuda.memory_allocated()``, which counts whole allocator blocks, not the tensors in them.

vLLM 0.25.1 loads with ``max_split_size_mb=20`` (vllm/v1/worker/gpu_worker.py, Worker.load_model:
"_scoped_allocator_max_split"). Under that setting PyTorch never splits a cached block for a request of
20 MiB or more and hands out a cached block up to 20 MiB larger than asked (c10/cuda/CUDACachingAllocator.cpp:
get_free_block, should_split). Online FP8 materializes each 16-bit weight, quantizes it into a new 1-byte
tensor and frees the 16-bit one, so later 1-byte weights land in freed 16-bit blocks a little larger than
themselves, and the difference counts as loaded memory: 0.90 GiB for Qwen2.5-14B, 0.19 GiB for Llama-2-7B,
nothing for Llama-3-8B, 0.75 GiB for Llama-4-Scout's expert layers (measured: benchmarks/measure_kv.py
--trace-load, docs/planner.md and docs/results/planner-accuracy.md). This module replays
the allocations of a load with the allocator's rules; it has no fitted numbers.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

MIB = 1 << 20
SMALL_SIZE = 1 * MIB  # kSmallSize: requests up to this come from the small pool
SMALL_BUFFER = 2 * MIB  # kSmallBuffer
LARGE_BUFFER = 20 * MIB  # kLargeBuffer
MIN_LARGE_ALLOC = 10 * MIB  # kMinLargeAlloc
ROUND_LARGE = 2 * MIB  # kRoundLarge
VLLM_LOAD_MAX_SPLIT = 20 * MIB  # Worker.load_model's max_split_size_mb


@dataclass(eq=False)
class _Block:
    size: int
    prev: _Block | None = None
    next: _Block | None = None
    used: bool = False
    key: int = field(default_factory=lambda: next(_KEYS))


_KEYS = iter(range(1 << 62))


class CachingAllocator:
    """The large pool of PyTorch's caching allocator (one stream, no expandable segments). Requests of at
    most 1 MiB are counted at their rounded size (the small pool's fragmentation is not modelled)."""

    def __init__(self, max_split_size: int = VLLM_LOAD_MAX_SPLIT):
        self.max_split_size = max_split_size
        self.allocated = 0  # memory_allocated(): whole blocks
        self._free: list[tuple[int, int, _Block]] = []  # (size, key, block), best fit first

    @staticmethod
    def round_size(size: int) -> int:
        return 512 if size < 512 else 512 * math.ceil(size / 512)

    @staticmethod
    def segment_size(size: int) -> int:  # get_allocation_size
        if size <= SMALL_SIZE:
            return SMALL_BUFFER
        if size < MIN_LARGE_ALLOC:
            return LARGE_BUFFER
        return ROUND_LARGE * math.ceil(size / ROUND_LARGE)

    def malloc(self, size: int) -> _Block | int:
        size = self.round_size(size)
        if size <= SMALL_SIZE:
            self.allocated += size
            return size
        block = None
        i = bisect.bisect_left(self._free, (size, -1))
        if i < len(self._free):
            candidate = self._free[i][2]
            oversized = (candidate.size >= self.max_split_size if size < self.max_split_size
                         else candidate.size >= size + LARGE_BUFFER)
            if not oversized:
                block = candidate
                self._free.pop(i)
        if block is None:  # a new segment (cudaMalloc)
            block = _Block(self.segment_size(size))
        remaining = block.size - size
        if size < self.max_split_size and remaining > SMALL_SIZE:  # should_split
            rest = _Block(remaining, prev=block, next=block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next, block.size = rest, size
            bisect.insort(self._free, (rest.size, rest.key, rest))
        block.used = True
        self.allocated += block.size
        return block

    def free(self, block: _Block | int) -> None:
        if isinstance(block, int):
            self.allocated -= block
            return
        block.used = False
        self.allocated -= block.size
        for neighbour in (block.prev, block.next):  # merge with free neighbours of the same segment
            if neighbour is None or neighbour.used:
                continue
            self._free.remove((neighbour.size, neighbour.key, neighbour))
            first, second = (neighbour, block) if neighbour is block.prev else (block, neighbour)
            first.size += second.size
            first.next = second.next
            if second.next is not None:
                second.next.prev = first
            block = first
        bisect.insort(self._free, (block.size, block.key, block))


@dataclass(frozen=True)
class LoadedModule:
    """One vLLM module whose weights are materialized and processed together: each weight's elements on one
    rank, and for a fused-MoE expert stack the experts its online-FP8 quantization walks one at a time."""
    weights: tuple[int, ...]
    experts: int = 0


def load_order(model, tp: int = 1) -> list[LoadedModule] | None:
    """The decoder's quantizable modules in the order vLLM builds and loads them (model.modules(), which the
    dummy loader walks too): per layer qkv_proj and o_proj (attention), in_proj and out_proj (a Mamba2 mixer:
    MambaMixer2, whose conv1d is not quantized), then the MLP's gate_up_proj and down_proj or, in an MoE layer,
    the shared expert's (Llama-4, Qwen2/3-MoE register it before the experts) and the FusedMoE stack (w13, w2).
    None when the model is laid out otherwise (MLA, other recurrent mixers, MoE in only some layers): their
    loads are not replayed."""
    p = model.params
    h, inter, layers = model.hidden_size, model.intermediate_size, model.num_layers
    q, kv = model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim
    if model.is_mla or p.linear_replicated:
        return None
    if len(model.layers) != layers or len(model.state_layers) not in (0, layers):
        return None  # only every-layer-alike stacks (dense, or Falcon-H1's attention + Mamba in each layer)
    if any(state.kind != "mamba2" for state in model.state_layers):
        return None
    kv_rank = max(1, model.num_kv_heads // tp) * model.head_dim
    per_layer = [LoadedModule((h * (q // tp + 2 * kv_rank),)), LoadedModule((q // tp * h,))]
    whole = h * (q + 2 * kv) + q * h
    if model.state_layers:
        if model.num_experts:
            return None
        s = model.state_layers[0]
        in_proj = 2 * s.channels + 2 * s.groups_on(tp) * s.state_size + s.heads
        per_layer += [LoadedModule((h * in_proj // tp,)), LoadedModule((s.channels // tp * h,))]
        whole += h * (2 * s.channels + 2 * s.n_groups * s.state_size + s.heads) + s.channels * h
    if model.num_experts:
        experts = model.num_experts
        if p.experts != layers * experts * 3 * h * inter:
            return None  # not one expert stack of this width in every layer
        shared = {name.rsplit(".", 1)[-1]: (fan_in, fan_out) for name, fan_in, fan_out, count in p.linears
                  if ".shared_expert." in name and count == layers}
        if shared:
            if set(shared) != {"gate_proj", "up_proj", "down_proj"}:
                return None
            width = shared["gate_proj"][1]
            per_layer += [LoadedModule((h * 2 * width // tp,)), LoadedModule((width // tp * h,))]
            whole += 3 * h * width
        per_layer.append(LoadedModule((experts * 2 * inter // tp * h, experts * h * inter // tp), experts))
    else:
        per_layer += [LoadedModule((h * 2 * inter // tp,)), LoadedModule((inter // tp * h,))]
        whole += 3 * h * inter
    if layers * whole != p.linear_split:
        return None
    return per_layer * layers


def load_block_overhead_bytes(model, *, dtype_bytes: int, quantization: str | None, tp: int = 1,
                              vocab_rows: int, rotary_elements: int) -> int:
    """Bytes that "Model loading took" counts beyond the model's tensors: whole allocator blocks around
    them, replayed for the load's allocation order. 0 for layouts that are not replayed."""
    modules = load_order(model, tp)
    if modules is None:
        return 0
    alloc = CachingAllocator()
    tensors = 0

    def keep(nbytes: int) -> None:
        nonlocal tensors
        tensors += CachingAllocator.round_size(nbytes)
        alloc.malloc(nbytes)

    keep(vocab_rows * model.hidden_size * dtype_bytes)  # embed_tokens, built first
    if quantization != "fp8":  # 16-bit: every weight is allocated when the model is built, in order
        for module in modules:
            for elements in module.weights:
                keep(elements * dtype_bytes)
    if not model.tie_word_embeddings:
        keep(vocab_rows * model.hidden_size * dtype_bytes)
    keep(rotary_elements * dtype_bytes)
    if quantization == "fp8":
        # online FP8 (quantization/online/fp8.py): a module's weights are materialized in 16-bit, quantized into
        # new 1-byte tensors, and the 16-bit ones freed; an expert stack is quantized expert by expert, each
        # scaled_fp8_quant returning a 1-byte temporary of one expert's slice (w13's, then w2's)
        for module in modules:
            sixteen_bit = [alloc.malloc(elements * dtype_bytes) for elements in module.weights]
            for elements in module.weights:
                keep(elements)
            for _ in range(module.experts):
                for elements in module.weights:
                    alloc.free(alloc.malloc(elements // module.experts))
            for block in sixteen_bit:
                alloc.free(block)
    return alloc.allocated - tensors


def checkpoint_load_overhead_bytes(build: list[int], repacks: list[list[tuple[str, int, int]]]) -> int:
    """Bytes "Model loading took" counts beyond the tensors of a pre-quantized checkpoint: its tensors are
    allocated at their final size when the model is built (``build``: bytes, in order), then each module's
    process_weights_after_loading runs in turn (``repacks``: per module, ("alloc", key, bytes) and ("free", key, 0)
    events; key "param:NAME" is a built tensor, anything else a new one). Blocks ≥ 20 MiB are counted whole
    (a 2 MiB-rounded segment, or a freed block up to 20 MiB larger), as Worker.load_model's max_split_size_mb=20
    makes the allocator do."""
    alloc = CachingAllocator()
    live: dict[str, _Block | int] = {}
    sizes: dict[str, int] = {}
    index = 0
    # build: a Linear's or expert stack's tensor (bytes; param:INDEX counts these only), or ("alloc" | "free",
    # "build:NAME", bytes) for any other tensor of the build (the rotary cache, its float32 temporaries)
    for item in build:
        if isinstance(item, tuple):
            op, key, nbytes = item
            if op == "alloc":
                live[key], sizes[key] = alloc.malloc(nbytes), CachingAllocator.round_size(nbytes)
            else:
                alloc.free(live.pop(key))
                sizes.pop(key)
            continue
        live[f"param:{index}"] = alloc.malloc(item)
        sizes[f"param:{index}"] = CachingAllocator.round_size(item)
        index += 1
    for module, events in enumerate(repacks):
        for op, key, nbytes in events:
            key = key if key.startswith("param:") else f"{module}:{key}"
            if op == "alloc":
                live[key] = alloc.malloc(nbytes)
                sizes[key] = CachingAllocator.round_size(nbytes)
            else:
                alloc.free(live.pop(key))
                sizes.pop(key)
        for key in [k for k in live if k.startswith(f"{module}:tmp:")]:  # a module's temporaries end with it
            alloc.free(live.pop(key))
            sizes.pop(key)
    return alloc.allocated - sum(sizes.values())
