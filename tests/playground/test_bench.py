import asyncio
import json
import sqlite3

import pytest

from planner import gpu_preset, model_spec
from planner.roofline import roofline
from playground.bench import store
from playground.bench.runner import BenchConfig, BenchmarkService, cpu_source, vllm_bench_command
from playground.bench.sweep import SweepSpec, random_prompts
from playground.engines.base import RequestError

SMALL = SweepSpec(concurrency=(1, 2), input_len=16, output_len=6, num_prompts=2, repeats=2, precisions=("fp16", "fp8"))


def run_sweep(tmp_path, spec=SMALL):
    service = BenchmarkService(tmp_path)
    return asyncio.run(service.run(BenchConfig(backend="cpu", data_dir=str(tmp_path)), spec, cpu_source(), 32000, 2048,
                                   progress=lambda done, total, m: None))


def test_cpu_sweep_measures_real_timings_and_saves_them(tmp_path):
    run_id, points, _ = run_sweep(tmp_path)
    assert [(p.precision, p.concurrency) for p in points] == [("fp16", 1), ("fp16", 2), ("fp8", 1), ("fp8", 2)]
    for p in points:
        m = p.metrics
        assert m.output_tokens == 2 * 6 and m.prompt_tokens == 2 * 16  # ignore_eos: exactly output_len each
        assert m.duration_s > 0 and m.output_tok_s == pytest.approx(m.output_tokens / m.duration_s)
        assert m.ttft_p50_s > 0 and m.tpot_p50_s > 0 and len(p.repeat_output_tok_s) == 2
        assert p.vllm_bench_command == ""  # a CPU point has no vLLM engine to reproduce it on
    conn = store.connect(tmp_path)
    meta, rows = store.load_run(conn, run_id)
    assert meta["status"] == "complete" and len(rows) == 4
    assert rows[0]["output_tok_s"] == points[0].metrics.output_tok_s
    assert store.to_csv(rows).splitlines()[0].startswith("precision,concurrency")
    assert json.loads(store.to_json(meta, rows))["run"]["id"] == run_id
    # the host's CPU is in every run: a small engine's speed is that CPU's (docs/speed.md)
    host = json.loads(store.to_json(meta, rows))["run"]["environment"]["host"]
    assert host["cpus"] >= 1 and host["cpu_model"] and host["load_average_1m"] >= 0 and host["python_loop_ms"] > 0
    # and its one-core pace before each repeat's wave, one reading a repeat
    assert all(len(r["repeat_python_loop_ms"]) == len(r["repeat_tpot_p50_s"]) and min(r["repeat_python_loop_ms"]) > 0
               for r in json.loads(store.to_json(meta, rows))["points"])


def test_history_lists_runs_and_unknown_runs_are_named(tmp_path):
    run_sweep(tmp_path, SweepSpec(concurrency=(1,), input_len=8, output_len=3, repeats=1, precisions=("fp8",)))
    conn = store.connect(tmp_path)
    assert [r["points"] for r in store.list_runs(conn)] == [1]
    with pytest.raises(KeyError, match="run_id 99"):
        store.load_run(conn, 99)


@pytest.mark.parametrize("spec, argument", [
    (SweepSpec(num_prompts=0), "num_prompts"),
    (SweepSpec(num_prompts=1_000_000), "num_prompts"),
    (SweepSpec(concurrency=(0,)), "concurrency"),
    (SweepSpec(concurrency=()), "concurrency"),
    (SweepSpec(input_len=2000, output_len=100), "input_len"),
    (SweepSpec(precisions=("int4",)), "precisions"),
])
def test_absurd_sweeps_are_refused_before_anything_runs(tmp_path, spec, argument):
    with pytest.raises(RequestError) as e:
        run_sweep(tmp_path, spec)
    assert e.value.argument == argument
    assert not (tmp_path / "bench.sqlite").exists() or store.list_runs(store.connect(tmp_path)) == []


def test_a_second_sweep_while_one_runs_is_refused(tmp_path):
    service = BenchmarkService(tmp_path)
    service._busy.acquire()
    with pytest.raises(RequestError, match="already running"):
        asyncio.run(service.run(BenchConfig(), SMALL, cpu_source(), 32000, 2048, progress=lambda done, total, m: None))


