"""guidellm's JSON reports in the benchmark history. The reports in tests/data/guidellm were written by
guidellm 0.8.1 against the CPU app's /v1 (one per column; the command is in docs/results/openai-api.md)."""

import gzip
import json
from pathlib import Path

import pytest

from playground.bench import store
from playground.bench.__main__ import main
from playground.bench.guidellm_report import point_rows, read_report
from playground.ui import bench_tab

DATA = Path(__file__).resolve().parent.parent / "data" / "guidellm"
REPORTS = [DATA / "cpu-16-bit.json.gz", DATA / "cpu-FP8.json.gz"]


def test_each_benchmark_is_a_point_whose_throughput_is_guidellms_own():
    report = read_report(REPORTS[0])
    rows = point_rows(report)
    assert [(r["precision"], r["concurrency"]) for r in rows] == [("fp16", 1), ("fp16", 2)]
    for row, bench in zip(rows, report["benchmarks"]):
        # recomputed from the per-request records with this project's definitions, it agrees with guidellm
        assert row["output_tok_s"] == pytest.approx(bench["metrics"]["output_tokens_per_second"]["successful"]["mean"],
                                                    rel=0.01)
        assert row["ttft_p50_s"] * 1000 == pytest.approx(bench["metrics"]["time_to_first_token_ms"]["successful"]["median"],
                                                         rel=0.15)
        assert row["num_requests"] == bench["metrics"]["request_totals"]["successful"]


def test_import_saves_one_run_that_the_benchmark_tab_charts_and_compare_sets_side_by_side(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "--import-guidellm", *map(str, REPORTS)]) == 0
    assert main(["--data-dir", str(tmp_path), "--import-guidellm", str(REPORTS[1])]) == 0
    runs = store.list_runs(store.connect(tmp_path))
    assert [(r["backend"], r["points"]) for r in runs] == [("guidellm", 2), ("guidellm", 4)]
    meta, rows = store.load_run(store.connect(tmp_path), 1)
    assert meta["environment"]["tool"] == "guidellm" and meta["environment"]["models"] == ["16-bit", "FP8"]
    text = bench_tab.table(rows)
    assert "goodput req/s (ttft:500 tpot:50 ms)" in text and "| fp8 | 2 |" in text
    outputs = bench_tab.outputs_for(rows, meta["backend"])
    fig = outputs[1]  # FP8's speed over 16-bit per concurrency
    assert ("At TTFT ≤ 500 ms and TPOT ≤ 50 ms, FP8 served no request within the SLO at any concurrency of this "
            "sweep on the servers measured; 16-bit served 0.44 req/s at concurrency 1.") in outputs[4]
    fp16 = {r["concurrency"]: r["output_tok_s"] for r in rows if r["precision"] == "fp16"}
    fp8 = {r["concurrency"]: r["output_tok_s"] for r in rows if r["precision"] == "fp8"}
    assert list(fig.data[0].y) == pytest.approx([fp8[c] / fp16[c] for c in (1, 2)])
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path), "--compare", "1", "2"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split()[:3] == ["1", "fp8", "fp8"])
    assert float(line.split()[5]) == pytest.approx(1.0)  # the same report twice: B / A is 1


def test_a_file_that_is_not_a_guidellm_report_is_named(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    assert main(["--data-dir", str(tmp_path), "--import-guidellm", str(bad)]) == 2
    assert "not a guidellm JSON report" in capsys.readouterr().err


def test_the_reports_are_what_guidellm_wrote():
    report = json.loads(gzip.decompress(REPORTS[0].read_bytes()))
    assert report["metadata"]["guidellm_version"].startswith("0.8")
    assert report["config"]["spec"]["backend"]["target"].startswith("http://127.0.0.1")
