"""The planner checked against this machine's own GPU and vLLM: engine-start pairs and a calibration file.

Every coefficient the planner ships was fitted for vLLM 0.25.1 on H100 / H200 runs. On another GPU or vLLM:

- each engine start (app, bench CLI, playground.serve) records the plan beside what vLLM logged
  (``record_engine_start``): "planned 108,240 KV tokens, vLLM 108,784: +0.5%", kept in
  <data>/calibration/engine-starts.jsonl;
- ``python -m planner calibrate --model DIR`` (a GPU machine) starts a 16-bit and an FP8 engine on dummy weights
  through the bench (one short decode sweep), reads vLLM's start-up lines from its log as
  benchmarks/measure_kv.py does, and writes <data>/calibration/<GPU>--vllm-<version>.json: the KV memory
  vLLM had against the plan's, and the decode speed against the prediction (an engine too small for the GPU
  refits the line of vLLM's own work per step, the host's CPU, instead of the GEMM factors). Later plans for that GPU under
  that vLLM use it and say so (``memory_calibration_for``, ``calibration_for``); the shipped calibration stays
  the default everywhere else. ``--from-log LOG --from-bench JSON`` does the same from recorded files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from planner.gpus import GIB, GpuSpec, gpu_preset
from planner.memory import CALIBRATION, Calibration, plan
from planner.speed import SPEED_CALIBRATION, VLLM_VERSION, SpeedCalibration, decode_step_s, kernels_for, wave

# vLLM 0.25.1's start-up lines (vllm/v1/worker/gpu_model_runner.py, gpu_worker.py, v1/core/kv_cache_utils.py; the
# DEBUG ones need VLLM_LOGGING_LEVEL=DEBUG); benchmarks/vllm_log.py reads the fitted memory rows' logs with them too
LOG_PATTERNS = {
    "weights_gib": r"Model loading took ([\d.]+) GiB",
    "cudagraph_estimate_gib": r"Estimated CUDA graph memory: ([\d.]+) GiB total",
    "available_kv_gib": r"Available KV cache memory: ([\d.]+) GiB",
    "kv_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "torch_peak_increase_gib": r"torch peak memory increase: ([\d.]+)GiB",
    "non_torch_increase_gib": r"non-torch forward increase memory: ([\d.]+)GiB",
    "graph_capture_gib": r"Graph capturing finished in \d+ secs, took ([\d.]+) GiB",
}


def data_dir() -> Path:
    """Where the app keeps its data (PLAYGROUND_DATA_DIR, as app.py --data-dir sets it; ./data otherwise)."""
    return Path(os.environ.get("PLAYGROUND_DATA_DIR", "data")).expanduser()


def installed_vllm_version() -> str | None:
    """The installed vLLM's version from its package metadata (vLLM itself is not imported)."""
    from importlib import metadata

    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return None


def version_note(version: str | None = None) -> str:
    """A plain sentence when the vLLM in use is not the one the planner models; '' when it is (or none is here)."""
    version = version if version is not None else installed_vllm_version()
    if not version or version.split("+")[0] == VLLM_VERSION:
        return ""
    return (f"the planner models vLLM {VLLM_VERSION}; this is vLLM {version}, whose memory profiling and defaults may "
            f"differ: run `python -m planner calibrate --model DIR` on this GPU to check")


def parse_startup_log(text: str) -> list[dict]:
    """One dict per engine start (a start begins at each 'Model loading took' line)."""
    starts: list[dict] = []
    for line in text.splitlines():
        for key, pattern in LOG_PATTERNS.items():
            m = re.search(pattern, line)
            if not m:
                continue
            if key == "weights_gib":
                starts.append({})
            if starts:
                value = m.group(1).replace(",", "")
                starts[-1].setdefault(key, int(value) if key == "kv_tokens" else float(value))
    return starts


