"""A whole benchmark run: engines per precision, roofline and NVML beside each point, saved history.

Engines come from an ``EngineSource``: the CLI starts one engine per precision at a time (the whole
GPU for each), the app lends its resident engines. Only one sweep runs per process at a time.
"""

from __future__ import annotations

import asyncio
import os
import platform
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace

from planner.engine_config import EngineConfig
from pathlib import Path

from playground.bench import store
from playground.bench.sweep import PRECISIONS, PointResult, SweepCancelled, SweepSpec, python_loop_ms, run_precision
from playground.engines.base import Engine, RequestError
from playground.metrics import RunMetrics

EngineSource = Callable[[str], "AsyncIterator[Engine]"]  # an async context manager factory


@dataclass(frozen=True)
class BenchConfig:
    """What a sweep runs on: the backend, and for vLLM the engine (one EngineConfig; each precision
    replaces its quantization and kv_cache_dtype). One dtype for every precision, so FP8 KV
    (bfloat16-only on Hopper) is comparable."""

    backend: str = "cpu"  # "cpu", "vllm" or "openai"
    engine: EngineConfig | None = None
    data_dir: str = "data"
    # the app's --engine columns, (label, EngineConfig) each: a sweep names them instead of precisions
    columns: tuple[tuple[str, EngineConfig], ...] = ()

    def for_precision(self, precision: str, max_num_seqs: int | None = None) -> EngineConfig:
        config = dict(self.columns).get(precision) or replace(self.engine, **PRECISIONS[precision])
        return replace(config, max_num_seqs=max_num_seqs) if max_num_seqs else config


def cpu_source() -> EngineSource:
    @asynccontextmanager
    async def source(precision: str):
        from playground.engines.cpu_engine import CpuEngine

        if precision == "fp8-kv8":
            raise RequestError("precisions", "the CPU backend has no FP8 KV cache; choose fp16 and fp8")
        engine = CpuEngine(precision, fp8=precision == "fp8")
        await engine.start()
        try:
            yield engine
        finally:
            await engine.stop()

    return source


def vllm_source(config: BenchConfig, max_concurrency: int) -> EngineSource:
    @asynccontextmanager
    async def source(precision: str):
        from planner.memory import default_batch_limits
        from planner.nvml import read_gpus, visible_gpu_index
        from playground.engines.vllm_engine import VllmEngine

        # The LLM class's defaults for this GPU, so each point matches `vllm bench throughput`
        # and the planner's prediction for the same engine.
        gpu = read_gpus((config.engine.gpu_ids or (visible_gpu_index(),))[0])[0].to_spec()
        max_num_seqs, max_tokens = default_batch_limits(gpu)
        engine_config = config.for_precision(precision, max(max_num_seqs, max_concurrency))
        if engine_config.max_num_batched_tokens is None:
            # AsyncLLM would take SchedulerConfig's 2048 (vLLM's ENGINE_CONTEXT), not the LLM class's
            # limit that `vllm bench throughput` and the planner use: say it explicitly
            engine_config = replace(engine_config, max_num_batched_tokens=max_tokens)
        engine = VllmEngine(engine_config, label=precision)
        await engine.start()
        try:
            yield engine
        finally:
            await engine.stop()
            await asyncio.sleep(2)  # let the engine-core process release the GPU before the next starts

    return source


def remote_source(specs, api_key: str | None = None) -> EngineSource:
    """Servers that are already running (`--backend openai`): the precision is read from each label."""

    @asynccontextmanager
    async def source(precision: str):
        from playground.engines.openai_engine import OpenAIEngine

        for spec in specs:
            engine = OpenAIEngine(spec, api_key)
            if engine.precision == precision:
                await engine.start()
                try:
                    yield engine
                finally:
                    await engine.stop()
                return
        labels = ", ".join(f"{s.label} ({OpenAIEngine(s).precision})" for s in specs)
        raise RequestError("precisions", f"{precision!r} is not among the servers: {labels}")

    return source


def resident_source(engines: Mapping[str, Engine]) -> EngineSource:
    """Lend engines that stay running (the app's): precisions are the keys."""

    @asynccontextmanager
    async def source(precision: str):
        if precision not in engines:
            raise RequestError("precisions", f"{precision!r} is not running here; available: {', '.join(engines)}")
        yield engines[precision]

    return source


def vllm_bench_command(config: BenchConfig, precision: str, spec: SweepSpec, concurrency: int) -> str:
    """The `vllm bench throughput` line that measures the same point, for cross-checking."""
    if config.engine is None:
        return ""
    engine = config.for_precision(precision, concurrency)
    return engine.command("bench-throughput", extra=[
        "--dataset-name", "random", "--random-input-len", str(spec.input_len), "--random-output-len",
        str(spec.output_len), "--num-prompts", str(spec.prompts_for(concurrency))])


