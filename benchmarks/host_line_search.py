"""Could any one host line meet the speed bar for engines too small for their GPU?

Such an engine's step is vLLM's own work per step, the host's CPU (docs/speed.md, "Every held-out miss is an engine
too small for its GPU"), and planner.speed predicts it with one line, host_step_s + host_sequence_s x batch. This
script takes every measured point of every run whose engine the planner calls host-bound (fitted or held out, each
run's point apart, as a user meets it) and the held-out MoE points of engines under the line (the floor applies to
them too), and counts how many a line puts within the bar (decode tok/s within 15% at batch 1, 20% at batch >= 8):
the shipped line, the line fitted in log terms to those points, and the best line of a grid of base and slope. No
GPU: it reads the recorded exports.

    python benchmarks/host_line_search.py
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fit_speed import (  # noqa: E402
    NO_HOST, decode_rows, mean_context, measured_decode_tok_s, row_plan, row_wave,
)
from benchmarks.speed_accuracy import BAR_BATCH1, BAR_BATCHED, is_moe  # noqa: E402
from benchmarks.speed_runs import fitted_rows, held_out_rows  # noqa: E402
from planner.gpus import gpu_preset  # noqa: E402
from planner.speed import SPEED_CALIBRATION, host_bound  # noqa: E402

BASES_S = np.arange(1.40e-3, 2.60e-3, 0.01e-3)
PER_SEQUENCE_S = np.arange(0.0, 40e-6, 0.5e-6)


GPU_SIDE = replace(SPEED_CALIBRATION, **NO_HOST)  # the GPU's terms alone, no host line


def points() -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """The points whose step the host line sets: (rows, GPU-side steps, measured steps, batches)."""
    rows, gpu_step = [], []
    for r in decode_rows(fitted_rows() + held_out_rows()):
        spec, p = row_plan(r)
        step = row_wave(r, GPU_SIDE).step_s
        # an MoE engine is never called host-bound (planner.speed.host_bound), but the floor sets its step where the
        # GPU's side is under it
        if (host_bound(spec, p.config, gpu_preset(r.gpu), mean_context=mean_context(r))
                or (is_moe(r) and step < SPEED_CALIBRATION.host_floor_s(r.concurrency))):
            rows.append(r)
            gpu_step.append(step)
    measured = np.array([1 / measured_decode_tok_s(r) for r in rows])
    batch = np.array([r.concurrency for r in rows], float)
    return rows, np.array(gpu_step), measured, batch


def within(base: float, per_sequence: float, gpu_step, measured, batch) -> np.ndarray:
    """Which points a line puts within the bar: the predicted step is the longer of the GPU's and the line's."""
    predicted = np.maximum(gpu_step, base + per_sequence * batch)
    bar = np.where(batch == 1, BAR_BATCH1, BAR_BATCHED)
    return np.abs(measured / predicted - 1) <= bar  # predicted tok/s over measured, less 1


def log_fit(measured, batch) -> tuple[float, float]:
    """The line nearest the measured steps in log terms (the bar is a ratio), Gauss-Newton from least squares."""
    a = np.stack([np.ones_like(batch), batch], axis=1)
    x, *_ = np.linalg.lstsq(a / measured[:, None], np.ones(len(measured)), rcond=None)
    for _ in range(20):
        line = a @ x
        x = x - np.linalg.lstsq(a / line[:, None], np.log(line / measured), rcond=None)[0]
    return float(x[0]), float(x[1])


def main() -> int:
    rows, gpu_step, measured, batch = points()
    moe = np.array([is_moe(r) for r in rows])
    models = sorted({r.model for r in rows})
    print(f"{len(rows)} points of {len(models)} engines too small for their GPU ({', '.join(models)}): "
          f"{(~moe).sum()} dense, {moe.sum()} MoE")
    same: dict[tuple, list[float]] = {}
    for r, step in zip(rows, measured):
        same.setdefault((r.model, r.precision, r.concurrency), []).append(step)
    key, steps = max(((k, v) for k, v in same.items() if len(v) > 1), key=lambda kv: max(kv[1]) / min(kv[1]))
    print(f"one point measured in several runs spans up to {max(steps) / min(steps):.2f}x ({key[0]} {key[1]} at batch "
          f"{key[2]}: {1e3 * min(steps):.2f} to {1e3 * max(steps):.2f} ms in {len(steps)} runs); the bar's band is "
          f"{(1 + BAR_BATCH1) / (1 - BAR_BATCH1):.2f}x wide at batch 1, {(1 + BAR_BATCHED) / (1 - BAR_BATCHED):.2f}x batched")
    base, per = log_fit(measured[~moe], batch[~moe])
    grid = [(within(b, s, gpu_step, measured, batch).sum(), b, s) for b in BASES_S for s in PER_SEQUENCE_S]
    best, best_base, best_per = max(grid)
    print(f"\n{'line':56} {'within the bar':>14} {'dense':>6} {'MoE':>4}")
    for name, (b, s) in (("shipped", (SPEED_CALIBRATION.host_step_s, SPEED_CALIBRATION.host_sequence_s)),
                         ("fitted in log terms to the dense points", (base, per)),
                         ("the grid's best", (best_base, best_per))):
        ok = within(b, s, gpu_step, measured, batch)
        label = f"{name}: {1e3 * b:.2f} ms + {1e6 * s:.1f} µs"
        print(f"{label:56} {f'{ok.sum()} of {len(rows)}':>14} {ok[~moe].sum():>6} {ok[moe].sum():>4}")
    print(f"\nno line of the grid ({1e3 * BASES_S[0]:.2f}-{1e3 * BASES_S[-1]:.2f} ms, {1e6 * PER_SEQUENCE_S[0]:.0f}-"
          f"{1e6 * PER_SEQUENCE_S[-1]:.1f} µs a request) puts more than {best} of the {len(rows)} within the bar")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