# ------------------------------------------------------------------------------------------- engine starts
def engine_start_pair(config: EngineConfig, gpu: GpuSpec, kv_tokens: int) -> dict:
    """The plan for an engine that just started beside the KV tokens vLLM reported."""
    predicted = plan(config, gpu, advise=False, calibration=memory_calibration_for(gpu, config.quantization)[0])
    return {"model": config.model, "gpu": gpu.name, "quantization": config.quantization,
            "kv_cache_dtype": config.kv_cache_dtype, "gpu_memory_utilization": predicted.gpu_memory_utilization,
            "max_model_len": predicted.max_model_len, "planned_kv_tokens": predicted.kv_tokens,
            "vllm_kv_tokens": kv_tokens, "error_percent": 100 * (predicted.kv_tokens - kv_tokens) / kv_tokens,
            "vllm_version": installed_vllm_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def pair_text(pair: dict) -> str:
    text = (f"planned {pair['planned_kv_tokens']:,} KV tokens, vLLM {pair['vllm_kv_tokens']:,}: "
            f"{(pair['vllm_kv_tokens'] - pair['planned_kv_tokens']) / pair['planned_kv_tokens']:+.1%}")
    note = version_note(pair.get("vllm_version"))
    return text + (f" ({note})" if note else "")


def record_engine_start(config: EngineConfig, gpu: GpuSpec, kv_tokens: int | None, folder: Path | None = None) -> str:
    """Plan the engine, keep the pair in <data>/calibration/engine-starts.jsonl and return the status-line text
    ('' when vLLM reported no KV cache or the planner cannot size this model)."""
    if not kv_tokens:
        return ""
    try:
        pair = engine_start_pair(config, gpu, kv_tokens)
    except PlannerError as e:
        return f"planner: {e}"
    folder = (folder or data_dir()) / "calibration"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "engine-starts.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(pair) + "\n")
    except OSError:
        pass  # a read-only data folder loses the record, not the engine
    return pair_text(pair)


def recent_engine_starts(limit: int = 3, folder: Path | None = None) -> list[dict]:
    """The last engine-start pairs recorded on this machine (newest last)."""
    path = (folder or data_dir()) / "calibration" / "engine-starts.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines[-limit:]:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return out


# ------------------------------------------------------------------------------------------- calibration files
@dataclass(frozen=True)
class EngineStart:
    """One engine started by calibrate: its arguments and what vLLM logged."""

    config: EngineConfig
    logged: dict  # parse_startup_log's keys


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def calibration_path(gpu_name: str, vllm_version: str, folder: Path | None = None) -> Path:
    return (folder or data_dir()) / "calibration" / f"{_slug(gpu_name)}--vllm-{_slug(vllm_version)}.json"


def calibrate_from_records(gpu: GpuSpec, vllm_version: str, starts: list[EngineStart], sweep: list[dict]) -> dict:
    """The calibration file's content from recorded engine starts and sweep points.

    Memory: the KV memory vLLM had minus the plan's, per precision (the plan's torch-peak term absorbs it:
    ``peak_offset_bytes`` comes off the whole peak). Speed: the measured batch-1 decode step over the predicted,
    per kernel family, scales that family's weight factor (batch 1 is the regime it sets)."""
    memory, pairs = {}, []
    for start in starts:
        p = plan(start.config, gpu, advise=False)
        logged_kv = start.logged.get("available_kv_gib")
        pair = {"precision": start.config.precision_label, "quantization": start.config.quantization,
                "planned_kv_tokens": p.kv_tokens, "vllm_kv_tokens": start.logged.get("kv_tokens"),
                "planned_kv_gib": round(p.kv_cache_bytes / GIB, 3), "vllm_kv_gib": logged_kv,
                "planned_weights_gib": round(p.weights_bytes / GIB, 3), "vllm_weights_gib": start.logged.get("weights_gib")}
        pairs.append(pair)
        if logged_kv is not None:
            memory.setdefault(start.config.quantization or "none", []).append(logged_kv * GIB - p.kv_cache_bytes)
    offsets = {k: int(statistics.mean(v)) for k, v in memory.items()}
    speed_pairs = []
    for point in sweep:
        config = point["config"]
        speed_pairs.append({"precision": config.precision_label, "concurrency": point["concurrency"],
                            "measured_decode_tok_s": point["decode_tok_s"], "measured_step_s": point.get("step_s"),
                            "predicted_decode_tok_s": _predicted(gpu, config, point),
                            # the engine and lengths, so a later planner can put its own prediction beside it
                            "model": config.model, "dtype": config.dtype, "max_model_len": config.max_model_len,
                            "quantization": config.quantization, "kv_cache_dtype": config.kv_cache_dtype,
                            "input_len": point["input_len"], "output_len": point["output_len"]})
    speed = speed_factors(gpu, speed_pairs)
    return {"gpu": gpu.name, "vllm_version": vllm_version, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "kv_memory_offset_bytes": offsets, "speed": speed, "engine_starts": pairs, "sweep": speed_pairs}


def merged_calibration(gpu: GpuSpec, earlier: dict, new: dict) -> dict:
    """A calibration run added to the file an earlier one wrote for this GPU and vLLM: a large model's sweep sets the
    GEMM factors and a small one's the host line, so calibrating with both, one after the other, keeps both. The
    earlier file's sweep points of other models stay (this run's model replaces its own), its KV offsets for the
    precisions this run did not start stay, and the factors are taken afresh from the points together."""
    models = {p.get("model") for p in new["sweep"]}
    kept = [p for p in earlier.get("sweep") or [] if "model" in p and p["model"] not in models]
    sweep = kept + new["sweep"]
    return {**new, "kv_memory_offset_bytes": {**earlier.get("kv_memory_offset_bytes", {}), **new["kv_memory_offset_bytes"]},
            "speed": speed_factors(gpu, sweep), "sweep": sweep,
            "engine_starts": (earlier.get("engine_starts") or []) + new["engine_starts"]}


def _predicted(gpu: GpuSpec, config: EngineConfig, point: dict, calibration: SpeedCalibration = SPEED_CALIBRATION) -> float:
    spec, _ = _spec_config(config)
    p = plan(config, gpu, advise=False)
    return wave(spec, p.config, gpu, concurrency=point["concurrency"], input_len=point["input_len"],
                output_len=point["output_len"], kv_tokens=p.kv_tokens, calibration=calibration).decode_tok_s


def speed_factors(gpu: GpuSpec, pairs: list[dict]) -> dict[str, float | str]:
    """The factors a sweep on this GPU sets, against this planner's shipped fit for the engine each pair names (a
    pair written before the engine was kept carries the prediction of the planner that wrote it).

    - Where the step from the GPU's side is under vLLM's own work per step (an engine too small for its GPU), the
      step measured is that work, which is the host's CPU and not the GPU's: those points refit the line
      ``host_step_s + host_sequence_s x batch`` to their measured steps (``host_line``), and set nothing else.
    - Every other batch-1 point scales its kernel family's weight factor by the median (predicted / measured) (the
      regime it sets)."""
    # each named pair's engine and its step from the GPU's side, once: the host line and the factors both read them
    engines = {id(p): _pair_engine(gpu, p) for p in pairs if "model" in p}
    host = host_line([(p, engines[id(p)][2]) for p in pairs if id(p) in engines])
    floor = replace(SPEED_CALIBRATION, **{k: v for k, v in host.items() if k != "host_models"})
    scales: dict[str, list[float]] = {"16bit": [], "fp8": []}
    for pair in pairs:
        if pair["concurrency"] != 1:
            continue
        if "model" in pair:
            config, spec, gpu_step = engines[id(pair)]
            if gpu_step is not None and gpu_step < floor.host_floor_s(1):  # on the host line: it set that, not a GEMM factor
                continue
            predicted, kernels = _predicted(gpu, config, pair), kernels_for(spec, config)
        else:
            predicted, kernels = pair["predicted_decode_tok_s"], "16bit" if pair["precision"] == "fp16" else "fp8"
        scales[kernels].append(predicted / pair["measured_decode_tok_s"])
    factors: dict[str, float | str] = {
        f"weight_factor_{k}": round(getattr(SPEED_CALIBRATION, f"weight_factor_{k}") * statistics.median(v), 3)
        for k, v in scales.items() if v}
    return {**factors, **host}


def host_line(pairs: list[tuple[dict, float | None]]) -> dict[str, float | str]:
    """vLLM's own work per step on this machine: the line fitted to the measured steps of the points whose step from
    the GPU's side is under it (least squares over two batches or more, never a negative slope; at one batch, the
    shipped slope through their median). The points are chosen under the shipped line, then again under the
    refitted one (a slower host puts more engines under it). Nothing where no point is host-bound. ``pairs``: each
    with its step from the GPU's side (None for an MoE engine, which the line does not bound: planner.speed.host_bound)."""
    line = SPEED_CALIBRATION
    chosen: list[dict] = []
    for _ in range(2):
        chosen = [p for p, step in pairs if step is not None and step < line.host_floor_s(p["concurrency"])]
        if not chosen:
            return {}
        batches = [p["concurrency"] for p in chosen]
        steps = [_measured_step(p) for p in chosen]
        slope = line.host_sequence_s
        if len(set(batches)) > 1:
            slope = max(statistics.linear_regression(batches, steps).slope, 0.0)
        base = statistics.median(s - slope * b for s, b in zip(steps, batches))
        line = replace(line, host_step_s=base, host_sequence_s=slope)
    models = sorted({Path(p["model"]).name for p in chosen})
    return {"host_step_s": round(line.host_step_s, 6), "host_sequence_s": round(line.host_sequence_s, 8),
            "host_models": f"{', '.join(models)} on this machine's host"}


def _pair_engine(gpu: GpuSpec, pair: dict):
    """(engine, model, its step from the GPU's side under the shipped fit; None for an MoE model) of a named pair."""
    config = EngineConfig(model=pair["model"], dtype=pair["dtype"], max_model_len=pair["max_model_len"],
                          quantization=pair["quantization"], kv_cache_dtype=pair.get("kv_cache_dtype", "auto"))
    spec = _spec_config(config)[0]
    step, _ = decode_step_s(spec, plan(config, gpu, advise=False).config, gpu, batch=pair["concurrency"],
                            mean_context=pair["input_len"] + pair["output_len"] / 2)
    return config, spec, None if spec.num_experts else step


def _measured_step(pair: dict) -> float:
    """The decode step a pair measured: its steady step where the export had one, else 1 / its decode tok/s."""
    return pair.get("measured_step_s") or 1 / pair["measured_decode_tok_s"]


def _spec_config(config: EngineConfig):
    from planner.memory import engine_config

    return engine_config(config)


def load_calibration(gpu: GpuSpec, folder: Path | None = None, vllm_version: str | None = None) -> tuple[dict | None, Path]:
    version = vllm_version or installed_vllm_version()
    if not version:
        return None, Path()
    path = calibration_path(gpu.name, version, folder)
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except (OSError, json.JSONDecodeError):
        return None, path


def memory_calibration_for(gpu: GpuSpec, quantization: str | None, folder: Path | None = None,
                           vllm_version: str | None = None) -> tuple[Calibration, str]:
    """The memory calibration for plans on this GPU: the shipped one, or this machine's where calibrate wrote one."""
    data, path = load_calibration(gpu, folder, vllm_version)
    offset = (data or {}).get("kv_memory_offset_bytes", {}).get(quantization or "none")
    if offset is None:
        return CALIBRATION, ""
    return (replace(CALIBRATION, peak_offset_bytes=int(offset)),
            f"calibrated on this GPU with vLLM {data['vllm_version']} ({path})")


def calibration_for(gpu: GpuSpec, folder: Path | None = None, vllm_version: str | None = None) -> tuple[SpeedCalibration, str]:
    """The speed calibration for this GPU: the shipped one, or this machine's (and a note saying which)."""
    data, path = load_calibration(gpu, folder, vllm_version)
    pairs = (data or {}).get("sweep") or []
    # what this GPU measured, against this planner's shipped fit: a file written under an earlier fit stays true
    speed = speed_factors(gpu, pairs) if any("model" in p for p in pairs) else (data or {}).get("speed") or {}
    known = {f.name for f in fields(SpeedCalibration)}
    speed = {k: v for k, v in speed.items() if k in known}
    if not speed:
        return SPEED_CALIBRATION, ""
    note = f"calibrated on this GPU with vLLM {data['vllm_version']} ({path})"
    return replace(SPEED_CALIBRATION, **speed, source=note), note


# ------------------------------------------------------------------------------------------- the command
def per_token_itl(point: dict) -> float | None:
    """A bench point's ITL p50 where its stream carried about a token a chunk. The ITL is the gap between streamed
    chunks: a client that falls behind gets several tokens a chunk, and a median gap well above the requests' TPOT
    (the mean gap per token) is no decode step (OLMoE-1B-7B FP8 at 16: 434 ms gaps, 3.4 ms TPOT)."""
    itl, tpot = point.get("itl_p50_s"), point["tpot_p50_s"]
    return itl if itl and itl <= 1.5 * tpot else None


def steady_step(point: dict) -> float:
    """The decode step a bench point measured with no prefill in it: a batched point's ITL p50 (its TPOT holds the
    wave's prefills), a batch-1 point's TPOT."""
    itl = per_token_itl(point) if point["concurrency"] > 1 else None
    return itl or point["tpot_p50_s"]


def sweep_points(bench_json: dict, base: EngineConfig) -> list[dict]:
    """The decode points of a playground.bench export, each with the engine it ran on."""
    precisions = {"fp16": dict(quantization=None, kv_cache_dtype="auto"), "fp8": dict(quantization="fp8", kv_cache_dtype="auto"),
                  "fp8-kv8": dict(quantization="fp8", kv_cache_dtype="fp8")}
    out = []
    for p in bench_json["points"]:
        if not p.get("tpot_p50_s") or p["precision"] not in precisions:
            continue
        out.append({"config": replace(base, **precisions[p["precision"]]), "concurrency": p["concurrency"],
                    "input_len": p["prompt_tokens"] // p["num_prompts"], "output_len": p["output_tokens"] // p["num_prompts"],
                    "decode_tok_s": 1 / p["tpot_p50_s"], "step_s": steady_step(p)})
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m planner calibrate",
        description="Calibrate the planner on this GPU and vLLM: a 16-bit and an FP8 engine on dummy weights, a short "
                    "decode sweep, vLLM's own start-up lines; writes <data>/calibration/<GPU>--vllm-<version>.json.",
        epilog="Example:\n  python -m playground.model_dirs llama-3-8b /tmp/models/llama-3-8b\n"
               "  python -m planner calibrate --model /tmp/models/llama-3-8b\n"
               "An engine too small for the GPU (its step under vLLM's own work per step, e.g. qwen2.5-0.5b on an H200)\n"
               "calibrates that work, the host's CPU, instead of the GPU's factors: calibrate with one too (a second\n"
               "run adds to the file the first wrote for this GPU and vLLM).\n"
               "Recorded files instead of a GPU run:\n"
               "  python -m planner calibrate --model llama-2-70b --gpu h200 --from-log run.log --from-bench bench.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (config.json) or a catalog name")
    parser.add_argument("--gpu", default="local", help="'local' (NVML, default) or a preset for recorded files")
    parser.add_argument("--gpu-index", type=int, default=0)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--data-dir", default=None, help="default: PLAYGROUND_DATA_DIR or ./data")
    parser.add_argument("--from-log", default=None, help="a recorded log with vLLM's start-up lines (no engine is started)")
    parser.add_argument("--from-bench", default=None, help="with --from-log: the sweep's playground.bench JSON export")
    parser.add_argument("--vllm-version", default=None, help="with --from-log: the vLLM that wrote it (default 0.25.1)")
    parser.add_argument("--precisions", default="fp16,fp8", help="with --from-log: the engines in the log, in order")
    sweep = parser.add_argument_group("the sweep it runs (without --from-log)")
    sweep.add_argument("--concurrency", default="1,8", help="batch sizes, comma-separated (default 1,8)")
    sweep.add_argument("--input-len", type=int, default=128, help="prompt tokens per request (default 128)")
    sweep.add_argument("--output-len", type=int, default=64, help="output tokens per request (default 64)")
    sweep.add_argument("--repeats", type=int, default=1,
                       help="waves a point, each its own prompts; the median counts (default 1; an engine too small "
                            "for the GPU runs at the host's pace, whose waves differ by up to 1.3x: take 3 or more)")
    sweep.add_argument("--save-bench", default=None,
                       help="also write the sweep's playground.bench JSON export here (for benchmarks/speed_accuracy.py)")
    return parser


