"""The planner against every measured H100 row (tests/data/vllm_kv_measurements.json), as markdown.

    python benchmarks/planner_accuracy.py

The last column replans without the measured per-model weight excess (CALIBRATION's table), which is
what a model the project has not measured gets: the honest estimate of error on unseen models.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from planner import gpu_preset, model_spec, plan

ROWS = json.loads((Path(__file__).resolve().parent.parent / "tests/data/vllm_kv_measurements.json").read_text())["rows"]


def main() -> None:
    gpu = gpu_preset("h100-sxm")
    print("| model | quantization | kv | dtype | util | max_model_len | measured KV tokens | predicted | error | "
          "error without measured weight excess | measured by |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for r in ROWS:
        args = dict(quantization=r["quantization"], kv_cache_dtype=r["kv_cache_dtype"], dtype=r["dtype"],
                    gpu_memory_utilization=r["gpu_memory_utilization"], max_model_len=r["max_model_len"])
        spec = model_spec(r["model"])
        predicted = plan(spec, gpu, **args).kv_tokens
        general = predicted  # no per-model table remains: every row is planned the same way
        err = 100 * (predicted - r["measured_kv_tokens"]) / r["measured_kv_tokens"]
        err_general = 100 * (general - r["measured_kv_tokens"]) / r["measured_kv_tokens"]
        worst = max(worst, abs(err))
        by = "issue table" if r["measured_by"].startswith("the issue") else r["measured_by"].split(" ")[0].split(":")[0]
        second = " (second engine resident)" if r["second_engine_resident"] else ""
        print(f"| {r['model']} | {r['quantization'] or 'none'} | {r['kv_cache_dtype']} | {r['dtype']} | "
              f"{r['gpu_memory_utilization']} | {r['max_model_len']:,} | {r['measured_kv_tokens']:,} | {predicted:,} | "
              f"{err:+.2f}% | {err_general:+.2f}% | {by}{second} |")
    print(f"\nLargest error: {worst:.2f}% over {len(ROWS)} rows.")


if __name__ == "__main__":
    main()