def host_facts() -> dict:
    """The host's CPU as the sweep starts: an engine too small for its GPU runs at the speed of vLLM's own work per
    step, which is this CPU's (the same engine ran up to 1.5x slower on one H200 lease's host than on another's,
    docs/speed.md), so each run says which CPU and how busy it was."""
    facts: dict = {"cpus": os.cpu_count()}
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        facts["cpu_model"] = names[0] if names else platform.processor() or None
    except OSError:
        facts["cpu_model"] = platform.processor() or None
    try:
        facts["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    facts["python_loop_ms"] = python_loop_ms()
    return facts


def environment(config: BenchConfig) -> dict:
    env = {"backend": config.backend, "engine_args": asdict(config.engine) if config.engine else None, "python": platform.python_version(),
           "machine": platform.machine(), "host": host_facts(), "quantization_scheme": {
               "fp8": "vLLM online dynamic FP8 W8A8: float8_e4m3fn weights, per-tensor scale amax/448",
               "fp8-kv8": "as fp8, plus kv_cache_dtype='fp8' (E4M3 KV cache)"}}
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        pass
    if config.backend == "vllm":
        from planner.nvml import read_gpus, visible_gpu_index
        from playground.engines.vllm_engine import vllm_version

        reading = read_gpus((config.engine.gpu_ids or (visible_gpu_index(),))[0])[0]
        env.update(vllm=vllm_version(), gpu=reading.name, driver=reading.driver_version,
                   gpu_total_bytes=reading.total_bytes, bandwidth_gb_s=reading.bandwidth_gb_s)
        # vLLM's MoE routing simulator replaces the model's router (benchmarks/gpu.sh sweep sets it for dummy weights)
        if os.environ.get("VLLM_MOE_ROUTING_SIMULATION_STRATEGY"):
            env["moe_routing"] = os.environ["VLLM_MOE_ROUTING_SIMULATION_STRATEGY"]
    else:
        env["gpu"] = None
        env["cpu"] = platform.processor() or platform.machine()
    return env


def _describer(config: BenchConfig, spec: SweepSpec) -> Callable[[str, int, RunMetrics, int | None], dict]:
    gpu = None
    if config.backend == "vllm":
        from planner import read_gpus
        from planner.nvml import visible_gpu_index

        gpu = replace(read_gpus((config.engine.gpu_ids or (visible_gpu_index(),))[0])[0].to_spec(), free_bytes=None)

    def describe(precision: str, concurrency: int, metrics: RunMetrics, kv_tokens: int | None = None) -> dict:
        """The command line and the roofline; ``kv_tokens`` is what the engine reported (else the plan's)."""
        extra = {"vllm_bench_command": vllm_bench_command(config, precision, spec, concurrency)}
        if gpu is not None and gpu.fp16_tflops:
            from planner.memory import plan
            from planner.roofline import roofline

            engine = config.for_precision(precision)
            if not kv_tokens:
                kv_tokens = plan(engine, gpu, advise=False).kv_tokens
            limit = roofline(engine, gpu, concurrency=concurrency, input_len=spec.input_len,
                             output_len=spec.output_len, kv_tokens=kv_tokens)
            extra.update(roofline_output_tok_s=limit.output_tok_s, roofline_bound=limit.bound)
            extra["predicted_decode_tok_s"] = predicted_decode(engine, gpu, concurrency, spec, kv_tokens)
        return extra

    return describe


def predicted_decode(engine, gpu, concurrency: int, spec, kv_tokens: int | None) -> float | None:
    """planner/speed.py's decode tok/s per request for this point (every repeat prefills prompts of its own);
    None where the planner cannot size the model."""
    from planner.errors import PlannerError
    from planner.memory import engine_config
    from planner.speed import wave

    try:
        model, config = engine_config(engine)
        return wave(model, config, gpu, concurrency=concurrency, input_len=spec.input_len, output_len=spec.output_len,
                    kv_tokens=kv_tokens).decode_tok_s
    except PlannerError:
        return None


class BenchmarkService:
    """Runs sweeps one at a time (a second request while one runs is refused with a message)."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self._busy = threading.Lock()
        self.cancel_event = threading.Event()

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    async def run(self, config: BenchConfig, spec: SweepSpec, source: EngineSource, vocab_size: int,
                  max_model_len: int, progress: Callable[[int, int, str], None],
                  names: Sequence[str] | None = None) -> tuple[int, list[PointResult]]:
        """Run the sweep and save it. ``progress(done, total, message)`` hears every timed repeat
        (done counts them, out of total) and every engine start, cancellation or failure."""
        spec.validate(max_model_len, names)
        if not self._busy.acquire(blocking=False):
            raise RequestError("benchmark", "a sweep is already running on these engines; wait for it or cancel it")
        self.cancel_event.clear()
        points: list[PointResult] = []
        status = "complete"
        total, done = len(spec.precisions) * len(spec.concurrency) * spec.repeats, 0

        def repeat_done(message: str) -> None:
            nonlocal done
            done += 1
            progress(done, total, message)

        model = config.engine.model if config.engine else "cpu"
        conn = store.connect(self.data_dir)
        try:
            run_id = store.start_run(conn, backend=config.backend, model=model, environment=environment(config),
                                     spec=asdict(spec))
        except BaseException:
            conn.close()
            self._busy.release()
            raise

        def point_done(point: PointResult) -> None:
            store.add_point(conn, run_id, point)

        try:
            describe = _describer(config, spec)
            sampler = None
            if config.backend == "vllm":
                from planner.nvml import Sampler, visible_gpu_index

                gpu_index = (config.engine.gpu_ids or (visible_gpu_index(),))[0]
                sampler = lambda: Sampler(gpu_index)  # noqa: E731
            for precision in spec.precisions:
                progress(done, total, f"{precision}: readying its engine")  # at once when it is already loaded
                async with source(precision) as engine:
                    measured_kv = engine.info.kv_tokens  # resident engines may hold less than a fresh one
                    points += await run_precision(engine, precision, spec, vocab_size,
                                                  lambda p, c, m, kv=measured_kv: describe(p, c, m, kv), repeat_done,
                                                  self.cancel_event, sampler, point_done,
                                                  starting=lambda message: progress(done, total, message))
        except SweepCancelled as e:
            status = "cancelled"
            progress(done, total, str(e))
        except Exception as e:  # an engine that fails mid-sweep: keep the finished points, say so
            status = f"failed: {type(e).__name__}: {e}"
            progress(done, total, status)
            if not points:
                store.finish_run(conn, run_id, status)
                conn.close()
                raise
        finally:
            self._busy.release()
        try:
            store.finish_run(conn, run_id, status)
        finally:
            conn.close()
        return run_id, points, status
