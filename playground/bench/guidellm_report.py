"""guidellm's JSON reports (``guidellm run --output kind=json,path=...``, 0.8.x) as benchmark points.

Each benchmark in a report (one per concurrency of a ``concurrent`` profile, one per rate of a
sweep) becomes a point with the same fields the app's own sweeps save, so one history holds both
and the Benchmark tab charts them side by side. The figures are recomputed from guidellm's
per-request timings with this project's definitions (playground/metrics.py: output tok/s over the
wall time, TTFT, TPOT, ITL percentiles, goodput under an SLO), not copied from its summaries, so
that a guidellm point and a sweep point mean the same thing.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from playground.metrics import DEFAULT_SLO_MS, good_requests, slo_text


def _precision_of(model: str) -> str:
    """A column label (the app's /v1 model names) as the benchmark's precision name."""
    low = model.lower()
    if "fp8" in low:
        return "fp8-kv8" if "kv8" in low or "kv" in low.replace("fp8", "") else "fp8"
    return "fp16"


def _pcts(values) -> tuple:
    if not values:
        return None, None, None
    return tuple(float(x) for x in np.percentile(np.asarray(values, dtype=float), [50, 90, 99]))


def _concurrency(bench: dict) -> int:
    strategy = bench["config"]["strategy"]
    if strategy.get("streams"):
        return int(strategy["streams"])
    if strategy.get("type_") == "synchronous":
        return 1
    # a rate (constant, poisson, sweep): the mean number in flight guidellm measured
    return max(1, round(bench["metrics"]["request_concurrency"]["successful"]["mean"]))


def point_rows(report: dict, precision: str | None = None, slo_ms=DEFAULT_SLO_MS) -> list[dict]:
    """One row per guidellm benchmark, keyed as PointResult.as_row() is."""
    model = report["config"]["spec"]["backend"].get("model") or ""
    precision = precision or _precision_of(model)
    rows = []
    for bench in report["benchmarks"]:
        ttfts, tpots, e2els = [], [], []
        out_tokens = prompt_tokens = 0
        for r in bench["requests"]["successful"]:
            t = r["info"]["timings"]
            start, first, last = t["request_start"], t["first_token_iteration"], t["last_token_iteration"]
            n_out = r["output_metrics"]["text_tokens"] or 0
            out_tokens += n_out
            prompt_tokens += r["input_metrics"]["text_tokens"] or 0
            if first is None or start is None:
                continue
            ttfts.append(first - start)
            e2els.append(last - start)
            tpot = (last - first) / (n_out - 1) if n_out > 1 else 0.0  # vLLM: one token counts TPOT 0 for goodput
            tpots.append(tpot)
        duration = bench["duration"]
        good = good_requests(ttfts, tpots, e2els, slo_ms) if slo_ms else None
        ttft, tpot = _pcts(ttfts), _pcts([x for x in tpots if x])
        # guidellm keeps each request's first and last token times, not every chunk's arrival, so the
        # per-chunk ITL is not recomputed; its own "inter-token latency" (per request, (last - first) /
        # (tokens - 1): this project's TPOT) is kept under its name
        gl = bench["metrics"]["inter_token_latency_ms"]["successful"]["percentiles"]
        n = len(bench["requests"]["successful"])
        rows.append({
            "precision": precision, "concurrency": _concurrency(bench), "num_prompts": n,
            "num_requests": n, "duration_s": duration, "output_tokens": out_tokens, "prompt_tokens": prompt_tokens,
            "output_tok_s": out_tokens / duration if duration else 0.0,
            "total_tok_s": (out_tokens + prompt_tokens) / duration if duration else 0.0,
            "requests_per_s": n / duration if duration else 0.0,
            "ttft_p50_s": ttft[0], "ttft_p90_s": ttft[1], "ttft_p99_s": ttft[2],
            "tpot_p50_s": tpot[0], "tpot_p90_s": tpot[1], "tpot_p99_s": tpot[2],
            "itl_p50_s": None, "itl_p90_s": None, "itl_p99_s": None,
            "guidellm_itl_p50_s": gl["p50"] / 1000, "guidellm_itl_p90_s": gl["p90"] / 1000,
            "guidellm_itl_p99_s": gl["p99"] / 1000,
            "goodput_requests_per_s": good / duration if good is not None and duration else None,
            "good_requests": good, "slo": slo_text(slo_ms),
            "errored_requests": bench["metrics"]["request_totals"]["errored"],
            "repeat_output_tok_s": [], "peak_memory_bytes": None, "mean_power_w": None,
            "energy_j_per_output_token": None, "roofline_output_tok_s": None, "roofline_bound": None,
            "percent_of_roofline": None, "vllm_bench_command": "", "repeat_tpot_p50_s": [], "repeat_itl_p50_s": [],
            "repeat_tpot_mean_s": [], "tpot_mean_s": None,
            "source": "guidellm", "model": model,
        })
    return rows


def read_report(path: str | Path) -> dict:
    """A report as guidellm wrote it (``.json``), or gzipped (``.json.gz``)."""
    try:
        raw = Path(path).read_bytes()
        report = json.loads(gzip.decompress(raw) if str(path).endswith(".gz") else raw)
    except (OSError, ValueError) as e:
        raise ValueError(f"guidellm report {path}: {e}") from None
    if not isinstance(report, dict) or "benchmarks" not in report or "config" not in report:
        raise ValueError(f"guidellm report {path}: not a guidellm JSON report (no 'benchmarks' and 'config'); "
                         f"write one with --output kind=json,path=report.json")
    return report


def describe(reports: list[dict]) -> dict:
    """What the history shows for an imported run: the tool, its version, the target and the data."""
    first = reports[0]
    spec = first["config"]["spec"]
    data = [{k: v for k, v in d.items() if v not in (None, [], {})} for d in spec.get("data") or []]
    return {"tool": "guidellm", "version": first.get("metadata", {}).get("guidellm_version"),
            "target": spec["backend"].get("target"), "request_format": spec["backend"].get("request_format"),
            "models": [r["config"]["spec"]["backend"].get("model") for r in reports], "data": data}


def import_reports(conn, paths, slo_ms=DEFAULT_SLO_MS) -> tuple[int, list[dict]]:
    """Save guidellm reports (one per column or precision) as one run of the history."""
    from playground.bench import store

    reports = [read_report(p) for p in paths]
    rows = [row for report in reports for row in point_rows(report, slo_ms=slo_ms)]
    models = ", ".join(dict.fromkeys(r["model"] for r in rows))
    run_id = store.save_rows(conn, status="complete", backend="guidellm", model=models,
                             environment=describe(reports) | {"files": [str(p) for p in paths]},
                             spec={"goodput": slo_text(slo_ms)}, rows=rows)
    return run_id, rows
