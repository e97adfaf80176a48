"""python -m playground.bench: run a sweep, list the history, compare or export runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from playground.bench import store
from playground.bench.runner import BenchConfig, BenchmarkService, cpu_source, vllm_source
from playground.bench.sweep import PRECISIONS, SweepSpec
from playground.engines.base import RequestError


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated whole numbers, e.g. 1,8,64") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m playground.bench",
        description="Paired FP8-vs-16-bit throughput sweeps. Prompts are random token ids of exact length "
                    "(seeded), ignore_eos, one warm-up excluded, each point the median of --repeats runs. "
                    "TPOT = (end-to-end - TTFT) / (output tokens - 1), as in vllm bench serve.",
        epilog="Examples:\n  python -m playground.bench --backend cpu --concurrency 1,2 --input-len 32 --output-len 16\n"
               "  python -m playground.bench --backend vllm --model /models/llama-2-7b --load-format dummy\n"
               "  python -m playground.bench --backend openai --engine FP16=http://h:8000/v1 --engine FP8=http://h:8001/v1\n"
               "  python -m playground.bench --history\n  python -m playground.bench --export 3 --format csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["cpu", "vllm", "openai"], default="cpu",
                   help="openai: sweep running servers given with --engine (labels with 'fp8' are FP8)")
    p.add_argument("--engine", action="append", default=[], metavar="LABEL=URL[#MODEL]",
                   help="openai: a server, e.g. FP8=http://host:8001/v1 (repeat per precision)")
    p.add_argument("--api-key-env", default=None, metavar="NAME", help="openai: the variable holding the API key")
    p.add_argument("--model", default="", help="vLLM: model folder (config.json) or HF id")
    p.add_argument("--gpu", type=_ints, default=None,
                   help="which GPU(s) (CUDA_VISIBLE_DEVICES), one per tensor-parallel rank, e.g. 2,3; default: the first")
    EngineConfig.add_arguments(p)
    p.set_defaults(dtype="bfloat16")
    p.add_argument("--concurrency", type=_ints, default=(1, 8, 64, 256))
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--num-prompts", type=int, default=None, help="per point (default: max(concurrency, 4))")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precisions", default=None, help=f"comma-separated from {', '.join(PRECISIONS)} "
                                                      "(default: all on vllm, fp16,fp8 on cpu)")
    p.add_argument("--data-dir", default="data", help="where bench.sqlite lives (default ./data)")
    p.add_argument("--history", action="store_true", help="list saved runs")
    p.add_argument("--export", type=int, metavar="RUN_ID", help="print a saved run")
    p.add_argument("--format", choices=["csv", "json"], default="json")
    return p


def _label_precision(label: str) -> str:
    from playground.engines.openai_engine import OpenAIEngine, RemoteEngineSpec

    return OpenAIEngine(RemoteEngineSpec(label, "http://x/v1")).precision


def print_points(points) -> None:
    print(f"{'precision':<9} {'conc':>5} {'out tok/s':>10} {'tot tok/s':>10} {'req/s':>7} {'TTFT p50 ms':>11} "
          f"{'TPOT p50 ms':>11} {'ITL p99 ms':>10} {'roofline':>9} {'% roof':>6}")
    for pt in points:
        m = pt.metrics
        roof = f"{pt.roofline_output_tok_s:,.0f}" if pt.roofline_output_tok_s else "-"
        pct = f"{pt.percent_of_roofline:.0f}%" if pt.percent_of_roofline else "-"
        ms = lambda s: f"{s * 1000:.1f}" if s is not None else "-"  # noqa: E731
        print(f"{pt.precision:<9} {pt.concurrency:>5} {m.output_tok_s:>10.1f} {m.total_tok_s:>10.1f} {m.requests_per_s:>7.2f} "
              f"{ms(m.ttft_p50_s):>11} {ms(m.tpot_p50_s):>11} {ms(m.itl_p99_s):>10} {roof:>9} {pct:>6}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.history or args.export is not None:
        conn = store.connect(args.data_dir)
        if args.history:
            for r in store.list_runs(conn):
                print(f"#{r['id']:<4} {r['created_at']}  {r['backend']:<5} {r['model']:<30} {r['points']:>3} points  {r['status']}")
            return 0
        try:
            meta, points = store.load_run(conn, args.export)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
        print(store.to_csv(points) if args.format == "csv" else store.to_json(meta, points))
        return 0
    default_precisions = "fp16,fp8,fp8-kv8" if args.backend == "vllm" else "fp16,fp8"
    spec = SweepSpec(concurrency=args.concurrency, input_len=args.input_len, output_len=args.output_len,
                     num_prompts=args.num_prompts, repeats=args.repeats, seed=args.seed,
                     precisions=tuple((args.precisions or default_precisions).split(",")))
    if args.backend == "openai":
        import os

        from playground.bench.runner import remote_source
        from playground.engines.openai_engine import RemoteEngineSpec

        try:
            specs = [RemoteEngineSpec.parse(text) for text in args.engine]
        except RequestError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if not specs:
            print("error: --backend openai needs --engine LABEL=URL (one per precision)", file=sys.stderr)
            return 2
        if args.precisions is None:
            spec = replace(spec, precisions=tuple(dict.fromkeys(_label_precision(s.label) for s in specs)))
        config = BenchConfig(backend="openai", data_dir=args.data_dir)
        key = os.environ.get(args.api_key_env) if args.api_key_env else None
        # random prompts draw ids below 32,000: every served tokenizer has at least that many
        vocab, max_len, source = 32000, args.max_model_len or 1 << 20, remote_source(specs, key)
    elif args.backend == "vllm":
        if not args.model:
            print("error: --model is required with --backend vllm", file=sys.stderr)
            return 2
        from planner import model_spec

        try:
            engine = EngineConfig.from_args(args, gpu_ids=args.gpu)
        except PlannerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        config = BenchConfig(backend="vllm", engine=engine, data_dir=args.data_dir)
        shape = model_spec(args.model)
        vocab, max_len = shape.vocab_size, args.max_model_len or shape.max_position_embeddings
        source = vllm_source(config, max(spec.concurrency))
    else:

        from playground.engines.smollm2 import load_tokenizer

        config = BenchConfig(backend="cpu", data_dir=args.data_dir)
        vocab, max_len, source = len(load_tokenizer()), 2048, cpu_source()
    service = BenchmarkService(args.data_dir)

    def progress(done: int, total: int, message: str) -> None:
        bar = "#" * (20 * done // total)
        print(f"[{bar:<20}] {done}/{total} {message}", file=sys.stderr, flush=True)

    try:
        run_id, points, _status = asyncio.run(service.run(config, spec, source, vocab, max_len, progress=progress))
    except RequestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_points(points)
    print(f"saved as run #{run_id} in {args.data_dir}/bench.sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
