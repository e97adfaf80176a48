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
               "  python -m playground.bench --backend vllm --load-format dummy --engine BF16=/models/llama \\\n"
               "      --engine FP8=/models/llama,quantization=fp8 --engine 'FP8 checkpoint=/models/llama-fp8-dynamic'\n"
               "  python -m playground.bench --backend openai --engine FP16=http://h:8000/v1 --engine FP8=http://h:8001/v1\n"
               "  python -m playground.bench --history\n  python -m playground.bench --export 3 --format csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["cpu", "vllm", "openai"], default="cpu",
                   help="openai: sweep running servers given with --engine (labels with 'fp8' are FP8)")
    p.add_argument("--engine", action="append", default=[], metavar="LABEL=URL[#MODEL] | LABEL=FOLDER[,...]",
                   help="openai: a server, e.g. FP8=http://host:8001/v1 (repeat per precision); vllm: 2 to 4 columns, "
                        "each a folder with its own settings, e.g. 'FP8 checkpoint=/models/llama-fp8' or "
                        "FP8=/models/llama,quantization=fp8[,kv-cache-dtype=fp8], swept by label instead of --precisions")
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
    p.add_argument("--goodput", default=None, metavar="'ttft:MS tpot:MS'",
                   help="the SLO goodput is counted under, as vllm bench serve's --goodput "
                        "(ttft, tpot, e2el in ms; default 'ttft:500 tpot:50')")
    p.add_argument("--import-guidellm", nargs="+", metavar="REPORT.json",
                   help="save guidellm JSON reports (one per column, e.g. model=16-bit and model=FP8) as one run")
    p.add_argument("--compare", nargs=2, type=int, metavar=("RUN_A", "RUN_B"),
                   help="two saved runs side by side per precision and concurrency, with B / A")
    return p


def compare_rows(rows_a: list[dict], rows_b: list[dict]) -> list[dict]:
    """Points of two runs paired by concurrency (and precision where both have it, else in order)."""
    def key(r):
        return r["concurrency"]

    out = []
    for a in sorted(rows_a, key=lambda r: (r["precision"], key(r))):
        same = [b for b in rows_b if key(b) == key(a) and b["precision"] == a["precision"]] or \
               [b for b in rows_b if key(b) == key(a) and b["precision"] != a["precision"]]
        for b in same[:1]:
            out.append({"concurrency": key(a), "a": a, "b": b,
                        "ratio": b["output_tok_s"] / a["output_tok_s"] if a["output_tok_s"] else None})
    return out


def print_comparison(meta_a: dict, meta_b: dict, pairs: list[dict]) -> None:
    ms = lambda s: f"{s * 1000:.0f}" if s is not None else "-"  # noqa: E731
    rate = lambda r: f"{r:.2f}" if r is not None else "-"  # noqa: E731
    print(f"A = run #{meta_a['id']} ({meta_a['backend']}, {meta_a['model']}), "
          f"B = run #{meta_b['id']} ({meta_b['backend']}, {meta_b['model']})")
    slo = next((p["a"].get("slo") for p in pairs if p["a"].get("slo")), "")
    print(f"{'conc':>5} {'A':>9} {'B':>9} {'A tok/s':>9} {'B tok/s':>9} {'B/A':>6} {'A TTFT p50':>10} {'B TTFT p50':>10} "
          f"{'A TPOT p50':>10} {'B TPOT p50':>10} {'A goodput':>9} {'B goodput':>9}")
    for p in pairs:
        a, b = p["a"], p["b"]
        print(f"{p['concurrency']:>5} {a['precision']:>9} {b['precision']:>9} {a['output_tok_s']:>9.1f} "
              f"{b['output_tok_s']:>9.1f} {p['ratio'] or 0:>6.2f} {ms(a['ttft_p50_s']):>10} {ms(b['ttft_p50_s']):>10} "
              f"{ms(a['tpot_p50_s']):>10} {ms(b['tpot_p50_s']):>10} {rate(a.get('goodput_requests_per_s')):>9} "
              f"{rate(b.get('goodput_requests_per_s')):>9}")
    if slo:
        print(f"(goodput: requests/s within the SLO {slo}, ms, as vllm bench serve --goodput counts them)")


def _label_precision(label: str) -> str:
    from playground.engines.openai_engine import OpenAIEngine, RemoteEngineSpec

    return OpenAIEngine(RemoteEngineSpec(label, "http://x/v1")).precision


