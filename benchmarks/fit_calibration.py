"""Fit the planner's calibration (planner.memory.Calibration) from the fitted rows of
tests/data/vllm_kv_measurements.json; held-out rows are never read. Prints the coefficients and,
with --check, exits 1 when they differ from the frozen ones (tests/planner/test_calibration.py runs that).

    python benchmarks/fit_calibration.py           # print the fit
    python benchmarks/fit_calibration.py --check   # compare with planner.memory.CALIBRATION

Each coefficient is the term vLLM measures at start-up and its source gives no formula for:
- hidden_copies_per_token, fixed_peak_bytes: least squares of the dense rows' logged torch peak on
  max_num_batched_tokens x hidden (the MLP's own 3 x intermediate tensors are subtracted first);
- non_torch_bytes: the median of the single-GPU rows' logged non-torch increase;
- non_torch_bytes_per_extra_gpu: (non-torch at TP=N - single-GPU median) / (N - 1);
- moe_workspace_copies: the MoE row whose TritonExperts caches outweigh its dummy sampler run's tensors (OLMoE);
  the sampler run itself (planner.memory.v1_dummy_sampler_bytes + moe_workspace_bytes) is derived from vLLM's
  source, not fitted: it is Qwen3-30B-A3B's peak;
- v1_runner_cudagraph_estimate_bytes: the logged 'Estimated CUDA graph memory' of the V1-runner rows (the median;
  hybrid and latent-attention models apart: hybrid_cudagraph_estimate_bytes, mla_cudagraph_estimate_bytes);
- kv_tokens_relative_spread(_fp8): the largest relative KV-token error of the fitted 16-bit (FP8) rows.
"""

from __future__ import annotations

import argparse
import math
import json
import statistics
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from planner import gpu_preset, model_spec
from planner.measured import plan_measured_row
from planner.gpus import GIB
from planner.memory import (CALIBRATION, Calibration, default_batch_limits, mla_layers, runs_on_v1_model_runner,
                            v1_dummy_sampler_bytes)

DATA = Path(__file__).resolve().parent.parent / "tests/data/vllm_kv_measurements.json"
H100 = gpu_preset("h100-sxm")


def fitted_rows() -> list[dict]:
    return [r for r in json.loads(DATA.read_text())["rows"] if not r.get("held_out")]


