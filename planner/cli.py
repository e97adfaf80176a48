"""python -m planner: the plan for a model on the local GPU (NVML) or a preset, as a table."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from planner.errors import PlannerError
from planner.fit import largest_model, max_batch_size, max_context_len
from planner.gpus import GIB, GpuSpec, gpu_preset, gpu_presets
from planner.memory import MemoryPlan, plan
from planner.models import catalog_names, model_spec
from planner.nvml import read_gpus


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m planner",
        description="Predict vLLM's KV-cache size, the largest batch and context, and which models fit, "
                    "before anything is loaded. Engine arguments keep vLLM's names.",
        epilog="Examples:\n  python -m planner --model llama-2-7b --gpu h100-sxm\n"
               "  python -m planner --model llama-3-8b --gpu h100-sxm --quantization fp8 --kv-cache-dtype fp8 "
               "--dtype bfloat16\n  python -m planner --largest-model --gpu l40s --quantization fp8\n"
               "  python -m planner --model ./my-model/config.json          # the local GPU, through NVML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help=f"catalog name ({', '.join(catalog_names())}) or a config.json path")
    parser.add_argument("--gpu", default="local",
                        help=f"'local' (read through NVML, default) or a preset: {', '.join(gpu_presets())}")
    parser.add_argument("--gpu-index", type=int, default=0, help="which local GPU (default 0)")
    parser.add_argument("--quantization", choices=["none", "fp8"], default="none")
    parser.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8", "fp8_e4m3", "fp8_e5m2"])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--max-num-seqs", type=int, default=None)
    parser.add_argument("--max-num-batched-tokens", type=int, default=None)
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--context-len", type=int, default=None,
                        help="tokens per sequence for the largest-batch answer (default: max_model_len)")
    parser.add_argument("--batch-size", type=int, default=1, help="sequences for the longest-context answer")
    parser.add_argument("--largest-model", action="store_true", help="list the catalog models that fit, biggest first")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def resolve_gpu(name: str, index: int) -> GpuSpec:
    if name == "local":
        return read_gpus(index)[0].to_spec()
    return gpu_preset(name)


def format_plan(p: MemoryPlan, batch: int, context: int, batch_size: int, longest: int) -> str:
    rows = [
        ("model", p.model), ("GPU", f"{p.gpu} ({p.total_bytes / GIB:.2f} GiB)"),
        ("engine", f"dtype={p.dtype} quantization={p.quantization} kv_cache_dtype={p.kv_cache_dtype} "
                   f"tp={p.tensor_parallel_size}"),
        ("requested", f"{p.requested_bytes / GIB:.2f} GiB (gpu_memory_utilization={p.gpu_memory_utilization})"),
        ("  weights", f"{p.weights_bytes / GIB:.2f} GiB"),
        ("  activation peak", f"{p.activation_peak_bytes / GIB:.2f} GiB (max_num_batched_tokens={p.max_num_batched_tokens}, max_num_seqs={p.max_num_seqs})"),
        ("  non-torch", f"{p.non_torch_bytes / GIB:.2f} GiB"),
        ("  KV cache", f"{p.kv_cache_bytes / GIB:.2f} GiB"),
        ("CUDA graphs", f"{p.cudagraph_bytes / GIB:.2f} GiB, captured after the KV cache (outside the request)"),
        ("KV bytes per token", f"{p.kv_bytes_per_token:,}"),
        ("KV tokens", f"{p.kv_tokens:,} ({p.num_gpu_blocks:,} blocks of {p.block_size})"),
        ("max concurrency", f"{p.kv_concurrency:.2f}x at max_model_len={p.max_model_len:,}"),
        ("largest batch", f"{batch} sequences of {context:,} tokens"),
        ("longest context", f"{longest:,} tokens each for {batch_size} sequence(s)"),
        ("verdict", ("FITS: " if p.fits else "DOES NOT FIT: ") + p.reason),
    ]
    rows += [("warning", w) for w in p.warnings]
    rows += [("try", a) for a in p.advice]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    engine_args = dict(
        quantization=None if args.quantization == "none" else args.quantization,
        kv_cache_dtype=args.kv_cache_dtype, dtype=args.dtype,
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
        tensor_parallel_size=args.tensor_parallel_size, max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens, enforce_eager=args.enforce_eager,
    )
    try:
        gpu = resolve_gpu(args.gpu, args.gpu_index)
        if args.largest_model:
            plans = largest_model(gpu, **engine_args)
            if args.json:
                print(json.dumps([asdict(p) | {"kv_tokens": p.kv_tokens} for p in plans], indent=2))
            else:
                print(f"Catalog models that fit on {gpu.name}, biggest first:")
                for p in plans:
                    print(f"  {p.model:<16} weights {p.weights_bytes / GIB:6.2f} GiB  KV tokens {p.kv_tokens:>10,}")
                if not plans:
                    print("  none")
            return 0
        if not args.model:
            parser.error("--model is required (or pass --largest-model)")
        spec = model_spec(args.model)
        p = plan(spec, gpu, **engine_args)
        context = args.context_len or p.max_model_len
        batch = max_batch_size(spec, gpu, context_len=context, **engine_args)
        longest = max_context_len(spec, gpu, batch_size=args.batch_size, **engine_args)
    except PlannerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(p) | {"kv_tokens": p.kv_tokens, "max_concurrent_seqs": p.max_concurrent_seqs,
                                      "largest_batch": batch, "longest_context": longest}, indent=2))
    else:
        print(format_plan(p, batch, context, args.batch_size, longest))
    return 0 if p.fits else 1