def test_cancel_keeps_the_database_whole(tmp_path):
    service = BenchmarkService(tmp_path)
    messages = []

    def progress(done, total, message):
        messages.append(message)
        if "repeat 1/" in message:
            service.cancel_event.set()

    spec = SweepSpec(concurrency=(1, 2), input_len=8, output_len=3, num_prompts=2, repeats=2, precisions=("fp16", "fp8"))
    run_id, points, _ = asyncio.run(service.run(BenchConfig(data_dir=str(tmp_path)), spec, cpu_source(), 32000, 2048, progress))
    meta, rows = store.load_run(store.connect(tmp_path), run_id)
    assert meta["status"] == "cancelled" and rows == [] and points == []
    assert sqlite3.connect(tmp_path / "bench.sqlite").execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_random_prompts_have_exact_lengths_and_are_reproducible():
    a, b = random_prompts(3, 17, 32000, seed=5), random_prompts(3, 17, 32000, seed=5)
    assert a == b and all(len(p) == 17 and min(p) >= 100 for p in a)


def test_roofline_is_memory_bound_at_batch_1_and_fp8_halves_the_weight_bytes():
    spec, h100 = model_spec("llama-2-7b"), gpu_preset("h100-sxm")
    fp16 = roofline(spec, h100, concurrency=1, input_len=512, output_len=256, dtype="bfloat16")
    fp8 = roofline(spec, h100, concurrency=1, input_len=512, output_len=256, dtype="bfloat16", quantization="fp8")
    assert fp16.bound == "memory"
    # one step reads ~13 GB of weights at 3.35 TB/s: ~250 steps/s at most
    assert 200 < fp16.output_tok_s < 260
    assert 1.7 < fp8.output_tok_s / fp16.output_tok_s < 2.0


