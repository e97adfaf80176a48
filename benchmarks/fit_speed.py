"""Fit the speed prediction's coefficients (planner.speed.SpeedCalibration) from the fitted rows of
benchmarks/speed_runs.py; held-out rows are never read. Prints the coefficients and, with --check, exits 1
when they differ from the frozen ones (tests/planner/test_speed.py runs that).

    python benchmarks/fit_speed.py           # print the fit and each fitted row's residual
    python benchmarks/fit_speed.py --check   # compare with planner.speed.SPEED_CALIBRATION

- weight_factor_16bit / _fp8, kv_factor_16bit / _fp8, step_overhead_s, layer_overhead_16bit_s / _fp8_s,
  sequence_overhead_s: least squares of the measured decode step (the TPOT p50 less the prefill steps after the
  median request's own, planner.speed.prefill_schedule) on the roofline's read times
  (weight bytes / bandwidth, one slope per GEMM family; KV bytes / min(bandwidth, cap), one slope per KV dtype), a
  constant, the number of layers (one slope per GEMM family) and the batch, each row weighted by 1 / its step
  (relative errors). The layer slopes need fitted models of different depths (32 and 48 layers);
- kv_bandwidth_cap_gb_s: the highest cap (50 GB/s steps) whose least squares is as good as the best. Rows whose concurrency exceeds what the KV cache
  holds are left out: vLLM queues the rest, whose prefills then share the decode steps.
- ttft_overhead_s: the median of (TTFT - one decode step) over the batch-1 rows whose prompts were cached;
- compute_efficiency_16bit / _fp8: the FLOPs of a wave's prompts over the datasheet rate, divided by (its TTFT p99
  - that fixed cost), over the sweeps of at least 32 prompts sent at once that prefilled them whole (one repeat,
  unseen prompts): the last prompt's first token comes when every prompt of the wave has been prefilled, in steps
  of up to 16,384 tokens. (A single 512-token prompt's TTFT, fitted on before, put 16-bit at 1.0 of its datasheet
  rate and FP8 at 0.55, which the 16-bit waves took 1.40-1.49 times as long as.)
- the spreads: the largest relative residual of the fitted dense rows (batch 1, batch >= 8, TTFT), rounded up.
- moe_weight_factor_16bit / _fp8, moe_layer_overhead_16bit_s / _fp8_s: with the dense coefficients fixed, least
  squares of what the fitted MoE rows' steps take beyond the dense line (the routed experts' read time and the
  number of MoE layers, one slope each per GEMM family), relative errors again. The MoE ± is not fitted: it is the
  held-out MoE rows' largest error (planner.speed.MOE_MEASURED_SPREAD, printed by benchmarks/speed_accuracy.py).
  MoE models with latent attention (MLA) are not among these rows: their attention costs more per layer.
- mla_layer_overhead_s: with every other term fixed (the MoE ones included), least squares of what the fitted MLA
  rows' steps take beyond that line over their number of MLA layers, one slope for both GEMM families.
- host_step_s, host_sequence_s (and host_models, host_spread): with every GPU term fixed, least squares of the
  measured steps of the rows of engines too small for their GPU (a source marked host_bound: their batch-1 step,
  from the GPU's side, is under the line) on (1, batch), relative errors: the line of vLLM's own work per step that
  no step is predicted under; host_spread those rows' largest relative residual, rounded up.
- gemm_kernel_factors (and gemm_kernel_models, gemm_kernel_spread): for each GEMM kernel of a fitted checkpoint that
  is not the 16-bit or FP8 line's (planner.speed.LINE_KERNELS), with every other term fixed, least squares of those
  rows' steps on their GEMM read time: the factor replacing weight_factor for that kernel; the spread is those rows'
  largest relative residual, rounded up.
- kv_head_dim_factors (and kv_head_dim_models, the models they come from): for each attention-head width among
  the fitted dense rows other than the dense line's 128 (and 64 and 256, met held out at 128's factors), with every
  other term fixed, least squares of what those rows' steps take beyond the line over their KV read time: the factor on
  that width's KV reads, one for both GEMM families and KV dtypes; head_dim_spread: those rows' largest relative
  residual, rounded up (the ± of such a model's every point).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.speed_runs import SpeedRow, fitted_rows, row_model_spec  # noqa: E402
from planner.gpus import gpu_preset  # noqa: E402
from planner.memory import mla_layers, moe_layers, plan  # noqa: E402
from planner.roofline import decode_step_bytes_parts, routed_expert_bytes  # noqa: E402
from planner.speed import (  # noqa: E402
    CACHED_PROMPT_TOKENS, SPEED_CALIBRATION, SpeedCalibration, WavePrediction, kernels_for, own_gemm_kernel,
    own_kv_width, prefill_s, wave,
)

FITTED = ("weight_factor_16bit", "weight_factor_fp8", "kv_factor_16bit", "kv_factor_fp8", "kv_bandwidth_cap_gb_s",
          "step_overhead_s", "layer_overhead_16bit_s", "layer_overhead_fp8_s", "sequence_overhead_s",
          "compute_efficiency_16bit", "compute_efficiency_fp8",
          "ttft_overhead_s", "decode_spread_batch1", "decode_spread_batched", "ttft_spread",
          "moe_weight_factor_16bit", "moe_weight_factor_fp8", "moe_layer_overhead_16bit_s", "moe_layer_overhead_fp8_s",
          "mla_layer_overhead_s", "kv_head_dim_factors", "kv_head_dim_models",
          "head_dim_spread", "host_step_s", "host_sequence_s", "host_models", "host_spread",
          "gemm_kernel_factors", "gemm_kernel_models", "gemm_kernel_spread")
# the MoE terms off: the dense line alone, which the MoE fit measures the experts' cost against
NO_MOE = dict(moe_weight_factor_16bit=0.0, moe_weight_factor_fp8=0.0, moe_layer_overhead_16bit_s=0.0,
              moe_layer_overhead_fp8_s=0.0)
# no floor from vLLM's own work per step: the GPU's line alone
NO_HOST = dict(host_step_s=0.0, host_sequence_s=0.0)
# where the iteration starts: no prefill cost, so no interference (the fit converges from here in a few passes)
START = replace(SPEED_CALIBRATION, compute_efficiency_16bit=1e9, compute_efficiency_fp8=1e9, ttft_overhead_s=0.0,
                mla_layer_overhead_s=0.0, kv_head_dim_factors=(), kv_head_dim_models=(), gemm_kernel_factors=(),
                gemm_kernel_models=(), **NO_HOST)
# the prefill's FLOPs over the datasheet rate alone: no memory floor, no fixed cost
FLOPS_ONLY = replace(SPEED_CALIBRATION, weight_factor_16bit=0.0, weight_factor_fp8=0.0, kv_factor_16bit=0.0,
                     kv_factor_fp8=0.0, step_overhead_s=0.0, layer_overhead_16bit_s=0.0, layer_overhead_fp8_s=0.0,
                     sequence_overhead_s=0.0, mla_layer_overhead_s=0.0, **NO_MOE,
                     compute_efficiency_16bit=1.0, compute_efficiency_fp8=1.0, ttft_overhead_s=0.0)
PASSES = 4  # it converges in two
WAVE_MIN = 32  # a wave of at least this many prompts: its last prompt's TTFT is the prefill of all of them


def _sig(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def row_plan(row: SpeedRow):
    """The engine of one measured row, as the planner sees it."""
    return _plan(row.model, row.gpu, json.dumps(row.engine, sort_keys=True))


@lru_cache(maxsize=None)
def _plan(model: str, gpu: str, engine_json: str):
    spec = row_model_spec(model)
    return spec, plan(spec, gpu_preset(gpu), advise=False, **json.loads(engine_json))


def row_wave(row: SpeedRow, calibration: SpeedCalibration = SPEED_CALIBRATION) -> WavePrediction:
    spec, p = row_plan(row)
    return wave(spec, p.config, gpu_preset(row.gpu), concurrency=row.concurrency, input_len=row.input_len,
                output_len=row.output_len, kv_tokens=p.kv_tokens, prompts_cached=row.prompts_cached,
                calibration=calibration)


def measured_step(row: SpeedRow, calibration: SpeedCalibration) -> float:
    """A row's decode step: its TPOT less the prefill steps after the median request's own, as the wave that
    ``calibration`` predicts them (planner.speed.wave). Every row is fitted so, where it kept an ITL or not."""
    w = row_wave(row, calibration)
    return 1 / row.decode_tok_s - (w.tpot_s - w.step_s)


def decode_rows(rows: list[SpeedRow]) -> list[SpeedRow]:
    """Rows whose every request decodes at once (vLLM queued none for want of KV cache)."""
    return [r for r in rows if row_wave(r).running == r.concurrency]


def mean_context(row: SpeedRow) -> float:
    return row.input_len + row.output_len / 2


def _decode_features(row: SpeedRow, cap_gb_s: float) -> np.ndarray:
    """The decode line's regressors for one row: weight and KV read times by kernel family, 1, layers by kernel
    family, batch."""
    engine_json = json.dumps(row.engine, sort_keys=True)
    layers = _plan(row.model, row.gpu, engine_json)[0].num_layers
    weights, kv, bandwidth, fp8, kv8 = _bytes(row.model, row.gpu, engine_json, row.concurrency, mean_context(row))
    kv_s = kv / min(bandwidth, cap_gb_s * 1e9)
    return np.array([weights / bandwidth * (not fp8), weights / bandwidth * fp8, kv_s * (not kv8), kv_s * kv8,
                     1.0, layers * (not fp8), layers * fp8, float(row.concurrency)])


@lru_cache(maxsize=None)
def _bytes(model: str, gpu: str, engine_json: str, batch: int, context: float):
    spec, p = _plan(model, gpu, engine_json)
    weights, kv = decode_step_bytes_parts(spec, p.config, batch=batch, mean_context=context)
    return weights, kv, gpu_preset(gpu).bandwidth_gb_s * 1e9, kernels_for(spec, p.config) == "fp8", p.config.fp8_kv


CONSTANT = 4  # the per-step constant's column in _decode_features


def _decode_fit(rows: list[SpeedRow], steps: list[float], cap_gb_s: float) -> tuple[np.ndarray, float]:
    """Least squares at one KV bandwidth cap, each row weighted by 1 / its step (relative residuals). A cost is
    never negative: when the per-step constant comes out below zero (the per-layer costs hold all of it), it is
    0 and the rest is fitted again."""
    a = np.array([_decode_features(r, cap_gb_s) / step for r, step in zip(rows, steps)])
    x, *_ = np.linalg.lstsq(a, np.ones(len(rows)), rcond=None)
    if x[CONSTANT] < 0:
        keep = [i for i in range(a.shape[1]) if i != CONSTANT]
        x = np.zeros(a.shape[1])
        x[keep], *_ = np.linalg.lstsq(a[:, keep], np.ones(len(rows)), rcond=None)
    return x, float(np.sum((a @ x - 1) ** 2))


def _fit_pass(rows: list[SpeedRow], decode: list[SpeedRow], previous: SpeedCalibration) -> SpeedCalibration:
    # the measured step: TPOT less the prefills of the wave that the previous pass predicts
    steps = [measured_step(r, previous) for r in decode]
    # the cap: the highest one whose fit is as good as the best (below every fitted GPU's bandwidth the cap only
    # rescales kv_factor, so the highest such cap is the one the rows can tell)
    fits = {cap: _decode_fit(decode, steps, cap) for cap in range(1000, 6001, 50)}
    best = min(ss for _, ss in fits.values())
    cap = max(c for c, (_, ss) in fits.items() if ss <= best * 1.001)
    f16, f8, kv16, kv8, overhead, layer16, layer8, per_sequence = fits[cap][0]
    calibration = replace(previous, weight_factor_16bit=_sig(f16), weight_factor_fp8=_sig(f8),
                          kv_factor_16bit=_sig(kv16), kv_factor_fp8=_sig(kv8), kv_bandwidth_cap_gb_s=float(cap),
                          step_overhead_s=_sig(overhead, 2), layer_overhead_16bit_s=_sig(layer16, 2),
                          layer_overhead_fp8_s=_sig(layer8, 2), sequence_overhead_s=_sig(per_sequence, 2))
    # TTFT: a cached prompt costs the fixed cost and about one step; a full prefill its FLOPs over the rate.
    ttft = [r for r in rows if r.concurrency == 1 and r.ttft_s]
    fixed = []
    for r in (r for r in ttft if r.prompts_cached):
        spec, p = row_plan(r)
        fixed.append(r.ttft_s - prefill_s(spec, p.config, gpu_preset(r.gpu), prompt_len=CACHED_PROMPT_TOKENS,
                                          calibration=calibration))
    calibration = replace(calibration, ttft_overhead_s=_sig(float(np.median(fixed)), 2))
    efficiency = {"16bit": [], "fp8": []}
    for r in (r for r in rows if r.concurrency >= WAVE_MIN and r.ttft_p99_s and not r.prompts_cached):
        spec, p = row_plan(r)
        ideal = r.concurrency * prefill_s(spec, p.config, gpu_preset(r.gpu), prompt_len=r.input_len,
                                          calibration=FLOPS_ONLY)
        efficiency[kernels_for(spec, p.config)].append(ideal / (r.ttft_p99_s - calibration.ttft_overhead_s))
    return replace(calibration, compute_efficiency_16bit=_sig(float(np.mean(efficiency["16bit"])), 2),
                   compute_efficiency_fp8=_sig(float(np.mean(efficiency["fp8"])), 2))


def is_moe(row: SpeedRow) -> bool:
    return bool(row_plan(row)[0].num_experts)


def _moe_fit(rows: list[SpeedRow], calibration: SpeedCalibration) -> SpeedCalibration:
    """The MoE terms from the MoE rows, the dense line fixed (the fit's passes settle the prefill interference)."""
    current = calibration
    for _ in range(PASSES):
        dense_only = replace(current, **NO_MOE)
        a, y = [], []
        for r in rows:
            spec, p = row_plan(r)
            step = measured_step(r, current)
            seconds = routed_expert_bytes(spec, p.config, batch=r.concurrency) / (gpu_preset(r.gpu).bandwidth_gb_s * 1e9)
            fp8 = kernels_for(spec, p.config) == "fp8"
            beyond = step - row_wave(r, dense_only).step_s
            layers = moe_layers(spec)
            a.append(np.array([seconds * (not fp8), seconds * fp8, layers * (not fp8), layers * fp8]) / step)
            y.append(beyond / step)
        (f16, f8, layer16, layer8), *_ = np.linalg.lstsq(np.array(a), np.array(y), rcond=None)
        current = replace(current, moe_weight_factor_16bit=_sig(f16), moe_weight_factor_fp8=_sig(f8),
                          moe_layer_overhead_16bit_s=_sig(layer16, 2), moe_layer_overhead_fp8_s=_sig(layer8, 2))
    return current


def is_mla(row: SpeedRow) -> bool:
    return bool(mla_layers(row_plan(row)[0]))


def _mla_fit(rows: list[SpeedRow], calibration: SpeedCalibration) -> SpeedCalibration:
    """The MLA layer cost from the MLA rows, every other term fixed (passes settle the prefill interference)."""
    current = calibration
    for _ in range(PASSES):
        no_mla = replace(current, mla_layer_overhead_s=0.0)
        a, y = [], []
        for r in rows:
            step = measured_step(r, current)
            a.append(mla_layers(row_plan(r)[0]) / step)
            y.append((step - row_wave(r, no_mla).step_s) / step)
        (per_layer,), *_ = np.linalg.lstsq(np.array(a)[:, None], np.array(y), rcond=None)
        current = replace(current, mla_layer_overhead_s=_sig(per_layer, 2))
    return current


def head_width(row: SpeedRow) -> int | None:
    """The attention-head width of a dense row whose heads get a KV factor of their own (not 64, 128 or 256 wide)."""
    spec = row_plan(row)[0]
    return None if spec.num_experts else own_kv_width(spec)


def _with_factor(calibration: SpeedCalibration, field: str, key, factor: float) -> SpeedCalibration:
    """``calibration`` with ``key``'s factor in the (key, factor) pairs of ``field`` set to ``factor``."""
    factors = dict(getattr(calibration, field)) | {key: factor}
    return replace(calibration, **{field: tuple(sorted(factors.items()))})


def _own_factor_fit(rows: list[SpeedRow], calibration: SpeedCalibration, key_of, field: str, models_field: str,
                    spread_field: str) -> SpeedCalibration:
    """For each key (a head width, a GEMM kernel) a factor on one term from its rows alone, every other term fixed:
    least squares of what the steps take beyond the line at factor 1 over that term's time at factor 1 (the passes
    settle the prefill interference); the rows' models and their largest relative residual beside."""
    current = calibration
    for key in sorted({key_of(r) for r in rows}):
        mine = [r for r in rows if key_of(r) == key]
        for _ in range(PASSES):
            plain, doubled = _with_factor(current, field, key, 1.0), _with_factor(current, field, key, 2.0)
            a, y = [], []
            for r in mine:
                step, base = measured_step(r, current), row_wave(r, plain).step_s
                a.append((row_wave(r, doubled).step_s - base) / step)  # the term's time at factor 1
                y.append((step - base) / step)
            (beyond,), *_ = np.linalg.lstsq(np.array(a)[:, None], np.array(y), rcond=None)
            current = _with_factor(current, field, key, _sig(1 + beyond, 2))
        models = dict(getattr(current, models_field)) | {key: ", ".join(sorted({r.model for r in mine}))}
        current = replace(current, **{models_field: tuple(sorted(models.items()))})
    worst = max(abs(e) for _, e in residuals(rows, current))
    return replace(current, **{spread_field: math.ceil(worst * 100) / 100})


def _head_dim_fit(rows: list[SpeedRow], calibration: SpeedCalibration) -> SpeedCalibration:
    """Each width's KV-read factor from its rows alone."""
    return _own_factor_fit(rows, calibration, head_width, "kv_head_dim_factors", "kv_head_dim_models",
                           "head_dim_spread")


def gemm_kernel(row: SpeedRow) -> str | None:
    """The GEMM kernel of a checkpoint row whose GEMMs get a factor of their own (planner.speed.own_gemm_kernel)."""
    return own_gemm_kernel(row_plan(row)[0], gpu_preset(row.gpu))


def _kernel_fit(rows: list[SpeedRow], calibration: SpeedCalibration) -> SpeedCalibration:
    """Each checkpoint kernel's GEMM factor from its rows alone (the factor on the GEMMs' read time)."""
    return _own_factor_fit(rows, calibration, gemm_kernel, "gemm_kernel_factors", "gemm_kernel_models",
                           "gemm_kernel_spread")


def _host_fit(rows: list[SpeedRow], calibration: SpeedCalibration) -> SpeedCalibration:
    """vLLM's own work per step from the rows of engines too small for their GPU, every GPU term fixed: least
    squares of their measured steps on (1, batch), relative errors (passes settle the prefill interference)."""
    current = calibration
    for _ in range(PASSES):
        steps = [measured_step(r, current) for r in rows]
        a = np.array([[1.0, r.concurrency] for r in rows]) / np.array(steps)[:, None]
        (base, per_sequence), *_ = np.linalg.lstsq(a, np.ones(len(rows)), rcond=None)
        current = replace(current, host_step_s=_sig(base, 3), host_sequence_s=_sig(per_sequence, 2))
    worst = max(abs(e) for _, e in residuals(rows, current))
    return replace(current, host_models=", ".join(sorted({r.model for r in rows})),
                   host_spread=math.ceil(worst * 100) / 100)


def fit(rows: list[SpeedRow]) -> SpeedCalibration:
    host, kernels, mla, moe, heads, dense = [], [], [], [], [], []  # each family its own terms, the dense line first
    for r in rows:
        (host if r.host_bound else kernels if gemm_kernel(r) else mla if is_mla(r) else moe if is_moe(r)
         else heads if head_width(r) else dense).append(r)
    rows = dense
    decode = decode_rows(rows)
    calibration = START
    for _ in range(PASSES):
        calibration = _fit_pass(rows, decode, calibration)
    b1 = [abs(e) for r, e in residuals(decode, calibration) if r.concurrency == 1]
    bn = [abs(e) for r, e in residuals(decode, calibration) if r.concurrency > 1]
    tt = [abs(e) for r, e in ttft_residuals(rows, calibration)]
    up = lambda x: math.ceil(max(x) * 100) / 100  # noqa: E731
    calibration = replace(calibration, decode_spread_batch1=up(b1), decode_spread_batched=up(bn), ttft_spread=up(tt))
    calibration = _moe_fit(decode_rows(moe), calibration) if moe else calibration
    calibration = _mla_fit(decode_rows(mla), calibration) if mla else calibration
    calibration = _head_dim_fit(decode_rows(heads), calibration) if heads else calibration
    calibration = _kernel_fit(decode_rows(kernels), calibration) if kernels else calibration
    # the GPU's terms were fitted without the floor (START has none): where a fitted row's step is the floor, the
    # prefill interference its measured step is taken less of changes nothing else
    return _host_fit(decode_rows(host), calibration) if host else calibration


def measured_decode_tok_s(row: SpeedRow) -> float:
    """A row's decode speed per request: 1 / its steady step where a sweep measured one (SpeedRow.steady_step_s),
    else 1 / its TPOT p50."""
    return 1 / row.steady_step_s if row.steady_step_s is not None else row.decode_tok_s


def predicted_decode_tok_s(row: SpeedRow, calibration: SpeedCalibration = SPEED_CALIBRATION) -> float:
    """The prediction of what measured_decode_tok_s measures: the steady step, or the wave's TPOT."""
    w = row_wave(row, calibration)
    return 1 / w.step_s if row.steady_step_s is not None else w.decode_tok_s


def predicted_ttft_s(row: SpeedRow, calibration: SpeedCalibration = SPEED_CALIBRATION) -> float:
    return row_wave(row, calibration).ttft_s


def residuals(rows: list[SpeedRow], calibration: SpeedCalibration) -> list[tuple[SpeedRow, float]]:
    """(row, predicted / measured - 1) of the decode speed."""
    return [(r, predicted_decode_tok_s(r, calibration) / measured_decode_tok_s(r) - 1) for r in rows]


def ttft_residuals(rows: list[SpeedRow], calibration: SpeedCalibration) -> list[tuple[SpeedRow, float]]:
    return [(r, predicted_ttft_s(r, calibration) / r.ttft_s - 1) for r in rows if r.concurrency == 1 and r.ttft_s]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the fit differs from SPEED_CALIBRATION")
    args = parser.parse_args()
    rows = fitted_rows()
    calibration = fit(rows)
    for name in FITTED:
        frozen = getattr(SPEED_CALIBRATION, name)
        value = getattr(calibration, name)
        shown = (f"{value:<10g} (frozen {frozen:g})" if isinstance(value, float)
                 else f"{value} (frozen {frozen})")
        print(f"{name:<26} {shown}")
    print(f"\n{len(rows)} fitted rows:")
    for r, e in residuals(decode_rows(rows), calibration):
        print(f"  {r.model:<11} {r.gpu:<8} {r.precision:<8} batch {r.concurrency:>3}  measured "
              f"{measured_decode_tok_s(r):7.1f} decode tok/s  error {100 * e:+.1f}%")
    if args.check:
        differ = [n for n in FITTED if getattr(calibration, n) != getattr(SPEED_CALIBRATION, n)]
        if differ:
            print(f"differs from the frozen calibration: {', '.join(differ)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