def _round(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def fit(rows: list[dict]) -> Calibration:
    seqs, tokens = default_batch_limits(H100)
    logged = lambda key: [r for r in rows if r.get(key) is not None]  # noqa: E731
    tp1 = [r for r in rows if r.get("tensor_parallel_size", 1) == 1]

    # Dense activation peak: peak - 3 * intermediate * tokens * 2 = fixed + copies * hidden * tokens * 2
    xs, ys = [], []
    for r in logged("vllm_torch_peak_increase_gib"):
        spec = model_spec(r["model"])
        if spec.num_experts or spec.is_hybrid or r.get("tensor_parallel_size", 1) != 1:
            continue
        xs.append(tokens * spec.hidden_size * 2)
        ys.append(r["vllm_torch_peak_increase_gib"] * GIB - tokens * 3 * spec.intermediate_size * 2)
    slope, intercept = np.polyfit(np.array(xs, float), np.array(ys, float), 1)
    copies, fixed = _round(slope, 3), int(_round(intercept / GIB, 2) * GIB)

    non_torch_values = [r["vllm_non_torch_gib"] for r in logged("vllm_non_torch_gib") if r in tp1]
    non_torch = _round(statistics.median(non_torch_values), 2)
    extra = [(r["vllm_non_torch_gib"] - non_torch) / (r["tensor_parallel_size"] - 1)
             for r in logged("vllm_non_torch_gib") if r.get("tensor_parallel_size", 1) > 1]
    per_extra_gpu = _round(statistics.median(extra), 2)

    moe_copies = None
    for r in logged("vllm_torch_peak_increase_gib"):
        spec = model_spec(r["model"])
        if not spec.num_experts or r.get("tensor_parallel_size", 1) != 1:
            continue
        n = 2 * spec.intermediate_size
        caches = tokens * spec.experts_per_token * (n + n // 2 + spec.hidden_size) * 2
        sampler = (v1_dummy_sampler_bytes(spec, act_bytes=2, max_num_batched_tokens=tokens, max_num_seqs=seqs)
                   if runs_on_v1_model_runner(spec) else seqs * spec.vocab_size * 4)
        # The dummy sampler run (derived, beside the MoE workspace) is within 0.04 GiB of the logged peak of
        # both Qwen3-30B-A3B and OLMoE, so the log cannot say which one peaked; the row whose MoE caches
        # outweigh its sampler tensors (OLMoE's 50,304-token vocabulary) bounds the forward from above.
        if caches > sampler:
            peak = r["vllm_torch_peak_increase_gib"] * GIB - fixed
            moe_copies = _round((peak - tokens * copies * spec.hidden_size * 2) / caches, 3)

    estimates = [(model_spec(r["model"]), r["vllm_cudagraph_estimate_gib"]) for r in logged("vllm_cudagraph_estimate_gib")
                 if r.get("tensor_parallel_size", 1) == 1]
    graph_estimates = [g for spec, g in estimates if runs_on_v1_model_runner(spec) and not spec.is_hybrid
                       and not mla_layers(spec)]
    mla_estimates = [g for spec, g in estimates if runs_on_v1_model_runner(spec) and mla_layers(spec)]
    mla_graph = _round(statistics.median(mla_estimates), 2) if mla_estimates else None
    graph = _round(statistics.median(graph_estimates), 2) if graph_estimates else 0.0
    hybrid_estimates = [g for spec, g in estimates if spec.is_hybrid]
    hybrid_graph = _round(statistics.median(hybrid_estimates), 2) if hybrid_estimates else None

    calibration = replace(CALIBRATION, hidden_copies_per_token=copies, fixed_peak_bytes=fixed,
                          non_torch_bytes=int(non_torch * GIB), non_torch_bytes_per_extra_gpu=int(per_extra_gpu * GIB),
                          moe_workspace_copies=moe_copies if moe_copies is not None else CALIBRATION.moe_workspace_copies,
                          v1_runner_cudagraph_estimate_bytes=int(graph * GIB),
                          hybrid_cudagraph_estimate_bytes=int(hybrid_graph * GIB) if hybrid_graph is not None
                          else CALIBRATION.hybrid_cudagraph_estimate_bytes,
                          mla_cudagraph_estimate_bytes=int(mla_graph * GIB) if mla_graph is not None
                          else CALIBRATION.mla_cudagraph_estimate_bytes)

    def worst(selected):
        errors = []
        for r in selected:
            p = plan_measured_row(r, calibration)
            errors.append(abs(p.kv_tokens - r["measured_kv_tokens"]) / r["measured_kv_tokens"])
        return math.ceil(max(errors) * 1000) / 1000 if errors else 0.005  # rounded up: the verdict stays conservative

    return replace(calibration, kv_tokens_relative_spread=worst([r for r in rows if r["quantization"] != "fp8"]),
                   kv_tokens_relative_spread_fp8=worst([r for r in rows if r["quantization"] == "fp8"]))


FITTED = ("hidden_copies_per_token", "fixed_peak_bytes", "non_torch_bytes", "non_torch_bytes_per_extra_gpu",
          "moe_workspace_copies", "v1_runner_cudagraph_estimate_bytes",
          "hybrid_cudagraph_estimate_bytes", "mla_cudagraph_estimate_bytes",
          "kv_tokens_relative_spread", "kv_tokens_relative_spread_fp8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the fit differs from planner.memory.CALIBRATION")
    args = parser.parse_args()
    rows = fitted_rows()
    result = fit(rows)
    differ = []
    print(f"fitted from {len(rows)} rows of {DATA.name} (held-out rows are not read)")
    for name in FITTED:
        got, frozen = getattr(result, name), getattr(CALIBRATION, name)
        gib = f"  ({got / GIB:.2f} GiB)" if name.endswith("_bytes") or name.endswith("_gpu") else ""
        mark = "" if got == frozen else f"   <- frozen: {frozen}"
        differ += [name] if got != frozen else []
        print(f"{name:<38} {got}{gib}{mark}")
    if args.check and differ:
        print(f"differs from the frozen calibration: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


assert set(FITTED) <= {f.name for f in fields(Calibration)}

if __name__ == "__main__":
    raise SystemExit(main())
