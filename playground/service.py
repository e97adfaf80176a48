"""The playground as a library: the loaded engines, fair comparisons, the benchmark and the history.

app.py builds one Playground and hands it to the UI tabs and the public API; nothing here knows
Gradio, so every number on the page can be had from Python too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from playground.bench import store
from playground.bench.runner import BenchConfig, BenchmarkService, resident_source
from playground.bench.sweep import SweepSpec
from playground.compare import ColumnSnapshot, EnginePhases, check_request, compare, parse_prompts, score_quality
from playground.engines.base import GenerationRequest, RequestError, SamplingSettings, StreamChunk
from playground.quality import QualityDiff
from playground.runtime import EngineRuntime, SupervisedEngine

READY_WAIT_S = 5.0  # a request that arrives while the engines start waits this long, then is told
MAX_IN_FLIGHT = 512  # comparisons and generations admitted at once; more are told the server is busy


def check_room(in_flight: int, limit: int) -> None:
    """Back-pressure: refuse now instead of queueing without end (on the OpenAI endpoints, a 429)."""
    if in_flight >= limit:
        raise RequestError("server", f"busy: {in_flight} requests are being served (the limit is {limit}); "
                                     "try again in a moment")


@dataclass(frozen=True)
class ComparisonResult:
    snapshots: tuple[ColumnSnapshot, ...]
    # per column after the first (the reference), per prompt: that column's diff against the first
    quality_by_column: tuple[tuple[QualityDiff | None, ...], ...]
    mode: str

    @property
    def quality(self) -> tuple[QualityDiff | None, ...]:
        """The second column against the first, per prompt (the two-column page's diff)."""
        return self.quality_by_column[0] if self.quality_by_column else ()


class Playground:
    def __init__(self, engines: list[SupervisedEngine], runtime: EngineRuntime, data_dir: str | Path,
                 backend: str, bench_engine=None, vocab_size: int = 32000, *, columns: bool = False):
        self.engines, self.runtime, self.backend = engines, runtime, backend
        # --engine columns: the benchmark names each engine by its column label (two columns may share a
        # precision: online FP8 and an FP8 checkpoint); the default pair keeps the precision names
        self.columns = columns
        self.bench = BenchmarkService(data_dir)
        self.bench_engine = bench_engine  # the EngineConfig the vLLM engines share (None on the CPU)
        self.vocab_size = vocab_size
        self._phases: EnginePhases | None = None
        self.max_in_flight = MAX_IN_FLIGHT
        self.in_flight = 0
        self.on_request_done: list = []  # callables (column label, RequestTiming) for every comparison request
        # One thread tokenizes the web requests' prompts, one call at a time. A burst of requests each
        # tokenizing in its own worker thread gains nothing (the tokenizer holds the GIL), and vLLM's
        # thread-safe tokenizer deep-copies the whole tokenizer for every caller beyond its two copies
        # (vllm/tokenizers/hf.py maybe_make_thread_pool): 16 /v1 requests at once on the H200 waited ~1 s for that.
        self._tokenizing = ThreadPoolExecutor(1, thread_name_prefix="tokenize")

    # ---- engines
    def start_in_background(self) -> threading.Thread:
        """Start the engines one after the other (each profiles memory without the other's load in
        flight) while the web server already answers."""
        times = self._start_times()
        for engine in self.engines:
            engine.expected_start_s = times.get(self._start_key(engine))

        def run():
            for engine in self.engines:
                try:
                    self.runtime.call(engine.start())
                except Exception as e:  # noqa: BLE001 - the stage line carries the message to the page
                    print(f"error: {engine.info.label} engine failed to start: {e}", flush=True)
                    continue
                self._save_start_time(engine)
        thread = threading.Thread(target=run, name="engine-start", daemon=True)
        thread.start()
        return thread

    # ---- start-up times, kept in the data folder so that the next start can say how long is left
    def _start_key(self, engine: SupervisedEngine) -> str:
        return f"{self.backend}:{engine.info.label}:{engine.info.model}"

    def _start_times(self) -> dict:
        try:
            return json.loads((self.bench.data_dir / "start_times.json").read_text())
        except (OSError, ValueError):
            return {}

    def _save_start_time(self, engine: SupervisedEngine) -> None:
        times = self._start_times() | {self._start_key(engine): round(engine.ready_after_s or 0.0, 1)}
        try:
            self.bench.data_dir.mkdir(parents=True, exist_ok=True)
            # written whole and then renamed: a reader (the next start, the other engine) never sees it half-written
            path = self.bench.data_dir / "start_times.json"
            partial = path.with_suffix(".json.partial")
            partial.write_text(json.dumps(times, indent=1))
            os.replace(partial, path)
        except OSError:  # a read-only data folder: no estimate next time, nothing worse
            pass

    def status_lines(self) -> list[str]:
        return [e.status_line() for e in self.engines]

    def engine_facts(self) -> list[dict]:
        return [asdict(e.info) | {"restarts": e.restarts, "stage": e.stage, "ready": e.ready,
                                  "ready_after_s": e.ready_after_s,
                                  "num_running": getattr(e.engine, "num_running", None) if e.ready else None}
                for e in self.engines]

    async def _ready_engines(self, wanted: list[SupervisedEngine], *, partial: bool = False) -> list:
        """The engines to run on. With ``partial`` (a comparison), an engine that cannot be had
        becomes a column that shows why, and the others go on; without, any failure is the error."""
        live = []
        for e in wanted:
            try:
                if e.failed and e.retry_failed_start:
                    try:
                        await self.runtime.acall(e.retry_start())
                    except Exception:  # noqa: BLE001 - the stage now says why; wait_ready raises it
                        pass
                await e.wait_ready(READY_WAIT_S)
                await self.runtime.acall(e.ensure_running())
                live.append(e.engine)
            except RequestError as err:
                if not partial:
                    raise
                live.append(UnavailableEngine(e.info, str(err)))
        if all(isinstance(x, UnavailableEngine) for x in live):
            raise RequestError("engine", "; ".join(x.reason for x in live))
        return live

    def find(self, label: str) -> SupervisedEngine:
        chosen = next((e for e in self.engines if e.info.label.lower() == str(label).lower()), None)
        if chosen is None:
            raise RequestError("engine", f"{label!r} is not running; choose one of {[e.info.label for e in self.engines]}")
        return chosen

    # ---- comparisons
    async def compare(self, prompts_text: str, sampling: SamplingSettings, *, mode: str = "fair", chat: bool = True,
                      quality: bool = True, engines: list[SupervisedEngine] | None = None
                      ) -> AsyncIterator[ColumnSnapshot | ComparisonResult]:
        """Yield column snapshots while the engines answer, then one ComparisonResult (at temperature 0
        with every column's quality diff against the first)."""
        wanted = engines or self.engines
        prompts = parse_prompts(prompts_text)
        check_room(self.in_flight, self.max_in_flight)
        self.in_flight += 1
        released = False
        try:
            async for item in self._compare(wanted, prompts, sampling, mode, chat, quality):
                if isinstance(item, ComparisonResult):  # the last item: callers may stop iterating here
                    self.in_flight, released = self.in_flight - 1, True
                yield item
        finally:
            if not released:
                self.in_flight -= 1

    async def _compare(self, wanted, prompts, sampling, mode, chat, quality):
        live = await self._ready_engines(wanted, partial=len(wanted) > 1)
        chat = chat and all(e.info.chat_template for e in live if not isinstance(e, UnavailableEngine))
        check_request(live, prompts, sampling, chat)
        phases = self.phases if len(live) == len(self.engines) else None
        final = None
        async for final in self.runtime.stream(lambda: compare(live, prompts, sampling, mode=mode if phases else "race",
                                                               phases=phases, chat=chat)):
            yield final
        diffs: tuple = ()
        if quality and len(live) >= 2 and sampling.temperature == 0 and final is not None:
            diffs = tuple(tuple(d) for d in await self.runtime.acall(score_quality(live, prompts, final, chat)))
        for column in final or ():  # each request of the comparison, to the metrics (playground/prom.py)
            for timing in column.timings:
                for observe in self.on_request_done:
                    observe(column.label, timing)
        yield ComparisonResult(final, diffs, mode)

    # ---- one request on one engine (the OpenAI-compatible endpoints)
    def admit(self) -> None:
        """Back-pressure shared with comparisons: refuse now instead of queueing without end."""
        check_room(self.in_flight, self.max_in_flight)

    async def tokenize(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` (an engine's count_prompt_tokens, a tokenizer's apply_chat_template) off the
        caller's loop, on the one tokenizing thread."""
        return await asyncio.get_running_loop().run_in_executor(self._tokenizing, functools.partial(fn, *args, **kwargs))

    @property
    def phases(self) -> EnginePhases:
        if self._phases is None:
            self._phases = EnginePhases(len(self.engines) + 1)  # each engine's turn, then the race's
        return self._phases

    async def ready_engine(self, engine: SupervisedEngine):
        """The engine object to run on (started, or restarted when it died); RequestError when it cannot be had."""
        return (await self._ready_engines([engine]))[0]

    async def generate(self, engine: SupervisedEngine, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Stream one request on one engine. It takes that engine's turn in the fair queue, as a
        comparison's column does, so that fair comparisons stay alone on the GPU; requests for the same
        engine share a turn (the engine batches them). Closing the generator aborts the request."""
        self.admit()
        self.in_flight += 1
        try:
            live = await self.ready_engine(engine)
            phases, index = self.phases, self.engines.index(engine)

            async def on_engine_loop():  # the turn and the engine both live on the engines' loop
                async with phases.turn(index):
                    async for chunk in live.stream(request):
                        yield chunk

            async for chunk in self.runtime.stream(on_engine_loop):
                yield chunk
        finally:
            self.in_flight -= 1

    # ---- benchmark and history
    async def benchmark(self, spec: SweepSpec, progress) -> tuple[int, list, str]:
        # only the engines the sweep names: a column that failed to start does not stop the others' sweep
        named = [e for e in self.engines if self._bench_name(e.info) in spec.precisions]
        live = await self._ready_engines(named or self.engines)
        resident = {self._bench_name(e.info): e for e in live}
        max_len = min(e.info.max_model_len for e in live)
        # the vLLM app resolves these after start-up (sizing the model takes seconds): callables then
        engine = self.bench_engine() if callable(self.bench_engine) else self.bench_engine
        vocab = self.vocab_size() if callable(self.vocab_size) else self.vocab_size
        columns = tuple((e.info.label, e.config) for e in live if self.columns and hasattr(e, "config"))
        config = BenchConfig(backend=self.backend, engine=engine, data_dir=str(self.bench.data_dir), columns=columns)
        return await self.runtime.acall(self.bench.run(config, spec, resident_source(resident), vocab, max_len,
                                                       progress=progress, names=list(resident) if self.columns else None))

    def _bench_name(self, info) -> str:
        return info.label if self.columns else _precision_of(info)

    def available_precisions(self) -> list[str]:
        return [self._bench_name(e.info) for e in self.engines]

    def runs(self) -> list[dict]:
        conn = store.connect(self.bench.data_dir)
        try:
            return store.list_runs(conn)
        finally:
            conn.close()

    def run_rows(self, run_id: int, other_id: int | None = None) -> tuple[dict, list[dict]]:
        conn = store.connect(self.bench.data_dir)
        try:
            meta, rows = store.load_run(conn, run_id)
            if other_id is not None:
                _, other_rows = store.load_run(conn, other_id)
                rows = rows + [dict(r, precision=f"{r['precision']} (#{other_id})") for r in other_rows]
        finally:
            conn.close()
        return meta, rows


class UnavailableEngine:
    """Stands in for an engine that could not be started or reached: its column shows the reason."""

    def __init__(self, info, reason: str):
        self.info, self.reason = info, reason

    def count_prompt_tokens(self, prompt: str, chat: bool = False) -> None:
        return None

    async def stream(self, request):
        raise RequestError("engine", self.reason)
        yield  # an async generator, like every engine's stream

    async def score(self, *args, **kwargs):
        raise RequestError("engine", self.reason)


def _precision_of(info) -> str:
    if not info.quantization:
        return "fp16"
    return "fp8-kv8" if str(info.kv_cache_dtype).startswith("fp8") else "fp8"


