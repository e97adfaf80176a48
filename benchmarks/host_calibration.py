"""Does `python -m planner calibrate` fix the speed of an engine too small for its GPU on this host?

Such an engine's step is vLLM's own work per step, the host's CPU (docs/speed.md, "Every held-out miss is an engine
too small for its GPU"): the shipped line was fitted to one lease's host, and another lease's ran the same engine up to
1.5x slower. This script calibrates from one recorded sweep, as `calibrate` does from the sweep it runs, and puts
another engine's points, swept in the same call on the same host, beside the shipped prediction and the calibrated
one, with the speed bar (decode tok/s within 15% at batch 1, 20% at batch >= 8). No GPU: it reads the exports.

    python benchmarks/host_calibration.py                                  # qwen2.5-0.5b's sweep calibrates, qwen2.5-1.5b's checks
    python benchmarks/host_calibration.py --calibrate qwen2.5-1.5b --check qwen2.5-0.5b
    python benchmarks/host_calibration.py --sweep one-host --check llama-3.2-1b   # the three engines of 2026-12-03
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed_accuracy import BAR_BATCH1, BAR_BATCHED  # noqa: E402
from planner import EngineConfig, gpu_preset, plan  # noqa: E402
from planner.calibrate import calibrate_from_records, sweep_points  # noqa: E402
from planner.models import model_spec  # noqa: E402
from planner.speed import SPEED_CALIBRATION, predict_speed, steady_step_s  # noqa: E402

# engines swept on one H200 lease's host, by name: `bash benchmarks/gpu.sh sweep qwen2.5-0.5b,qwen2.5-1.5b ...` (five
# repeats), and `gpu.sh host-line qwen2.5-0.5b llama-3.2-1b` then `host-line - qwen2.5-1.5b` (calibrate's own sweep)
SWEEPS = {"five-repeats": "docs/results/speed-rows/dense/" "h200-2026-12-03-{model}-five-repeats.json",
          "one-host": "docs/results/speed-rows/dense/" "h200-2026-12-03-{model}-one-host.json"}


def points(model: str, sweep: str) -> list[dict]:
    bench = json.loads((ROOT / sweep.format(model=model)).read_text())
    max_len = bench["run"]["environment"]["engine_args"]["max_model_len"]
    return sweep_points(bench, EngineConfig(model=model, dtype="bfloat16", max_model_len=max_len))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", default="qwen2.5-0.5b", help="the engine whose sweep calibrates (catalog name)")
    parser.add_argument("--check", default="qwen2.5-1.5b", help="the engine whose sweep is predicted (catalog name)")
    parser.add_argument("--sweep", default="five-repeats",
                        help=f"the recorded sweeps ({' or '.join(SWEEPS)}) or the exports' path, {{model}} for the name "
                             "(default: %(default)s)")
    parser.add_argument("--gpu", default="h200")
    parser.add_argument("--large", default="llama-3-8b", help="a model large for the GPU, whose plan the calibration must not move")
    args = parser.parse_args(argv)
    args.sweep = SWEEPS.get(args.sweep, args.sweep)
    gpu = gpu_preset(args.gpu)
    result = calibrate_from_records(gpu, "0.25.1", [], points(args.calibrate, args.sweep))
    speed = result["speed"]
    print(f"calibrated from {args.calibrate}: " + ", ".join(f"{k}={v}" for k, v in speed.items()))
    calibration = replace(SPEED_CALIBRATION, **speed)
    spec = model_spec(args.check)
    print(f"\n{args.check}, decode tok/s per request (measured: 1 / the steady step)")
    print(f"{'precision':9} {'batch':>5} {'measured':>9} {'shipped':>8} {'error':>7} {'bar':>5} {'calibrated':>10} {'error':>7} {'bar':>5}")
    passed = {"shipped": 0, "calibrated": 0}
    rows = points(args.check, args.sweep)
    for point in rows:
        config = plan(point["config"], gpu, advise=False).config
        context = point["input_len"] + point["output_len"] / 2
        bar = BAR_BATCH1 if point["concurrency"] == 1 else BAR_BATCHED
        cells = []
        for name, cal in (("shipped", SPEED_CALIBRATION), ("calibrated", calibration)):
            step, _ = steady_step_s(spec, config, gpu, batch=point["concurrency"], mean_context=context, calibration=cal)
            error = point["step_s"] / step - 1  # predicted tok/s over measured
            passed[name] += abs(error) <= bar
            cells.append(f"{1 / step:{len(name) if name != 'shipped' else 8}.1f} {error:+7.1%} {'pass' if abs(error) <= bar else 'MISS':>5}")
        print(f"{point['config'].precision_label:9} {point['concurrency']:5} {1 / point['step_s']:9.1f} " + " ".join(cells))
    print(f"\nwithin the bar: {passed['shipped']} of {len(rows)} shipped, {passed['calibrated']} of {len(rows)} calibrated")
    # before the host line was calibrated, every batch-1 point scaled its family's GEMM factor by predicted / measured
    scaled = {}
    for point in (p for p in points(args.calibrate, args.sweep) if p["concurrency"] == 1):
        family = "fp8" if point["config"].quantization else "16bit"
        config = plan(point["config"], gpu, advise=False).config
        step, _ = steady_step_s(model_spec(args.calibrate), config, gpu, batch=1,
                                mean_context=point["input_len"] + point["output_len"] / 2)
        scaled[f"weight_factor_{family}"] = round(getattr(SPEED_CALIBRATION, f"weight_factor_{family}") * point["step_s"] / step, 3)
    gemm_scaled = replace(SPEED_CALIBRATION, **scaled)
    print(f"\nhad this sweep scaled the GEMM factors instead ({', '.join(f'{k}={v}' for k, v in scaled.items())}), "
          f"{args.large} at batch 1 on {gpu.name}, decode tok/s:")
    for quantization in (None, "fp8"):
        label = quantization or "fp16"
        shipped = predict_speed(args.large, gpu, quantization=quantization).at(1).decode_tok_s
        host = predict_speed(args.large, gpu, quantization=quantization, calibration=calibration).at(1).decode_tok_s
        gemm = predict_speed(args.large, gpu, quantization=quantization, calibration=gemm_scaled).at(1).decode_tok_s
        print(f"  {label:5} shipped {shipped:.1f}, host line calibrated {host:.1f}, GEMM factors scaled {gemm:.1f} ({gemm / shipped - 1:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
