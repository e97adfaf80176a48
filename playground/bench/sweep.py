"""The throughput sweep: for each precision, one engine, every concurrency level, repeated.

Random token prompts of exact lengths (seeded), ignore_eos so every request produces exactly
output_len tokens, one warm-up pass excluded, each point the median of ``repeats`` runs, each repeat with prompts
of its own (a repeat of the same prompts would find them in vLLM's prefix cache and skip their prefill).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import numpy as np

from playground.engines.base import Engine, GenerationRequest, RequestError, SamplingSettings
from playground.metrics import DEFAULT_SLO_MS, RequestTiming, RunMetrics, summarize

from planner.fit import PRECISIONS  # noqa: E402  (one definition of the three precisions)
MAX_PROMPTS = 4096
MAX_CONCURRENCY = 1024


@dataclass(frozen=True)
class SweepSpec:
    concurrency: tuple[int, ...] = (1, 8, 64, 256)
    input_len: int = 512
    output_len: int = 256
    num_prompts: int | None = None  # per point; default: max(concurrency, 4) so every level is loaded
    repeats: int = 3
    precisions: tuple[str, ...] = ("fp16", "fp8", "fp8-kv8")
    seed: int = 0
    goodput: tuple[tuple[str, float], ...] = DEFAULT_SLO_MS  # the SLO goodput is counted under (ms, vLLM's names)

    def prompts_for(self, concurrency: int) -> int:
        return self.num_prompts or max(concurrency, 4)

    def validate(self, max_model_len: int, names: Sequence[str] | None = None) -> SweepSpec:
        """``names``: the engines a sweep may name instead of the three precisions (the app's columns)."""
        if not self.concurrency:
            raise RequestError("concurrency", "give at least one level, e.g. 1,8,64")
        for c in self.concurrency:
            if not 1 <= c <= MAX_CONCURRENCY:
                raise RequestError("concurrency", f"{c} is outside [1, {MAX_CONCURRENCY}]")
        if self.num_prompts is not None and not 1 <= self.num_prompts <= MAX_PROMPTS:
            raise RequestError("num_prompts", f"{self.num_prompts} is outside [1, {MAX_PROMPTS}]")
        if self.input_len < 1 or self.output_len < 1:
            raise RequestError("input_len" if self.input_len < 1 else "output_len", "must be at least 1 token")
        if self.input_len + self.output_len > max_model_len:
            raise RequestError("input_len", f"input_len + output_len = {self.input_len + self.output_len} exceeds max_model_len={max_model_len}")
        if not 1 <= self.repeats <= 10:
            raise RequestError("repeats", f"{self.repeats} is outside [1, 10]")
        allowed = list(names) if names is not None else list(PRECISIONS)
        unknown = [p for p in self.precisions if p not in allowed]
        if unknown or not self.precisions:
            raise RequestError("precisions", f"{unknown or 'none'}: choose from {', '.join(allowed)}")
        return self


@dataclass(frozen=True)
class PointResult:
    precision: str
    concurrency: int
    num_prompts: int
    metrics: RunMetrics  # the median repeat (by output tok/s)
    repeat_output_tok_s: tuple[float, ...]
    peak_memory_bytes: int | None = None
    mean_power_w: float | None = None
    energy_j_per_output_token: float | None = None
    roofline_output_tok_s: float | None = None
    roofline_bound: str | None = None
    vllm_bench_command: str = ""
    predicted_decode_tok_s: float | None = None  # planner/speed.py's prediction for this point (per request)
    repeat_tpot_p50_s: tuple[float, ...] = ()  # each repeat's, in the order run: how far one wave is from the next
    repeat_itl_p50_s: tuple[float, ...] = ()
    repeat_tpot_mean_s: tuple[float, ...] = ()
    # the host's one-core pace just before each repeat (python_loop_ms): a small engine's step is host work
    repeat_python_loop_ms: tuple[float, ...] = ()

    @property
    def percent_of_roofline(self) -> float | None:
        if not self.roofline_output_tok_s:
            return None
        return 100 * self.metrics.output_tok_s / self.roofline_output_tok_s

    def as_row(self) -> dict:
        row = {"precision": self.precision, "concurrency": self.concurrency, "num_prompts": self.num_prompts}
        row.update(asdict(self.metrics))
        row.update(repeat_output_tok_s=list(self.repeat_output_tok_s), peak_memory_bytes=self.peak_memory_bytes,
                   mean_power_w=self.mean_power_w, energy_j_per_output_token=self.energy_j_per_output_token,
                   roofline_output_tok_s=self.roofline_output_tok_s, roofline_bound=self.roofline_bound,
                   percent_of_roofline=self.percent_of_roofline, vllm_bench_command=self.vllm_bench_command,
                   predicted_decode_tok_s=self.predicted_decode_tok_s,
                   repeat_tpot_p50_s=list(self.repeat_tpot_p50_s), repeat_itl_p50_s=list(self.repeat_itl_p50_s),
                   repeat_tpot_mean_s=list(self.repeat_tpot_mean_s),
                   repeat_python_loop_ms=list(self.repeat_python_loop_ms))
        return row


def random_prompts(num: int, length: int, vocab_size: int, seed: int) -> list[tuple[int, ...]]:
    """Token-id prompts of exactly ``length`` ids, reproducible from ``seed``; ids avoid the first
    100 (special and byte tokens) so no prompt starts with an end-of-sequence."""
    rng = np.random.default_rng(seed)
    return [tuple(int(x) for x in rng.integers(100, vocab_size, size=length)) for _ in range(num)]


async def run_point(engine: Engine, prompts: Sequence[tuple[int, ...]], output_len: int, concurrency: int,
                    tag: str, cancel: threading.Event | None = None) -> list[RequestTiming]:
    """Send every prompt, at most ``concurrency`` in flight; return each request's chunk timings."""
    sampling = SamplingSettings(temperature=1.0, max_tokens=output_len, ignore_eos=True, seed=None)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, ids: tuple[int, ...]) -> RequestTiming:
        async with gate:
            if cancel is not None and cancel.is_set():
                return RequestTiming(time.perf_counter(), (), 0)
            start, times, produced = time.perf_counter(), [], 0
            async for chunk in engine.stream(GenerationRequest(f"{tag}-{i}", sampling, prompt_token_ids=ids)):
                times.append(chunk.t_s)
                produced = chunk.num_output_tokens
            return RequestTiming(start, tuple(times), produced, len(ids))

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def python_loop_ms(repeats: int = 3) -> float:
    """One core's pace at small-dict and list work in Python: the best of a few runs of a fixed loop, in ms (lower is
    faster). Recorded beside the CPU's name and before each wave, so host-bound rows can be read against the host's
    pace (on the H200 a reading did not predict the next wave's step: docs/speed.md)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        table: dict[int, list[int]] = {}
        for i in range(100_000):
            table.setdefault(i & 1023, []).append(i)
            if len(table[i & 1023]) > 8:
                table[i & 1023].pop(0)
        best = min(best, time.perf_counter() - start)
    return round(best * 1e3, 2)


class SweepCancelled(Exception):
    pass


async def run_precision(engine: Engine, precision: str, spec: SweepSpec, vocab_size: int,
                        describe_point: Callable[[str, int, RunMetrics], dict],
                        repeat_done: Callable[[str], None], cancel: threading.Event | None = None,
                        sampler: Callable[[], AbstractContextManager] | None = None,
                        point_done: Callable[[PointResult], None] | None = None,
                        starting: Callable[[str], None] | None = None) -> list[PointResult]:
    """All concurrency levels for one started engine; ``repeat_done`` is called after every timed
    repeat. ``describe_point`` adds roofline/NVML/command fields; ``sampler`` (optional) is a
    context-manager factory that samples GPU memory and power."""
    results = []
    for c in spec.concurrency:
        def prompts_of(r: int) -> list[tuple[int, ...]]:  # repeat 0's are the prompts a one-repeat sweep always had
            return random_prompts(spec.prompts_for(c), spec.input_len, vocab_size, spec.seed + c + 20_000 * r)
        # One untimed wave at this concurrency first: the first pass at a new batch size pays for
        # kernel selection and JIT (seen on the H100 as a slow first repeat at 64 and 256).
        warm = random_prompts(c, spec.input_len, vocab_size, spec.seed + 10_000 + c)
        say = starting or (lambda _message: None)  # what runs now, said before it runs
        say(f"{precision} at concurrency {c}: untimed warm-up ({c} request{'s' if c > 1 else ''})")
        await run_point(engine, warm, spec.output_len, c, f"{precision}-c{c}-warmup", cancel)
        repeats: list[RunMetrics] = []
        readings: list[dict] = []
        paces: list[float] = []
        for r in range(spec.repeats):
            if cancel is not None and cancel.is_set():
                raise SweepCancelled(f"cancelled during {precision} at concurrency {c}")
            prompts = prompts_of(r)
            say(f"{precision} at concurrency {c}: timed repeat {r + 1} of {spec.repeats} ({len(prompts)} request{'s' if len(prompts) > 1 else ''} of "
                f"{spec.input_len} prompt + {spec.output_len} output tokens, {c} at a time)")
            paces.append(python_loop_ms(repeats=1))  # between waves (tens of ms): during one it would take the GIL
            if sampler is not None:
                with sampler() as samples:
                    timings = await run_point(engine, prompts, spec.output_len, c, f"{precision}-c{c}-r{r}", cancel)
                readings.append(samples.summary())
            else:
                timings = await run_point(engine, prompts, spec.output_len, c, f"{precision}-c{c}-r{r}", cancel)
            repeats.append(summarize(timings, spec.goodput))
            repeat_done(f"{precision} concurrency {c} repeat {r + 1}/{spec.repeats}: {repeats[-1].output_tok_s:.1f} output tok/s")
        median = sorted(repeats, key=lambda m: m.output_tok_s)[len(repeats) // 2]
        extra = describe_point(precision, c, median)
        if readings:
            index = repeats.index(median)
            reading = readings[index]
            extra.update(peak_memory_bytes=reading["peak_memory_bytes"], mean_power_w=reading["mean_power_w"])
            if reading["mean_power_w"]:
                extra["energy_j_per_output_token"] = reading["mean_power_w"] * median.duration_s / median.output_tokens
        results.append(PointResult(precision=precision, concurrency=c, num_prompts=len(prompts), metrics=median,
                                   repeat_output_tok_s=tuple(m.output_tok_s for m in repeats),
                                   repeat_tpot_p50_s=tuple(m.tpot_p50_s for m in repeats),
                                   repeat_itl_p50_s=tuple(m.itl_p50_s for m in repeats),
                                   repeat_tpot_mean_s=tuple(m.tpot_mean_s for m in repeats),
                                   repeat_python_loop_ms=tuple(paces), **extra))
        if point_done is not None:
            point_done(results[-1])  # saved now: a sweep killed later keeps this point
    return results