def print_points_rows(rows: list[dict]) -> None:
    """Saved rows (a guidellm import, an export) in the sweep's table."""
    print(f"{'precision':<9} {'conc':>5} {'out tok/s':>10} {'req/s':>7} {'TTFT p50 ms':>11} {'TPOT p50 ms':>11} "
          f"{'goodput req/s':>13}")
    for r in rows:
        ms = lambda s: f"{s * 1000:.1f}" if s is not None else "-"  # noqa: E731
        good = f"{r['goodput_requests_per_s']:.2f}" if r.get("goodput_requests_per_s") is not None else "-"
        print(f"{r['precision']:<9} {r['concurrency']:>5} {r['output_tok_s']:>10.1f} {r['requests_per_s']:>7.2f} "
              f"{ms(r['ttft_p50_s']):>11} {ms(r['tpot_p50_s']):>11} {good:>13}")


def print_points(points) -> None:
    print(f"{'precision':<9} {'conc':>5} {'out tok/s':>10} {'tot tok/s':>10} {'req/s':>7} {'TTFT p50 ms':>11} "
          f"{'TPOT p50 ms':>11} {'ITL p99 ms':>10} {'roofline':>9} {'% roof':>6} {'goodput':>8}")
    for pt in points:
        m = pt.metrics
        roof = f"{pt.roofline_output_tok_s:,.0f}" if pt.roofline_output_tok_s else "-"
        pct = f"{pt.percent_of_roofline:.0f}%" if pt.percent_of_roofline else "-"
        ms = lambda s: f"{s * 1000:.1f}" if s is not None else "-"  # noqa: E731
        print(f"{pt.precision:<9} {pt.concurrency:>5} {m.output_tok_s:>10.1f} {m.total_tok_s:>10.1f} {m.requests_per_s:>7.2f} "
              f"{ms(m.ttft_p50_s):>11} {ms(m.tpot_p50_s):>11} {ms(m.itl_p99_s):>10} {roof:>9} {pct:>6} "
              f"{m.goodput_requests_per_s if m.goodput_requests_per_s is not None else 0:>8.2f}")
    if points and points[0].metrics.slo:
        print(f"(goodput: requests/s within the SLO {points[0].metrics.slo}, ms, as vllm bench serve --goodput counts them)")


def _vllm_config(args: argparse.Namespace) -> tuple[BenchConfig, tuple[str, ...]]:
    """--model's engine (swept over --precisions), or the --engine columns (swept by label, the first one's engine
    arguments for the GPU and the bench's defaults)."""
    if not args.engine:
        return BenchConfig(backend="vllm", engine=EngineConfig.from_args(args, gpu_ids=args.gpu),
                           data_dir=args.data_dir), ()
    from playground.columns import check_column, check_count, parse_columns

    if args.model:
        raise RequestError("engine", "--engine names each column's folder; drop --model")
    columns = parse_columns(args.engine)
    check_count(len(columns))
    configs = []
    for column in columns:
        check_column(column)  # a missing folder, or settings its checkpoint contradicts, before any engine starts
        configs.append(column.engine_config(args, gpu_ids=args.gpu))
    labels = tuple(c.label for c in columns)
    return BenchConfig(backend="vllm", engine=configs[0], data_dir=args.data_dir,
                       columns=tuple(zip(labels, configs))), labels


def main(argv=None) -> int:
    from playground.metrics import DEFAULT_SLO_MS, parse_slo

    args = build_parser().parse_args(argv)
    try:
        slo = parse_slo(args.goodput) if args.goodput is not None else DEFAULT_SLO_MS
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.import_guidellm:
        from playground.bench.guidellm_report import import_reports

        try:
            run_id, rows = import_reports(store.connect(args.data_dir), args.import_guidellm, slo)
        except (ValueError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print_points_rows(rows)
        print(f"saved as run #{run_id} in {args.data_dir}/bench.sqlite (backend guidellm)")
        return 0
    if args.compare:
        conn = store.connect(args.data_dir)
        try:
            (meta_a, rows_a), (meta_b, rows_b) = (store.load_run(conn, i) for i in args.compare)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
        print_comparison(meta_a, meta_b, compare_rows(rows_a, rows_b))
        return 0
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
                     precisions=tuple((args.precisions or default_precisions).split(",")), goodput=slo)
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
        if not args.model and not args.engine:
            print("error: --backend vllm needs --model (16-bit and its FP8 twins) or 2 to 4 --engine columns",
                  file=sys.stderr)
            return 2
        from planner import model_spec

        try:
            config, names = _vllm_config(args)
        except (PlannerError, RequestError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if names:
            spec = replace(spec, precisions=names)
        engine = config.engine
        shape = model_spec(engine.model)
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
        run_id, points, _status = asyncio.run(service.run(config, spec, source, vocab, max_len, progress=progress,
                                                          names=[label for label, _ in config.columns] or None))
    except RequestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_points(points)
    print(f"saved as run #{run_id} in {args.data_dir}/bench.sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
