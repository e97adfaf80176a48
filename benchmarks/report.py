"""Markdown tables of saved benchmark runs (exported JSON), with the roofline recomputed by the
current planner/roofline.py from each run's recorded engine arguments and GPU.

    python benchmarks/report.py docs/results/throughput/h100-2026-11-24-llama-2-7b.json docs/results/throughput/h100-2026-11-24-llama-3-8b.json

Measured columns are copied from the run; only the roofline columns are arithmetic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from planner import gpu_preset, model_spec, plan
from planner.roofline import roofline
from playground.bench.sweep import PRECISIONS

CATALOG_BY_FOLDER = {"llama-2-7b": "llama-2-7b", "llama-3-8b": "llama-3-8b"}


def table(path: str) -> str:
    data = json.loads(Path(path).read_text())
    run, points = data["run"], data["points"]
    env = run["environment"]
    args = env["engine_args"]
    name = Path(args["model"]).name
    model = model_spec(CATALOG_BY_FOLDER.get(name, args["model"]))
    gpu = gpu_preset("h100-sxm") if "H100" in (env.get("gpu") or "") else None
    spec = run["spec"]
    base = {p["concurrency"]: p for p in points if p["precision"] == "fp16"}
    lines = [
        f"### {name} ({model.total_params / 1e9:.2f} B parameters), {spec['input_len']} in / {spec['output_len']} out",
        f"{env.get('gpu')}, driver {env.get('driver')}, vLLM {env.get('vllm')}, torch {env.get('torch')}; "
        f"dtype {args['dtype']}, max_model_len {args['max_model_len']}, gpu_memory_utilization "
        f"{args['gpu_memory_utilization']}, load_format {args['load_format']}; median of {spec['repeats']} repeats "
        f"(run #{run['id']}, {run['created_at']} UTC, status {run['status']}).",
        "",
        "| precision | concurrency | output tok/s | total tok/s | TTFT p50 / p99 ms | TPOT p50 / p99 ms | ITL p99 ms "
        "| peak GPU GiB | power W | J / out token | roofline tok/s | % of roofline | vs fp16 | ideal vs fp16 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (list(PRECISIONS).index(p["precision"]), p["concurrency"])):
        limit = base_limit = None
        if gpu is not None:
            def limit_for(precision, p=p):
                kv = plan(model, gpu, dtype=args["dtype"], max_model_len=args["max_model_len"],
                          gpu_memory_utilization=args["gpu_memory_utilization"],
                          **PRECISIONS[precision]).kv_tokens
                return roofline(model, gpu, concurrency=p["concurrency"], input_len=spec["input_len"],
                                output_len=spec["output_len"], dtype=args["dtype"], kv_tokens=kv,
                                **PRECISIONS[precision]).output_tok_s
            limit, base_limit = limit_for(p["precision"]), limit_for("fp16")
        b = base.get(p["concurrency"])
        ms = lambda s: f"{s * 1000:.1f}" if s is not None else "–"  # noqa: E731
        lines.append(
            f"| {p['precision']} | {p['concurrency']} | {p['output_tok_s']:,.0f} | {p['total_tok_s']:,.0f} "
            f"| {ms(p['ttft_p50_s'])} / {ms(p['ttft_p99_s'])} | {ms(p['tpot_p50_s'])} / {ms(p['tpot_p99_s'])} | {ms(p['itl_p99_s'])} "
            f"| {(p['peak_memory_bytes'] or 0) / 2**30:.1f} | {p['mean_power_w'] or 0:.0f} | {p['energy_j_per_output_token'] or 0:.3f} "
            f"| {limit:,.0f} | {100 * p['output_tok_s'] / limit:.0f}% "
            f"| {p['output_tok_s'] / b['output_tok_s']:.2f}x | {limit / base_limit:.2f}x |"
            if limit else f"| {p['precision']} | {p['concurrency']} | {p['output_tok_s']:,.0f} | … |")
    repeats = [f"{p['precision']}@{p['concurrency']}: {', '.join(f'{v:,.0f}' for v in p['repeat_output_tok_s'])}" for p in points]
    lines += ["", "Each repeat's output tok/s: " + "; ".join(repeats) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(table(path) for path in sys.argv[1:]))
