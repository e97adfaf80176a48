"""python -m planner: the plan for a model on the local GPU (NVML) or a preset, as a table."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from planner.fit import largest_model, max_batch_size, max_context_len, min_utilization_for
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
               "--dtype bfloat16\n  python -m planner --model qwen3-30b-a3b --gpu h100-sxm --quantization fp8 --need 32x8192\n"
               "  python -m planner --largest-model --gpu l40s --quantization fp8\n"
               "  python -m planner --list-gpus                                # what NVML reads on this host\n"
               "  python -m planner --model ./my-model/config.json          # the local GPU, through NVML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=None, help=f"catalog name ({', '.join(catalog_names())}) or a config.json path")
    EngineConfig.add_arguments(parser)  # the engine flags: one definition for every CLI of the project
    parser.add_argument("--gpu", default="local",
                        help=f"'local' (read through NVML, default) or a preset: {', '.join(gpu_presets())}")
    parser.add_argument("--gpu-index", type=int, default=0, help="which local GPU (default 0)")
    parser.add_argument("--context-len", type=int, default=None,
                        help="tokens per sequence for the largest-batch answer (default: max_model_len)")
    parser.add_argument("--batch-size", type=int, default=1, help="sequences for the longest-context answer")
    parser.add_argument("--need", metavar="SEQSxTOKENS", default=None,
                        help="the inverse plan: the smallest gpu_memory_utilization that holds SEQS concurrent "
                             "requests of TOKENS tokens each (e.g. 32x8192), and the `vllm serve` line to launch with")
    parser.add_argument("--largest-model", action="store_true", help="list the catalog models that fit, biggest first")
    parser.add_argument("--list-gpus", action="store_true", help="print the GPUs NVML reads on this host and exit")
    parser.add_argument("--speed", action="store_true",
                        help="also predict decode tok/s at batch 1, 8, 64 and the largest batch, TTFT, and FP8 / 16-bit "
                             "for the three precisions (planner/speed.py, fitted to this project's runs)")
    parser.add_argument("--prompt-len", type=int, default=512, help="--speed: prompt tokens per request (default 512)")
    parser.add_argument("--output-len", type=int, default=256, help="--speed: output tokens per request (default 256)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def parse_need(text: str) -> tuple[int, int]:
    seqs, sep, tokens = text.lower().partition("x")
    if not sep or not seqs.strip().isdigit() or not tokens.strip().isdigit():
        raise PlannerError("need", f"{text!r} must be SEQSxTOKENS, e.g. 32x8192")
    return int(seqs), int(tokens)


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
        ("  weights", f"{p.weights_bytes / GIB:.2f} GiB: {p.weights_scheme}"),
        ("  activation peak", f"{p.activation_peak_bytes / GIB:.2f} GiB (max_num_batched_tokens={p.max_num_batched_tokens}, max_num_seqs={p.max_num_seqs})"),
        ("  non-torch", f"{p.non_torch_bytes / GIB:.2f} GiB"),
        ("  graph estimate", f"{p.cudagraph_estimate_bytes / GIB:.2f} GiB (CUDA graphs; vLLM's V1 model runner sets it aside before the KV cache)"),
        ("  KV cache", f"{p.kv_cache_bytes / GIB:.2f} GiB"),
        ("CUDA graphs", f"{p.cudagraph_bytes / GIB:.2f} GiB, captured after the KV cache (outside the request)"),
        ("KV bytes per token", f"{p.kv_bytes_per_token:,}"),
        ("KV tokens", f"{p.kv_tokens:,} ({p.num_gpu_blocks:,} blocks of {p.block_size})"),
        *([("state per sequence", f"{p.state_groups} block{'s' if p.state_groups > 1 else ''} ({p.state_groups * p.kv_page_bytes * p.kv_layers_per_group / 2**20:,.1f} "
                                  "MiB of Mamba state), whatever its length")] if p.state_groups else []),
        ("max concurrency", f"{p.kv_concurrency:.2f}x at max_model_len={p.max_model_len:,}"),
        ("largest batch", f"{batch} sequences of {context:,} tokens"),
        ("longest context", f"{longest:,} tokens each for {batch_size} sequence(s)"),
        ("verdict", ("FITS: " if p.fits else "DOES NOT FIT: ") + p.reason),
    ]
    rows += [("warning", w) for w in p.warnings]
    # the figure the suggestion's own verdict counts on, and why its numbers are what they are
    rows += [("try", f"{a.change}: {a.kv_tokens_low:,}+ KV tokens ({a.why}); {a.config.command('serve')}")
             for a in p.advice]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_speeds(predictions, calibration_note: str = "") -> str:
    """The predicted speed table: one block per precision, the FP8 / 16-bit ratio at each batch."""
    from planner.speed import VLLM_VERSION, ratio, speed_notes

    first = predictions[0]
    lines = [f"Predicted speed on {first.gpu} (vLLM {VLLM_VERSION}; {calibration_note or first.calibration_source}; "
             f"± from the fit's residuals), {first.prompt_len}-token prompts, {first.output_len} output tokens each:",
             f"  {'precision':<14} {'batch':>6} {'decode tok/s per request':>25} {'output tok/s':>18} {'vs fp16':>8}  bound"]
    base = predictions[0]
    for pred in predictions:
        for point in pred.points:
            r = ratio(pred, base, point.batch)
            lines.append(f"  {pred.precision:<14} {point.batch:>6} {f'{point.decode_tok_s:,.0f} ± {point.decode_tok_s * point.spread:,.0f}':>25} "
                         f"{f'{point.output_tok_s:,.0f} ± {point.output_tok_s * point.spread:,.0f}':>18} "
                         f"{f'{r:.2f}x' if r else '-':>8}  {point.bound}")
        lines.append(f"  {pred.precision:<14} TTFT {pred.ttft_s * 1000:,.1f} ± {pred.ttft_s * pred.ttft_spread * 1000:,.1f} ms "
                     f"for one {pred.prompt_len}-token prompt; largest batch {pred.largest_batch:,}")
    notes = speed_notes(predictions)
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:
        from planner.calibrate import main as calibrate_main

        return calibrate_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quantization == "none":
        args.quantization = None
    try:
        if args.list_gpus:
            for reading in read_gpus():
                print(json.dumps(asdict(reading)) if args.json else
                      f"{reading.index}: {reading.name}  total {reading.total_bytes / GIB:.2f} GiB  "
                      f"free {reading.free_bytes / GIB:.2f} GiB  used by others {reading.used_bytes / GIB:.2f} GiB")
            return 0
        config = EngineConfig.from_args(args, model=args.model or "any catalog model")
        engine_args = {f.name: getattr(config, f.name) for f in fields(EngineConfig)
                       if f.name not in ("model", "load_format", "seed", "gpu_ids")}
        gpu = resolve_gpu(args.gpu, args.gpu_index)
        if args.largest_model:
            plans = largest_model(gpu, **engine_args)
            if args.json:
                print(json.dumps([p.as_dict() for p in plans], indent=2, default=str))
            else:
                print(f"Catalog models that fit on {gpu.name}, biggest first:")
                for p in plans:
                    print(f"  {p.model:<16} weights {p.weights_bytes / GIB:6.2f} GiB  KV tokens {p.kv_tokens:>10,}")
                if not plans:
                    print("  none")
            return 0
        if not args.model:
            parser.error("--model is required (or pass --largest-model / --list-gpus)")
        spec = model_spec(args.model)
        if args.need:
            seqs, tokens = parse_need(args.need)
            engine_args.pop("gpu_memory_utilization")
            engine_args.pop("max_model_len")
            engine_args.pop("max_num_seqs")
            answer = min_utilization_for(spec, gpu, concurrency=seqs, context_len=tokens, **engine_args)
            if args.json:
                print(json.dumps({"fits": answer.fits, "reason": answer.reason, "serve_command": answer.serve_command,
                                  "pinned_serve_command": answer.pinned_serve_command,
                                  "plan": answer.plan.as_dict()}, indent=2, default=str))
            else:
                print(answer.reason)
                if answer.fits:
                    print(answer.serve_command)
                    print("# or pin the KV cache to what the workload needs (vLLM then skips measuring it):")
                    print(answer.pinned_serve_command)
            return 0 if answer.fits else 1
        from planner.calibrate import memory_calibration_for, version_note

        memory_calibration, memory_note = memory_calibration_for(gpu, config.quantization)
        p = plan(spec, gpu, calibration=memory_calibration, **engine_args)
        context = args.context_len or p.max_model_len
        batch = max_batch_size(spec, gpu, context_len=context, calibration=memory_calibration, **engine_args)
        longest = max_context_len(spec, gpu, batch_size=args.batch_size, **engine_args)
        speeds, speed_note = [], ""
        if args.speed:
            from planner.calibrate import calibration_for
            from planner.speed import compare_speeds

            speed_calibration, speed_note = calibration_for(gpu)
            speed_args = {k: v for k, v in engine_args.items() if k not in ("quantization", "kv_cache_dtype")}
            speeds = compare_speeds(spec, gpu, prompt_len=args.prompt_len, output_len=args.output_len,
                                    calibration=speed_calibration, **speed_args)
    except PlannerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        extra = {"largest_batch": batch, "longest_context": longest}
        if speeds:
            extra["speed"] = [s.as_dict() for s in speeds]
        print(json.dumps(p.as_dict() | extra, indent=2, default=str))
    else:
        print(format_plan(p, batch, context, args.batch_size, longest))
        from planner.calibrate import installed_vllm_version
        from planner.speed import VLLM_VERSION

        installed = installed_vllm_version()
        print(f"{'vLLM':<18}  the plan models vLLM {VLLM_VERSION}" + (f" (installed: {installed})" if installed else ""))
        for label, note in (("calibration", memory_note), ("vLLM version", version_note())):
            if note:
                print(f"{label:<18}  {note}")
        if speeds:
            print()
            print(format_speeds(speeds, speed_note))
    return 0 if p.fits else 1
