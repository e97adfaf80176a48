"""guidellm's and web_load.py's figures for the app's /v1, side by side, from the files they wrote.

    python benchmarks/openai_load.py --web-load web_load_openai.json --guidellm guidellm-FP16.json guidellm-FP8.json

Per users level: web_load.py's burst through /v1 (web tok/s, its direct baseline, web/direct) and,
per column, guidellm's steady load at the same concurrency (output tok/s, TTFT p50/p99, guidellm's
ITL p50/p99, goodput under the SLO), and guidellm / web_load for the column web_load drove. The two
tools load differently: web_load sends one burst of ``users`` requests; guidellm keeps ``streams``
requests in flight for a set time. Their ratio says how far a burst is from steady state.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.bench.guidellm_report import point_rows, read_report  # noqa: E402
from playground.metrics import DEFAULT_SLO_MS, parse_slo  # noqa: E402


def side_by_side(web_rows: list[dict], reports: list[dict], slo_ms=DEFAULT_SLO_MS) -> list[dict]:
    by_level: dict[int, dict] = {}
    for row in web_rows:
        by_level.setdefault(row["web"]["users"], {})["web"] = row
    for report in reports:
        model = report["config"]["spec"]["backend"]["model"]
        for point in point_rows(report, slo_ms=slo_ms):
            by_level.setdefault(point["concurrency"], {}).setdefault("guidellm", {})[model] = point
    return [dict(users=users, **parts) for users, parts in sorted(by_level.items())]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--web-load", required=True, help="web_load.py --protocol openai --json FILE")
    p.add_argument("--guidellm", nargs="+", required=True, help="guidellm JSON reports, one per column")
    p.add_argument("--engine", default="FP8", help="the column web_load.py drove (--engine)")
    p.add_argument("--goodput", default="ttft:500 tpot:50")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = side_by_side(json.loads(Path(args.web_load).read_text()), [read_report(r) for r in args.guidellm],
                        parse_slo(args.goodput))
    ms = lambda s: f"{s * 1000:.0f}" if s is not None else "-"  # noqa: E731
    num = lambda v, d=1: f"{v:.{d}f}" if v is not None else "-"  # noqa: E731
    cw = max([7] + [len(c) for row in rows for c in (row.get("guidellm") or {})])  # the widest column label
    print(f"{'users':>5} {'web tok/s':>9} {'direct':>8} {'web/dir':>7} | {'column':>{cw}} {'gl tok/s':>8} {'gl/web':>6} "
          f"{'TTFT p50':>8} {'TTFT p99':>8} {'ITL p50':>7} {'ITL p99':>7} {'goodput':>7}")
    for row in rows:
        web = row.get("web")
        w = web["web"]["output_tok_s"] if web else None
        d = web["direct"]["output_tok_s"] if web and web.get("direct") else None
        head = f"{row['users']:>5} {num(w):>9} {num(d):>8} {num(web and web.get('web_over_direct'), 2):>7}"
        for i, (column, g) in enumerate(sorted((row.get("guidellm") or {}).items())):
            ratio = g["output_tok_s"] / w if w and column == args.engine else None
            print(f"{head if i == 0 else ' ' * len(head)} | {column:>{cw}} {num(g['output_tok_s']):>8} {num(ratio, 2):>6} "
                  f"{ms(g['ttft_p50_s']):>8} {ms(g['ttft_p99_s']):>8} {ms(g['guidellm_itl_p50_s']):>7} "
                  f"{ms(g['guidellm_itl_p99_s']):>7} {num(g['goodput_requests_per_s'], 2):>7}")
        if not row.get("guidellm"):
            print(head)
    print(f"(ms; guidellm's ITL is per request (last - first) / (tokens - 1); goodput req/s within {args.goodput} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