def _run_sweep(args, folder: Path) -> tuple[str, dict]:
    """Start the engines through playground.bench (one short sweep) and return (its log, its JSON export)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "playground.bench", "--backend", "vllm", "--model", args.model,
                   "--load-format", "dummy", "--max-model-len", str(args.max_model_len), "--dtype", args.dtype,
                   "--gpu-memory-utilization", str(args.gpu_memory_utilization), "--precisions", "fp16,fp8",
                   "--concurrency", args.concurrency, "--input-len", str(args.input_len),
                   "--output-len", str(args.output_len), "--repeats", str(args.repeats), "--data-dir", tmp]
        print("$ " + " ".join(command), flush=True)
        run = subprocess.run(command, capture_output=True, text=True, errors="replace")
        log = run.stdout + run.stderr
        (folder / "calibration").mkdir(parents=True, exist_ok=True)
        (folder / "calibration" / "last-run.log").write_text(log, encoding="utf-8")
        if run.returncode:
            raise PlannerError("model", f"the calibration sweep failed (exit {run.returncode}); its log is in "
                                        f"{folder / 'calibration' / 'last-run.log'}")
        export = subprocess.run([sys.executable, "-m", "playground.bench", "--data-dir", tmp, "--export", "1",
                                 "--format", "json"], capture_output=True, text=True, check=True)
        if args.save_bench:
            Path(args.save_bench).parent.mkdir(parents=True, exist_ok=True)
            Path(args.save_bench).write_text(export.stdout, encoding="utf-8")
        return log, json.loads(export.stdout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.data_dir).expanduser() if args.data_dir else data_dir()
    try:
        if args.repeats < 1:
            raise PlannerError("repeats", f"--repeats must be 1 or more, got {args.repeats}")
        if args.gpu == "local":
            from planner.nvml import read_gpus

            gpu = replace(read_gpus(args.gpu_index)[0].to_spec(), free_bytes=None)  # the engines are not started yet
        else:
            gpu = gpu_preset(args.gpu)
        base = EngineConfig(model=args.model, dtype=args.dtype, max_model_len=args.max_model_len,
                            gpu_memory_utilization=args.gpu_memory_utilization)
        if args.from_log:
            log = Path(args.from_log).read_text(encoding="utf-8", errors="replace")
            bench = json.loads(Path(args.from_bench).read_text()) if args.from_bench else {"points": []}
            version = args.vllm_version or VLLM_VERSION
        else:
            log, bench = _run_sweep(args, folder)
            version = installed_vllm_version() or "unknown"
        precisions = {"fp16": dict(quantization=None), "fp8": dict(quantization="fp8")}
        names = args.precisions.split(",") if args.from_log else ["fp16", "fp8"]
        starts = [EngineStart(replace(base, **precisions[name]), logged)
                  for name, logged in zip(names, parse_startup_log(log))]
        if not starts:
            raise PlannerError("from_log", "no vLLM start-up lines ('Model loading took', 'GPU KV cache size') found")
        result = calibrate_from_records(gpu, version, starts, sweep_points(bench, base))
    except PlannerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = calibration_path(gpu.name, version, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = merged_calibration(gpu, json.loads(path.read_text(encoding="utf-8")), result)
    except (OSError, json.JSONDecodeError):
        pass  # no earlier file for this GPU and vLLM (or an unreadable one): this run's alone
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for pair in result["engine_starts"]:
        logged = lambda value, unit="": "not in the log" if value is None else f"{value:,}{unit}"  # noqa: E731
        print(f"{pair['precision']:<8} KV tokens: planned {pair['planned_kv_tokens']:,}, vLLM {logged(pair['vllm_kv_tokens'])}; "
              f"KV memory planned {pair['planned_kv_gib']} GiB, vLLM {logged(pair['vllm_kv_gib'], ' GiB')}")
    for point in result["sweep"]:
        print(f"{point['precision']:<8} batch {point['concurrency']:>3}: decode {point['measured_decode_tok_s']:,.1f} tok/s "
              f"measured, {point['predicted_decode_tok_s']:,.1f} predicted")
    speed = result["speed"]
    if "host_step_s" in speed:
        print(f"host line: vLLM's own work per step {speed['host_step_s'] * 1e3:.2f} ms + {speed['host_sequence_s'] * 1e6:.0f} "
              f"µs per running request ({speed['host_models']}; shipped {SPEED_CALIBRATION.host_step_s * 1e3:.2f} ms + "
              f"{SPEED_CALIBRATION.host_sequence_s * 1e6:.0f} µs): engines too small for the GPU are predicted on it")
    print(f"wrote {path}: later plans for {gpu.name} under vLLM {version} use it")
    return 0
