"""Start one vLLM engine (LLM class, default engine arguments otherwise) and print, as one JSON
line, what it reported: KV tokens, and the planner's prediction for the same arguments.

    python benchmarks/measure_kv.py --model-dir /tmp/models/qwen2.5-7b --dtype bfloat16 \
        --gpu-memory-utilization 0.85 --max-model-len 8192

Run it once per configuration (a fresh process each, so nothing else is on the GPU). With
VLLM_LOGGING_LEVEL=DEBUG the log also holds the profile breakdown (benchmarks/vllm_log.py reads it).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--quantization", default=None)
    p.add_argument("--kv-cache-dtype", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--inspect", action="store_true",
                   help="run the engine in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) and print what the CUDA "
                        "memory after load holds: the model's parameters and buffers by dtype, and every other live "
                        "CUDA tensor of 16 MiB or more (where online FP8 leaves memory behind)")
    p.add_argument("--trace-load", action="store_true",
                   help="with --inspect: record every CUDA allocation while the engine starts (torch's memory "
                        "history) and print the live ones that are not model tensors, summed by where vLLM allocated "
                        "them: what 'Model loading took' holds beyond the weights")
    p.add_argument("--enforce-eager", action="store_true", help="no torch.compile or CUDA graphs (a faster start)")
    p.add_argument("--kv-cache-memory-bytes", type=int, default=None,
                   help="pin the KV cache (vLLM's CacheConfig.kv_cache_memory_bytes) instead of profiling for it")
    p.add_argument("--max-num-seqs", type=int, default=None)
    args = p.parse_args()
    if args.trace_load:
        args.inspect = True
        import torch

        torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="python")
    if args.inspect:
        import os

        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

    from vllm import LLM

    from planner import model_spec, plan, read_gpus
    from planner.nvml import visible_gpu_index

    spec = model_spec(args.model_dir)
    gpu = read_gpus(visible_gpu_index())[0]
    predicted = plan(spec, gpu.to_spec(), quantization=args.quantization, kv_cache_dtype=args.kv_cache_dtype,
                     dtype=args.dtype, gpu_memory_utilization=args.gpu_memory_utilization,
                     max_model_len=args.max_model_len, tensor_parallel_size=args.tensor_parallel_size,
                     enforce_eager=args.enforce_eager, max_num_seqs=args.max_num_seqs, kv_cache_memory_bytes=args.kv_cache_memory_bytes)
    extra = {"enforce_eager": True} if args.enforce_eager else {}
    if args.max_num_seqs:
        extra["max_num_seqs"] = args.max_num_seqs
    if args.kv_cache_memory_bytes:
        extra["kv_cache_memory_bytes"] = args.kv_cache_memory_bytes
    if predicted.config.language_model_only:  # a multimodal model, started as the plan sized it
        extra["language_model_only"] = True
    started = time.perf_counter()
    llm = LLM(model=args.model_dir, load_format="dummy", quantization=args.quantization,
              kv_cache_dtype=args.kv_cache_dtype, dtype=args.dtype, max_model_len=args.max_model_len,
              gpu_memory_utilization=args.gpu_memory_utilization, skip_tokenizer_init=True, seed=0,
              tensor_parallel_size=args.tensor_parallel_size, **extra)
    cache = llm.llm_engine.vllm_config.cache_config
    if args.inspect:
        print(json.dumps({"inspect": inspect_memory(llm)}), flush=True)
    if args.trace_load:
        print(json.dumps({"trace": trace_allocations(llm)}), flush=True)
        print(json.dumps({"load_window": trace_load_window(llm)}), flush=True)
    import vllm

    print(json.dumps({
        "model": spec.name, "quantization": args.quantization, "kv_cache_dtype": args.kv_cache_dtype,
        "dtype": args.dtype, "gpu_memory_utilization": args.gpu_memory_utilization,
        "max_model_len": llm.llm_engine.vllm_config.model_config.max_model_len,
        "measured_kv_tokens": cache.num_gpu_blocks * cache.block_size, "block_size": cache.block_size,
        "predicted_kv_tokens": predicted.kv_tokens, "predicted_block_size": predicted.block_size,
        "predicted_requested_bytes": predicted.requested_bytes, "tensor_parallel_size": args.tensor_parallel_size,
        "predicted_weights_gib": predicted.weights_bytes / 2**30, "gpu": gpu.name, "gpu_total_bytes": gpu.total_bytes,
        "gpu_free_bytes_before": gpu.free_bytes, "vllm": vllm.__version__, "startup_s": round(time.perf_counter() - started, 1),
    }), flush=True)
    import os
    os._exit(0)


def _model(llm):
    core = llm.llm_engine.engine_core.engine_core
    return core.model_executor.driver_worker.worker.model_runner.model


def trace_allocations(llm, top: int = 12) -> list[dict]:
    """Live CUDA allocations that no model parameter or buffer lives in, summed by the innermost vLLM
    frames that allocated them (torch.cuda.memory._snapshot with the history recorded since start)."""
    import bisect

    import torch

    model = _model(llm)
    owned = sorted({t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()] if t.is_cuda})
    groups: dict[str, list] = {}
    for segment in torch.cuda.memory._snapshot()["segments"]:
        for block in segment["blocks"]:
            if block["state"] != "active_allocated":
                continue
            start, size = block["address"], block["size"]
            i = bisect.bisect_left(owned, start)
            if i < len(owned) and owned[i] < start + size:
                continue  # a model tensor lives here
            key = _frames_key(block.get("frames", []), 4)
            entry = groups.setdefault(key, [0, 0])
            entry[0] += size
            entry[1] += 1
    return _ranked(groups, top)


def _ranked(groups: dict[str, list], top: int) -> list[dict]:
    """{where: [bytes, blocks]} as the ``top`` largest, in GiB."""
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    return [{"gib": round(size / 2**30, 4), "blocks": n, "allocated_at": key} for key, (size, n) in ranked]


def _frames_key(frames: list, depth: int = 5) -> str:
    import os

    mine = [f for f in frames if "vllm" in f["filename"] or "/torch/" in f["filename"]]
    return " < ".join(f"{os.path.basename(f['filename'])}:{f['line']}:{f['name']}" for f in mine[:depth]) or "?"


def trace_load_window(llm, top: int = 15) -> dict:
    """What 'Model loading took' measured, from torch's allocation history: the allocations made while
    vLLM's model loader ran (base_loader.load_model on the stack) that were still live when it returned,
    minus the model's own tensors; each group says where it was allocated and whether it was freed later."""
    import torch

    model = _model(llm)
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()] if t.is_cuda}
    events = torch.cuda.memory._snapshot()["device_traces"][0]
    in_loader = [i for i, e in enumerate(events) if any(f["filename"].endswith("base_loader.py") for f in e.get("frames", []))]
    if not in_loader:
        return {"error": "no allocation with vLLM's model loader on the stack (the history may have wrapped)"}
    first, last = in_loader[0], in_loader[-1]
    live: dict[int, tuple[int, int, list]] = {}
    for i, e in enumerate(events[: last + 1]):
        if e["action"] == "alloc":
            live[e["addr"]] = (i, e["size"], e.get("frames", []))
        elif e["action"] in ("free_requested", "free_completed"):
            live.pop(e["addr"], None)
    freed_later: dict[int, str] = {}
    for e in events[last + 1:]:
        if e["action"] == "free_requested" and e["addr"] in live and e["addr"] not in freed_later:
            freed_later[e["addr"]] = _frames_key(e.get("frames", []), 3)
    groups: dict[str, list] = {}
    total = params = 0
    for addr, (i, size, frames) in live.items():
        if i < first:
            continue
        total += size
        if addr in owned and addr not in freed_later:
            params += size
            continue
        key = _frames_key(frames) + ("  [freed later at " + freed_later[addr] + "]" if addr in freed_later else "")
        entry = groups.setdefault(key, [0, 0])
        entry[0] += size
        entry[1] += 1
    return {"live_after_loader_gib": total / 2**30, "model_tensors_gib": params / 2**30, "events": len(events),
            "other": _ranked(groups, top)}


def inspect_memory(llm) -> dict:
    """What the weights' memory is made of, in the engine's own process."""
    import gc
    from collections import Counter

    import torch

    model = _model(llm)
    owned = {}
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        owned[t.data_ptr()] = (name, t)
    by_dtype = Counter()
    for _, t in owned.values():
        if t.is_cuda:
            by_dtype[str(t.dtype)] += t.numel() * t.element_size()
    strays = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.is_cuda and obj.data_ptr() not in owned:
                size = obj.untyped_storage().nbytes()
                if size >= 16 * 2**20:
                    strays.append((size, str(obj.dtype), tuple(obj.shape)))
        except Exception:  # noqa: BLE001 - some objects refuse introspection; they are not ours to size
            continue
    strays.sort(reverse=True)
    return {"allocated_gib": torch.cuda.memory_allocated() / 2**30,
            "model_tensors_gib_by_dtype": {k: v / 2**30 for k, v in by_dtype.items()},
            "other_cuda_tensors": [{"gib": s / 2**30, "dtype": d, "shape": sh} for s, d, sh in strays[:20]],
            "other_cuda_tensors_gib": sum(s for s, _, _ in strays) / 2**30}


if __name__ == "__main__":
    main()
