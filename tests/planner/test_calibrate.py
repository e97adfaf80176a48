"""Calibration on the user's GPU and vLLM, from recorded vLLM logs and sweeps (no GPU here)."""

import json
import statistics
from dataclasses import replace
from pathlib import Path

from planner import EngineConfig, gpu_preset, plan
from planner.calibrate import (
    EngineStart, calibrate_from_records, calibration_for, main, memory_calibration_for, parse_startup_log,
    record_engine_start, steady_step, sweep_points, version_note,
)
from planner.gpus import GIB
from planner.speed import SPEED_CALIBRATION, predict_speed, steady_step_s, wave
from planner.models import model_spec

ROOT = Path(__file__).resolve().parents[2]
# the 70B FP8 engine on one H200 (docs/results/multi-gpu.md): vLLM's own start-up lines and the bench's table
LOG_70B = ROOT / "docs/results/multi-gpu/h200-2026-11-26-70b-fp8-tp1.txt"
ENGINE_70B = EngineConfig(model="llama-2-70b", quantization="fp8", dtype="bfloat16", gpu_memory_utilization=0.95,
                          max_model_len=4096, max_num_seqs=128, max_num_batched_tokens=2048)
# a sweep on an H200 (llama-2-7b, each precision its own GPU)
BENCH_H200 = ROOT / "docs/results/multi-gpu/h200-2026-11-26-benchmark-one-precision-per-gpu.json"
H200 = gpu_preset("h200")


def log_70b() -> str:
    """The 70B FP8 engine's recorded log (vLLM's start-up lines and the bench's table)."""
    return LOG_70B.read_text().split("######## gpu1c")[0]


def test_reads_vllms_start_up_lines_from_a_recorded_log():
    (start,) = parse_startup_log(log_70b())
    assert start["weights_gib"] == 64.76
    assert start["available_kv_gib"] == 67.26
    assert start["kv_tokens"] == 220384


def test_a_calibration_file_moves_later_plans_to_what_vllm_logged_and_says_so(tmp_path):
    (logged,) = parse_startup_log(log_70b())
    result = calibrate_from_records(H200, "0.25.1", [EngineStart(ENGINE_70B, logged)], [])
    path = tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(result))
    shipped = plan(ENGINE_70B, H200, advise=False)
    calibration, note = memory_calibration_for(H200, "fp8", tmp_path, vllm_version="0.25.1")
    calibrated = plan(ENGINE_70B, H200, advise=False, calibration=calibration)
    assert abs(calibrated.kv_cache_bytes - 67.26 * GIB) < 0.001 * GIB  # vLLM's logged KV memory
    assert abs(shipped.kv_cache_bytes - 67.26 * GIB) > abs(calibrated.kv_cache_bytes - 67.26 * GIB)
    assert "calibrated on this GPU with vLLM 0.25.1" in note
    # another vLLM, another GPU or the other precision: the shipped calibration, silently
    assert memory_calibration_for(H200, "fp8", tmp_path, vllm_version="0.26.0")[1] == ""
    assert memory_calibration_for(gpu_preset("h100-sxm"), "fp8", tmp_path, vllm_version="0.25.1")[1] == ""
    assert memory_calibration_for(H200, None, tmp_path, vllm_version="0.25.1")[1] == ""


def test_a_recorded_sweep_rescales_the_speed_to_what_this_gpu_measured(tmp_path):
    bench = json.loads(BENCH_H200.read_text())
    base = EngineConfig(model="llama-2-7b", dtype="bfloat16", gpu_memory_utilization=0.9)
    points = sweep_points(bench, base)
    assert {p["concurrency"] for p in points} == {1, 64}
    result = calibrate_from_records(H200, "0.25.1", [], points)
    assert set(result["speed"]) == {"weight_factor_16bit", "weight_factor_fp8"}
    path = tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(result))
    calibration, note = calibration_for(H200, tmp_path, vllm_version="0.25.1")
    assert note and calibration.source == note
    spec = model_spec("llama-2-7b")
    for point in (p for p in points if p["concurrency"] == 1):
        config = plan(point["config"], H200, advise=False).config
        shipped = wave(spec, config, H200, concurrency=1, input_len=point["input_len"], output_len=point["output_len"])
        tuned = wave(spec, config, H200, concurrency=1, input_len=point["input_len"], output_len=point["output_len"],
                     calibration=calibration)
        assert abs(tuned.decode_tok_s / point["decode_tok_s"] - 1) < abs(shipped.decode_tok_s / point["decode_tok_s"] - 1)
        assert abs(tuned.decode_tok_s / point["decode_tok_s"] - 1) < 0.02
    assert predict_speed("llama-2-7b", H200, calibration=calibration).calibration_source == note
    assert calibration_for(H200, tmp_path, vllm_version="0.24.0") == (SPEED_CALIBRATION, "")


