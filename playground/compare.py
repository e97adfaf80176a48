"""Run the same prompts through several engines at once and watch them stream side by side."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from playground.engines.base import Engine, GenerationRequest, RequestError, SamplingSettings
from playground.metrics import RequestTiming, RunMetrics, first_divergence, summarize

MAX_PROMPTS = 16


@dataclass(frozen=True)
class ColumnSnapshot:
    """What one engine's column shows at a moment: texts so far and live metrics."""

    label: str
    texts: tuple[str, ...]
    timings: tuple[RequestTiming, ...]
    finished: bool
    error: str | None = None

    @property
    def output_tokens(self) -> int:
        return sum(t.output_tokens for t in self.timings)

    def metrics(self) -> RunMetrics | None:
        try:
            return summarize(self.timings)
        except ValueError:  # nothing streamed yet
            return None

    @property
    def decode_tok_s(self) -> float | None:
        """Median per-request decode speed (1 / TPOT)."""
        speeds = sorted(t.decode_tok_s for t in self.timings if t.decode_tok_s)
        return speeds[len(speeds) // 2] if speeds else None


def parse_prompts(text: str) -> list[str]:
    """One prompt per block separated by a line holding only '---' (a single block is one prompt)."""
    if not isinstance(text, str):
        raise RequestError("prompts", "expected text")
    blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n---\n")]
    prompts = [b for b in blocks if b]
    if not prompts:
        raise RequestError("prompts", "is empty: type at least one prompt")
    if len(prompts) > MAX_PROMPTS:
        raise RequestError("prompts", f"{len(prompts)} prompts is more than the {MAX_PROMPTS} one comparison runs")
    return prompts


def check_request(engines: Sequence[Engine], prompts: Sequence[str], sampling: SamplingSettings) -> None:
    """Refuse, before anything starts, what an engine would refuse: each prompt plus max_tokens
    must fit every engine's max_model_len."""
    for p in prompts:
        GenerationRequest("check", sampling, prompt=p)
    for engine in engines:
        limit = engine.info.max_model_len
        sampling.validate(limit)
        for i, p in enumerate(prompts):
            n = engine.count_prompt_tokens(p)
            if n + sampling.max_tokens > limit:
                where = f"prompt {i + 1}" if len(prompts) > 1 else "the prompt"
                raise RequestError("prompt" if n >= limit else "max_tokens",
                                   f"{where} has {n:,} tokens; with max_tokens={sampling.max_tokens:,} it exceeds "
                                   f"{engine.info.label}'s max_model_len={limit:,}")


class _Column:
    def __init__(self, label: str, n: int):
        self.label = label
        self.texts = [""] * n
        self.starts = [0.0] * n
        self.times: list[list[float]] = [[] for _ in range(n)]
        self.tokens = [0] * n
        self.prompt_tokens = [0] * n
        self.done = [False] * n
        self.error: str | None = None

    def snapshot(self) -> ColumnSnapshot:
        timings = tuple(
            RequestTiming(start_s=self.starts[i], chunk_times_s=tuple(self.times[i]),
                          output_tokens=self.tokens[i], prompt_tokens=self.prompt_tokens[i])
            for i in range(len(self.texts))
        )
        return ColumnSnapshot(self.label, tuple(self.texts), timings, all(self.done) or self.error is not None, self.error)


async def compare(engines: Sequence[Engine], prompts: Sequence[str], sampling: SamplingSettings,
                  min_interval_s: float = 0.05) -> AsyncIterator[tuple[ColumnSnapshot, ...]]:
    """Yield snapshots of every column as tokens arrive (at most every ``min_interval_s``), and a
    final one when all are done. Closing the generator cancels the requests in their engines.
    A request an engine refuses becomes that column's error; check_request refuses them up front."""
    columns = [_Column(e.info.label, len(prompts)) for e in engines]
    changed = asyncio.Event()
    batch = uuid.uuid4().hex[:8]

    async def run_one(engine: Engine, column: _Column, i: int) -> None:
        request = GenerationRequest(f"{batch}-{column.label}-{i}", sampling, prompt=prompts[i])
        column.starts[i] = time.perf_counter()
        try:
            async for chunk in engine.stream(request):
                column.texts[i] += chunk.text
                column.tokens[i] = chunk.num_output_tokens
                column.prompt_tokens[i] = chunk.num_prompt_tokens
                column.times[i].append(chunk.t_s)
                changed.set()
        except RequestError as e:
            column.error = str(e)
        except Exception as e:  # an engine fault ends this column, reported, while the other goes on
            column.error = f"{type(e).__name__}: {e}"
        finally:
            column.done[i] = True
            changed.set()

    tasks = [asyncio.create_task(run_one(e, c, i)) for e, c in zip(engines, columns) for i in range(len(prompts))]
    try:
        while not all(t.done() for t in tasks):
            await changed.wait()
            changed.clear()
            yield tuple(c.snapshot() for c in columns)
            await asyncio.sleep(min_interval_s)
        yield tuple(c.snapshot() for c in columns)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def divergence_note(a: ColumnSnapshot, b: ColumnSnapshot) -> str:
    """Where two greedy outputs first differ, prompt by prompt (character offsets)."""
    notes = []
    for i, (x, y) in enumerate(zip(a.texts, b.texts)):
        at = first_divergence(x, y)
        if at is None:
            notes.append(f"prompt {i + 1}: identical" + ("" if len(x) == len(y) else " (one is longer)"))
        else:
            notes.append(f"prompt {i + 1}: first differs at character {at}: …{x[max(0, at - 20):at + 10]!r} vs …{y[max(0, at - 20):at + 10]!r}")
    return "\n".join(notes)
