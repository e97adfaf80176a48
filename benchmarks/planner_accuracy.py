"""The planner against every measured row of tests/data/vllm_kv_measurements.json, as markdown:
rows the calibration was fitted to, and held-out rows (measured after it was fixed) apart.

    python benchmarks/planner_accuracy.py            # both tables and the bar
    python benchmarks/planner_accuracy.py --terms    # also each term: weights, activation peak, non-torch, CUDA-graph estimate

The bar: KV tokens within 1.5% of what vLLM logged, or within 0.25 GiB of KV memory where that is larger;
for pre-quantized checkpoints (rows with "checkpoint_quantization") also the weights within 1% of vLLM's
"Model loading took". Every row is planned the same way: there is no per-model table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from planner.measured import plan_measured_row
from planner.gpus import GIB

ROWS = json.loads((Path(__file__).resolve().parent.parent / "tests/data/vllm_kv_measurements.json").read_text())["rows"]
BAR_RELATIVE, BAR_GIB = 0.015, 0.25
BAR_WEIGHTS = 0.01  # pre-quantized checkpoints: "Model loading took" within 1%


def evaluate(row: dict) -> dict:
    """The planner's prediction for one measured row, its error and whether it meets the bar."""
    p = plan_measured_row(row)
    measured = row["measured_kv_tokens"]
    error_tokens = p.kv_tokens - measured
    # KV memory per token as vLLM divides it (all layers, this GPU's share)
    bytes_per_token = p.kv_cache_bytes / max(p.kv_tokens, 1)
    error_gib = error_tokens * bytes_per_token / GIB
    passes = abs(error_tokens) <= BAR_RELATIVE * measured or abs(error_gib) <= BAR_GIB
    weights_error = None
    if row.get("checkpoint_quantization") and row.get("vllm_weights_gib"):
        weights_error = p.weights_bytes / GIB / row["vllm_weights_gib"] - 1
        passes = passes and abs(weights_error) <= BAR_WEIGHTS
    return {"plan": p, "error_percent": 100 * error_tokens / measured, "error_gib": error_gib, "passes": passes,
            "weights_error": weights_error}


def table(rows: list[dict], terms: bool) -> tuple[str, int]:
    checkpoints = any(r.get("checkpoint_quantization") for r in rows)
    head = ("| model | GPU | quant | kv | dtype | util | len | TP | vLLM KV tokens | planned | error | KV GiB error |"
            + (" weights vLLM / plan | weights error |" if checkpoints else "") + " bar |"
            + (" weights vLLM / plan | peak vLLM / plan | non-torch vLLM / plan | graph est. vLLM / plan |" if terms else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    failures = 0
    for r in rows:
        e = evaluate(r)
        p = e["plan"]
        failures += not e["passes"]
        quant = r.get("checkpoint_quantization") or r["quantization"] or "16-bit"
        weights = (f" {r['vllm_weights_gib']} / {p.weights_bytes / GIB:.2f} | {100 * e['weights_error']:+.2f}% |"
                   if checkpoints and e["weights_error"] is not None else " – | – |" if checkpoints else "")
        line = (f"| {r['model']} | {r.get('gpu_preset', 'h100-sxm')} | {quant} | {r['kv_cache_dtype']} | {r['dtype']} | "
                f"{r['gpu_memory_utilization']} | {r['max_model_len']:,} | {r.get('tensor_parallel_size', 1)} | "
                f"{r['measured_kv_tokens']:,} | {p.kv_tokens:,} | {e['error_percent']:+.2f}% | {e['error_gib']:+.2f} |"
                f"{weights} {'pass' if e['passes'] else '**FAIL**'} |")
        if terms:
            def pair(key, value):
                got = r.get(key)
                return f"{got if got is not None else '–'} / {value / GIB:.2f}"
            line += (f" {pair('vllm_weights_gib', p.weights_bytes)} | {pair('vllm_torch_peak_increase_gib', p.activation_peak_bytes)} |"
                     f" {pair('vllm_non_torch_gib', p.non_torch_bytes)} | {pair('vllm_cudagraph_estimate_gib', p.cudagraph_estimate_bytes)} |")
        lines.append(line)
    return "\n".join(lines), failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terms", action="store_true", help="also compare each memory term with vLLM's log")
    args = parser.parse_args()
    fitted = [r for r in ROWS if not r.get("held_out")]
    held_out = [r for r in ROWS if r.get("held_out") and not r.get("checkpoint_quantization")]
    checkpoints = [r for r in ROWS if r.get("checkpoint_quantization")]
    total_failures = 0
    for title, rows in (("Fitted rows (the calibration was fitted to these)", fitted),
                        ("Held-out rows (measured after the calibration was fixed; never fitted)", held_out),
                        ("Pre-quantized checkpoints (held out: sized from config.json's quantization_config, never "
                         "fitted)", checkpoints)):
        if not rows:
            continue
        text, failures = table(rows, args.terms)
        total_failures += failures
        weights = f"; weights within ±{100 * BAR_WEIGHTS:.0f}% of \"Model loading took\"" if rows is checkpoints else ""
        print(f"## {title}\n\n{text}\n\n{len(rows) - failures} of {len(rows)} within the bar "
              f"(±{100 * BAR_RELATIVE:.1f}% of KV tokens or ±{BAR_GIB} GiB of KV memory{weights}).\n")
    return 1 if total_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