def test_calibrate_from_a_recorded_log_writes_the_file_for_that_gpu_and_version(tmp_path, capsys):
    log = tmp_path / "run.log"
    log.write_text(log_70b())
    code = main(["--model", "llama-2-70b", "--gpu", "h200", "--max-model-len", "4096", "--gpu-memory-utilization", "0.95",
                 "--from-log", str(log), "--precisions", "fp8", "--from-bench", str(BENCH_H200),
                 "--data-dir", str(tmp_path)])
    assert code == 0
    written = json.loads((tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json").read_text())
    assert written["gpu"] == "NVIDIA H200" and written["vllm_version"] == "0.25.1"
    assert written["engine_starts"][0]["vllm_kv_tokens"] == 220384
    assert "vLLM 220,384" in capsys.readouterr().out


def test_a_log_without_start_up_lines_is_refused(tmp_path, capsys):
    log = tmp_path / "empty.log"
    log.write_text("nothing here\n")
    assert main(["--model", "llama-2-7b", "--gpu", "h200", "--from-log", str(log), "--data-dir", str(tmp_path)]) == 2
    assert "no vLLM start-up lines" in capsys.readouterr().err


def test_each_engine_start_keeps_the_plan_beside_vllms_count(tmp_path):
    config = EngineConfig(model="llama-2-7b", dtype="float16", gpu_memory_utilization=0.5, max_model_len=2048)
    planned = plan(config, gpu_preset("h100-sxm"), advise=False).kv_tokens
    text = record_engine_start(config, gpu_preset("h100-sxm"), 51904, folder=tmp_path)
    assert text.startswith(f"planned {planned:,} KV tokens, vLLM 51,904: ")
    (pair,) = [json.loads(line) for line in (tmp_path / "calibration" / "engine-starts.jsonl").read_text().splitlines()]
    assert pair["vllm_kv_tokens"] == 51904 and pair["planned_kv_tokens"] == planned
    assert record_engine_start(config, gpu_preset("h100-sxm"), None, folder=tmp_path) == ""


def test_another_vllm_version_is_said_plainly():
    assert version_note("0.25.1") == ""
    note = version_note("0.26.0")
    assert "0.25.1" in note and "0.26.0" in note and "calibrate" in note


def test_the_last_engine_starts_are_read_back_newest_last(tmp_path):
    from planner.calibrate import recent_engine_starts

    config = EngineConfig(model="llama-2-7b", dtype="float16", gpu_memory_utilization=0.5, max_model_len=2048)
    for tokens in (51000, 51904):
        record_engine_start(config, gpu_preset("h100-sxm"), tokens, folder=tmp_path)
    assert [p["vllm_kv_tokens"] for p in recent_engine_starts(folder=tmp_path)] == [51000, 51904]
    assert recent_engine_starts(folder=tmp_path / "none") == []


def test_a_remote_servers_vllm_version_is_read_from_its_version_endpoint():
    import asyncio

    import httpx

    from playground.engines.openai_engine import OpenAIEngine, RemoteEngineSpec

    def answer(request):
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.26.0"})
        return httpx.Response(404)

    async def ask(handler):
        engine = OpenAIEngine(RemoteEngineSpec.parse("FP8=http://server:8000/v1"))
        engine._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        try:
            return await engine.server_version()
        finally:
            await engine._client.aclose()

    assert asyncio.run(ask(answer)) == "0.26.0"
    assert asyncio.run(ask(lambda request: httpx.Response(404))) is None
    assert "0.26.0" in version_note(asyncio.run(ask(answer)))


def test_the_file_calibrate_wrote_on_the_lent_h200_changes_later_plans_there(tmp_path):
    # `bash benchmarks/gpu.sh calibrate` on one H200 (docs/results/calibration/): the file as written there
    recorded = ROOT / "docs/results/calibration/h200-2026-12-02-nvidia-h200--vllm-0-25-1.json"
    data = json.loads(recorded.read_text())
    target = tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json"
    target.parent.mkdir()
    target.write_text(recorded.read_text())
    speed, note = calibration_for(H200, tmp_path, vllm_version="0.25.1")
    assert "calibrated on this GPU with vLLM 0.25.1" in note
    shipped = predict_speed("llama-3.1-8b", H200, quantization="fp8")
    tuned = predict_speed("llama-3.1-8b", H200, quantization="fp8", calibration=speed)
    measured = next(p["measured_decode_tok_s"] for p in data["sweep"] if p["precision"] == "fp8" and p["concurrency"] == 1)
    first = lambda s: s.points[0].decode_tok_s  # noqa: E731  batch 1
    assert first(tuned) != first(shipped)
    assert abs(first(tuned) / measured - 1) < abs(first(shipped) / measured - 1)  # nearer what this GPU measured
    memory, memory_note = memory_calibration_for(H200, "fp8", tmp_path, vllm_version="0.25.1")
    engine = EngineConfig(model="llama-3.1-8b", quantization="fp8", dtype="bfloat16", max_model_len=2048)
    assert plan(engine, H200, advise=False, calibration=memory).kv_cache_bytes != plan(engine, H200, advise=False).kv_cache_bytes
    assert memory_note


def test_a_file_that_names_its_engines_is_read_against_this_planners_fit_not_the_one_that_wrote_it(tmp_path):
    """The factors a file was written with come from the shipped fit of its day; its measured speeds do not age.
    Where its sweep names each engine, the factors are taken afresh against today's prediction; a file that does
    not name them keeps the factors it was written with."""
    recorded = json.loads((ROOT / "docs/results/calibration/h200-2026-12-02-nvidia-h200--vllm-0-25-1.json").read_text())
    stale = dict(recorded, speed={"weight_factor_16bit": 9.0, "weight_factor_fp8": 9.0})
    target = tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json"
    target.parent.mkdir()
    target.write_text(json.dumps(stale))
    speed, _ = calibration_for(H200, tmp_path, vllm_version="0.25.1")
    assert speed.weight_factor_16bit < 2 and speed.weight_factor_fp8 < 2  # the written 9.0 is not what is used
    measured = {p["precision"]: p["measured_decode_tok_s"] for p in recorded["sweep"] if p["concurrency"] == 1}
    for precision, quantization in (("fp16", None), ("fp8", "fp8")):
        shipped = predict_speed("llama-3.1-8b", H200, quantization=quantization, max_model_len=2048).at(1).decode_tok_s
        tuned = predict_speed("llama-3.1-8b", H200, quantization=quantization, max_model_len=2048,
                              calibration=speed).at(1).decode_tok_s
        assert abs(tuned / measured[precision] - 1) <= abs(shipped / measured[precision] - 1) + 1e-9
    unnamed = dict(stale, sweep=[{k: p[k] for k in ("precision", "concurrency", "measured_decode_tok_s",
                                                    "predicted_decode_tok_s")} for p in recorded["sweep"]])
    target.write_text(json.dumps(unnamed))
    speed, _ = calibration_for(H200, tmp_path, vllm_version="0.25.1")
    assert speed.weight_factor_16bit == speed.weight_factor_fp8 == 9.0


# Qwen2.5-0.5B and -1.5B swept in one call on one H200 lease (docs/results/speed-rows/dense/): both too small for the
# GPU, so every step measured is vLLM's own work per step on that lease's host
SMALL_SWEEP = ROOT / "docs/results/speed-rows/dense" / "h200-2026-12-03-{}-five-repeats.json"


def small_points(model: str) -> list[dict]:
    bench = json.loads(Path(str(SMALL_SWEEP).format(model)).read_text())
    return sweep_points(bench, EngineConfig(model=model, dtype="bfloat16", max_model_len=1024))


def test_an_engine_too_small_for_its_gpu_calibrates_the_host_line_and_not_the_gpus_factors():
    """Its steps are the host's CPU work: a calibration from it refits that line (host_step_s + host_sequence_s x
    batch) and leaves the GEMM factors alone, so a large model's plan on that GPU does not take the host's slowness
    for the GPU's; and another small engine on the same host comes nearer what it measured."""
    result = calibrate_from_records(H200, "0.25.1", [], small_points("qwen2.5-0.5b"))
    assert set(result["speed"]) == {"host_step_s", "host_sequence_s", "host_models"}
    assert "qwen2.5-0.5b" in result["speed"]["host_models"]
    assert result["speed"]["host_step_s"] > SPEED_CALIBRATION.host_step_s  # that host was slower than the fitted one
    calibration = replace(SPEED_CALIBRATION, **result["speed"])
    assert (predict_speed("llama-3-8b", H200, calibration=calibration).at(1).decode_tok_s
            == predict_speed("llama-3-8b", H200).at(1).decode_tok_s)
    spec = model_spec("qwen2.5-1.5b")
    shipped_errors, tuned_errors, bars = [], [], []
    for point in small_points("qwen2.5-1.5b"):
        config = plan(point["config"], H200, advise=False).config
        context = point["input_len"] + point["output_len"] / 2
        shipped, _ = steady_step_s(spec, config, H200, batch=point["concurrency"], mean_context=context)
        tuned, bound = steady_step_s(spec, config, H200, batch=point["concurrency"], mean_context=context,
                                     calibration=calibration)
        assert bound == "host"
        shipped_errors.append(abs(point["step_s"] / shipped - 1))
        tuned_errors.append(abs(point["step_s"] / tuned - 1))
        bars.append(0.15 if point["concurrency"] == 1 else 0.20)  # the speed bar on decode tok/s
    assert statistics.median(tuned_errors) < statistics.median(shipped_errors)
    within = lambda errors: sum(e <= b for e, b in zip(errors, bars))  # noqa: E731
    assert within(tuned_errors) > within(shipped_errors)


def test_a_steady_step_is_a_batched_points_itl_and_a_single_requests_tpot():
    point = {"concurrency": 8, "tpot_p50_s": 0.004, "itl_p50_s": 0.003}
    assert steady_step(point) == 0.003
    assert steady_step({**point, "itl_p50_s": 0.3}) == 0.004  # several tokens a chunk: no decode step
    assert steady_step({**point, "concurrency": 1}) == 0.004


def test_calibrate_from_a_small_engines_recorded_sweep_says_it_refit_the_host_line(tmp_path, capsys):
    txt = Path(str(SMALL_SWEEP).format("qwen2.5-0.5b")).with_suffix(".txt")
    code = main(["--model", "qwen2.5-0.5b", "--gpu", "h200", "--max-model-len", "1024", "--from-log", str(txt),
                 "--from-bench", str(SMALL_SWEEP).format("qwen2.5-0.5b"), "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "host line: vLLM's own work per step 2.48 ms" in out and "shipped 1.80 ms" in out
    written = json.loads((tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json").read_text())
    assert "weight_factor_16bit" not in written["speed"] and written["speed"]["host_step_s"] > 0.002


def test_calibrating_a_large_and_then_a_small_model_keeps_both_the_gemm_factors_and_the_host_line(tmp_path):
    """The second run adds to the file of the first for the same GPU and vLLM, not over it: here the file calibrate
    wrote on the lent H200 from Llama-3.1-8B (GEMM-bound), then the small engine's recorded sweep."""
    path = tmp_path / "calibration" / "nvidia-h200--vllm-0-25-1.json"
    path.parent.mkdir()
    path.write_text((ROOT / "docs/results/calibration/h200-2026-12-02-nvidia-h200--vllm-0-25-1.json").read_text())
    first, _ = calibration_for(H200, tmp_path, vllm_version="0.25.1")
    earlier = json.loads(path.read_text())
    txt = Path(str(SMALL_SWEEP).format("qwen2.5-0.5b")).with_suffix(".txt")
    args = ["--model", "qwen2.5-0.5b", "--gpu", "h200", "--max-model-len", "1024", "--from-log", str(txt),
            "--from-bench", str(SMALL_SWEEP).format("qwen2.5-0.5b"), "--data-dir", str(tmp_path)]
    assert main(args) == 0
    both = json.loads(path.read_text())
    assert both["speed"]["weight_factor_16bit"] == first.weight_factor_16bit
    assert both["speed"]["weight_factor_fp8"] == first.weight_factor_fp8
    assert both["speed"]["host_step_s"] > 0.002
    assert {Path(p["model"]).name for p in both["sweep"]} == {"llama-3.1-8b", "qwen2.5-0.5b"}
    assert both["kv_memory_offset_bytes"] == earlier["kv_memory_offset_bytes"]  # the small run's log had no KV lines
    tuned, _ = calibration_for(H200, tmp_path, vllm_version="0.25.1")
    assert tuned.weight_factor_fp8 == first.weight_factor_fp8 and tuned.host_step_s == both["speed"]["host_step_s"]
    # the same small model again replaces its own points, it does not add them twice
    assert main(args) == 0
    assert len(json.loads(path.read_text())["sweep"]) == len(both["sweep"])


def test_calibrate_runs_its_sweep_with_the_repeats_asked_and_refuses_none(tmp_path, monkeypatch, capsys):
    """A small engine's waves differ (up to 1.3x on one host): --repeats reaches the bench it starts."""
    import subprocess

    import planner.calibrate as calibrate

    commands = []
    bench = json.loads(Path(str(SMALL_SWEEP).format("qwen2.5-0.5b")).read_text())
    log = Path(str(SMALL_SWEEP).format("qwen2.5-0.5b")).with_suffix(".txt").read_text()

    def fake_run(command, **kwargs):
        commands.append(command)
        out = json.dumps(bench) if "--export" in command else log
        return subprocess.CompletedProcess(command, 0, stdout=out, stderr="")

    monkeypatch.setattr(calibrate.subprocess, "run", fake_run)
    monkeypatch.setattr(calibrate, "installed_vllm_version", lambda: "0.25.1")
    args = ["--model", "qwen2.5-0.5b", "--gpu", "h200", "--max-model-len", "1024", "--data-dir", str(tmp_path)]
    assert main(args + ["--repeats", "3"]) == 0
    sweep = commands[0]
    assert sweep[sweep.index("--repeats") + 1] == "3"
    assert "host line:" in capsys.readouterr().out
    assert main(args + ["--repeats", "0"]) == 2
    assert "--repeats must be 1 or more, got 0" in capsys.readouterr().err