def test_roofline_caps_concurrency_at_what_the_kv_cache_holds():
    spec, h100 = model_spec("llama-2-7b"), gpu_preset("h100-sxm")
    full = roofline(spec, h100, concurrency=256, input_len=512, output_len=256)
    capped = roofline(spec, h100, concurrency=256, input_len=512, output_len=256, kv_tokens=116_768)
    assert capped.output_tok_s < full.output_tok_s
    assert capped.output_tok_s == roofline(spec, h100, concurrency=116_768 // 768, input_len=512, output_len=256).output_tok_s


def test_vllm_bench_command_reproduces_the_point():
    from planner import EngineConfig

    engine = EngineConfig(model="/m", load_format="dummy", dtype="bfloat16", gpu_memory_utilization=0.45,
                          tensor_parallel_size=2)
    command = vllm_bench_command(BenchConfig(backend="vllm", engine=engine), "fp8-kv8", SweepSpec(), 64)
    assert command.startswith("vllm bench throughput --model /m --quantization fp8 --kv-cache-dtype fp8")
    for flag in ("--max-num-seqs 64", "--gpu-memory-utilization 0.45", "--tensor-parallel-size 2", "--load-format dummy"):
        assert flag in command  # the memory share and TP travel with the command (they used to be missing)
    assert EngineConfig.parse_command(command).precision_label == "fp8-kv8"


def test_an_engine_failing_mid_sweep_keeps_the_finished_points_marked_failed(tmp_path):
    from contextlib import asynccontextmanager

    from playground.engines.cpu_engine import CpuEngine

    class Broken(CpuEngine):
        async def stream(self, request):
            raise RuntimeError("CUDA error: an illegal memory access")
            yield  # pragma: no cover

    @asynccontextmanager
    async def source(precision):
        engine = CpuEngine(precision, fp8=False) if precision == "fp16" else Broken(precision, fp8=True)
        await engine.start()
        yield engine

    service = BenchmarkService(tmp_path)
    spec = SweepSpec(concurrency=(1,), input_len=8, output_len=3, num_prompts=2, repeats=1, precisions=("fp16", "fp8"))
    run_id, points, _ = asyncio.run(service.run(BenchConfig(data_dir=str(tmp_path)), spec, source, 32000, 2048, lambda done, total, m: None))
    meta, rows = store.load_run(store.connect(tmp_path), run_id)
    assert meta["status"].startswith("failed: RuntimeError: CUDA error")
    assert [r["precision"] for r in rows] == ["fp16"] and len(points) == 1
    assert not service.busy


def test_cli_sweep_prints_progress_and_the_table(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "playground.bench", "--backend", "cpu", "--concurrency", "1",
                          "--input-len", "8", "--output-len", "3", "--repeats", "1", "--precisions", "fp8",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "[####################] 1/1" in out.stderr
    assert out.stdout.splitlines()[0].startswith("precision") and "saved as run #1" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "playground.bench", "--concurrency", "0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: concurrency")


def test_a_sweep_killed_mid_way_keeps_its_finished_points_marked_interrupted(tmp_path):
    """kill -9 after the first point is saved: the point stays, and the run reads 'interrupted'."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "playground.bench", "--backend", "cpu", "--concurrency", "1,2,4",
                             "--input-len", "8", "--output-len", "4", "--repeats", "1", "--data-dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, saved = time.time() + 240, 0
    try:
        while time.time() < deadline and not saved and proc.poll() is None:
            time.sleep(0.1)
            if (tmp_path / "bench.sqlite").exists():
                conn = sqlite3.connect(tmp_path / "bench.sqlite")
                try:
                    saved = conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
                except sqlite3.OperationalError:  # tables not created yet
                    pass
                conn.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert saved, "the sweep saved no point before the deadline"
    conn = store.connect(tmp_path)
    runs = store.list_runs(conn)
    assert len(runs) == 1 and runs[0]["status"] == "interrupted" and runs[0]["points"] >= 1
    _, points = store.load_run(conn, runs[0]["id"])
    assert points[0]["precision"] == "fp16" and points[0]["output_tok_s"] > 0


def test_each_step_of_a_sweep_is_announced_before_it_runs():
    """The progress says what is running now (the warm-up, then each timed repeat), not what finished:
    every concurrency level of every precision is shown while it runs."""
    import time

    from playground.bench.sweep import run_precision
    from playground.engines.base import StreamChunk

    log: list[str] = []

    class Engine:
        async def stream(self, request):
            log.append(f"ran {request.request_id.rsplit('-', 1)[0] if 'warmup' not in request.request_id else request.request_id}")
            for n in (1, 2):
                yield StreamChunk("x", n, (1,), time.perf_counter(), 4, n == 2)

    spec = SweepSpec(concurrency=(1, 4), input_len=4, output_len=2, num_prompts=1, repeats=1, precisions=("fp8",))
    asyncio.run(run_precision(Engine(), "fp8", spec, 1000, lambda *a: {}, lambda m: log.append(f"done {m}"),
                              starting=lambda m: log.append(f"now {m}")))
    announced = [line for line in log if line.startswith("now ")]
    assert announced == ["now fp8 at concurrency 1: untimed warm-up (1 request)",
                         "now fp8 at concurrency 1: timed repeat 1 of 1 (1 request of 4 prompt + 2 output tokens, 1 at a time)",
                         "now fp8 at concurrency 4: untimed warm-up (4 requests)",
                         "now fp8 at concurrency 4: timed repeat 1 of 1 (1 request of 4 prompt + 2 output tokens, 4 at a time)"]
    # each announcement comes before the requests it names, the first right away
    assert log[0].startswith("now ") and log.index(announced[1]) < log.index("ran fp8-c1-r0")


def test_each_repeat_prefills_prompts_of_its_own_and_keeps_its_step_times():
    """A repeat of the same prompts would find them in vLLM's prefix cache and skip their prefill, so the median
    of repeats would not be the point a one-repeat sweep measures; every repeat's TPOT and ITL are kept."""
    import time

    from playground.bench.sweep import run_precision
    from playground.engines.base import StreamChunk

    sent: dict[str, list[tuple[int, ...]]] = {}

    class Engine:
        async def stream(self, request):
            sent.setdefault(request.request_id.rsplit("-", 1)[0], []).append(request.prompt_token_ids)
            for n in (1, 2, 3):
                yield StreamChunk("x", n, (1,), time.perf_counter(), 4, n == 3)

    spec = SweepSpec(concurrency=(2,), input_len=8, output_len=3, repeats=3, precisions=("fp8",))
    (point,) = asyncio.run(run_precision(Engine(), "fp8", spec, 1000, lambda *a: {}, lambda m: None))
    waves = [tuple(sent[f"fp8-c2-r{r}"]) for r in range(3)]
    assert len(set(waves)) == 3 and len(set(waves[0]) & set(waves[1])) == 0
    assert list(waves[0]) == random_prompts(4, 8, 1000, spec.seed + 2)  # what a one-repeat sweep sends
    assert len(point.repeat_tpot_p50_s) == len(point.repeat_itl_p50_s) == len(point.repeat_tpot_mean_s) == 3
    assert point.metrics.tpot_p50_s in point.repeat_tpot_p50_s
    assert point.as_row()["repeat_tpot_p50_s"] == list(point.repeat_tpot_p50_s)
