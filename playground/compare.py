"""Run the same prompts through several engines and watch them stream side by side.

Two modes:
- "fair" (default): each engine has the GPU to itself while it answers. Comparisons move through
  the engines in phases (EnginePhases): every comparison waiting runs on the first engine together
  (vLLM still batches them), then all of them on the second. Speeds and their ratio are what each
  engine does alone; other users' requests in the same phase share it, as on any server.
- "race": both engines at once, sharing the GPU: a live race, slower than either alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from playground.engines.base import Engine, GenerationRequest, RequestError, SamplingSettings
from playground.metrics import RequestTiming, RunMetrics, first_divergence, summarize
from playground.quality import TOP_K, QualityDiff, quality_diff

MAX_PROMPTS = 16
MODES = ("fair", "race")


class EnginePhases:
    """A phase lock: any number of holders of the same phase at once, phases taken in turn.

    A new arrival joins the current phase only while nobody waits for another one, so a stream of
    FP16 requests cannot starve the FP8 phase."""

    def __init__(self, num_phases: int):
        self.num_phases = num_phases
        self.current: int | None = None
        self.holders = 0
        self.waiting: Counter = Counter()
        self._cond = asyncio.Condition()

    def ahead_of(self, phase: int) -> int:
        """Requests holding or waiting for another phase: how many a newcomer to ``phase`` waits behind."""
        others = sum(n for p, n in self.waiting.items() if p != phase)
        return others + (self.holders if self.current not in (None, phase) else 0)

    def _others_waiting(self, phase: int) -> bool:
        return any(n for p, n in self.waiting.items() if p != phase)

    def _hand_over(self, after: int) -> None:
        order = [(after + i) % self.num_phases for i in range(1, self.num_phases + 1)]
        self.current = next((p for p in order if self.waiting[p]), None)
        self._cond.notify_all()

    @asynccontextmanager
    async def turn(self, phase: int):
        async with self._cond:
            if self.current is None or (self.current == phase and not self._others_waiting(phase)):
                self.current = phase
            else:
                self.waiting[phase] += 1
                try:
                    await self._cond.wait_for(lambda: self.current == phase)
                finally:
                    self.waiting[phase] -= 1
                    if self.current == phase and self.holders == 0 and not self.waiting[phase] and \
                            asyncio.current_task().cancelling():
                        self._hand_over(phase)  # cancelled while being admitted: do not hold the turn empty
            self.holders += 1
        try:
            yield
        finally:
            async with self._cond:
                self.holders -= 1
                if self.holders == 0:
                    self._hand_over(phase)


@dataclass(frozen=True)
class ColumnSnapshot:
    """What one engine's column shows at a moment: texts so far and live metrics."""

    label: str
    texts: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]
    timings: tuple[RequestTiming, ...]
    finished: bool
    status: str = ""  # "waiting for its turn (N ahead)", "streaming", "done"
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


def check_request(engines: Sequence[Engine], prompts: Sequence[str], sampling: SamplingSettings, chat: bool = False) -> None:
    """Refuse, before anything starts, what an engine would refuse: each prompt plus max_tokens
    must fit every engine's max_model_len."""
    for p in prompts:
        GenerationRequest("check", sampling, prompt=p)
    for engine in engines:
        limit = engine.info.max_model_len or None  # 0: not known (a server not reached yet)
        sampling.validate(limit)
        for i, p in enumerate(prompts):
            n = engine.count_prompt_tokens(p, chat)
            if n is not None and limit and n + sampling.max_tokens > limit:  # None: a remote server checks it itself
                where = f"prompt {i + 1}" if len(prompts) > 1 else "the prompt"
                raise RequestError("prompt" if n >= limit else "max_tokens",
                                   f"{where} has {n:,} tokens; with max_tokens={sampling.max_tokens:,} it exceeds "
                                   f"{engine.info.label}'s max_model_len={limit:,}")


class _Column:
    def __init__(self, label: str, n: int):
        self.label = label
        self.texts = [""] * n
        self.ids: list[list[int]] = [[] for _ in range(n)]
        self.starts = [0.0] * n
        self.times: list[list[float]] = [[] for _ in range(n)]
        self.tokens = [0] * n
        self.prompt_tokens = [0] * n
        self.done = [False] * n
        self.status = "queued"
        self.error: str | None = None

    def snapshot(self) -> ColumnSnapshot:
        timings = tuple(
            RequestTiming(start_s=self.starts[i], chunk_times_s=tuple(self.times[i]),
                          output_tokens=self.tokens[i], prompt_tokens=self.prompt_tokens[i])
            for i in range(len(self.texts))
        )
        finished = all(self.done) or self.error is not None
        return ColumnSnapshot(self.label, tuple(self.texts), tuple(tuple(i) for i in self.ids), timings, finished,
                              "done" if finished else self.status, self.error)


def _waiting_status(ahead: int) -> str:
    return f"waiting for its turn ({ahead} request{'s' if ahead != 1 else ''} ahead)" if ahead else "waiting for its turn"


async def compare(engines: Sequence[Engine], prompts: Sequence[str], sampling: SamplingSettings, *,
                  mode: str = "fair", phases: EnginePhases | None = None, chat: bool = False,
                  min_interval_s: float = 0.1) -> AsyncIterator[tuple[ColumnSnapshot, ...]]:
    """Yield snapshots of every column as tokens arrive (at most every ``min_interval_s``: per-token
    work stays off the engines' path), and a final one when all are done. Closing the generator
    cancels the requests in their engines. A request an engine refuses becomes that column's error."""
    if mode not in MODES:
        raise RequestError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if mode == "fair" and phases is None:
        phases = EnginePhases(len(engines))
    columns = [_Column(e.info.label, len(prompts)) for e in engines]
    changed = asyncio.Event()
    batch = uuid.uuid4().hex[:8]

    async def run_one(engine: Engine, column: _Column, i: int) -> None:
        request = GenerationRequest(f"{batch}-{column.label}-{i}", sampling, prompt=prompts[i], chat=chat)
        column.starts[i] = time.perf_counter()
        async for chunk in engine.stream(request):
            column.texts[i] += chunk.text
            column.ids[i].extend(chunk.token_ids)
            column.tokens[i] = chunk.num_output_tokens
            column.prompt_tokens[i] = chunk.num_prompt_tokens
            column.times[i].append(chunk.t_s)
            changed.set()

    # a race takes the phase after the engines' own: its engines run at once, and no fair run's engine shares
    # the hardware with it (a queue of len(engines) phases has no such phase: the race is not queued)
    race_phase = len(engines) if phases is not None and phases.num_phases > len(engines) else None

    async def run_column(index: int, phase: int | None) -> None:
        engine, column = engines[index], columns[index]
        try:
            if phases is not None and phase is not None:
                column.status = _waiting_status(phases.ahead_of(phase))
                changed.set()
                async with phases.turn(phase):
                    column.status = "streaming"
                    changed.set()
                    await asyncio.gather(*(run_one(engine, column, i) for i in range(len(prompts))))
            else:
                column.status = "streaming"
                await asyncio.gather(*(run_one(engine, column, i) for i in range(len(prompts))))
        except RequestError as e:
            column.error = str(e)
        except Exception as e:  # an engine fault ends this column, reported, while the other goes on
            column.error = f"{type(e).__name__}: {e}"
        finally:
            column.done = [True] * len(prompts)
            changed.set()

    if mode == "fair":  # one engine after the other, each comparison's columns in engine order
        async def in_order() -> None:
            for index in range(len(engines)):
                await run_column(index, index)
        tasks = [asyncio.create_task(in_order())]
    elif race_phase is not None:  # every engine at once, in one turn of the queue
        async def race() -> None:
            for column in columns:
                column.status = _waiting_status(phases.ahead_of(race_phase))
            changed.set()
            async with phases.turn(race_phase):
                await asyncio.gather(*(run_column(i, None) for i in range(len(engines))))
        tasks = [asyncio.create_task(race())]
    else:
        tasks = [asyncio.create_task(run_column(i, None)) for i in range(len(engines))]
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


async def score_quality(engines: Sequence[Engine], prompts: Sequence[str], snapshots: Sequence[ColumnSnapshot],
                        chat: bool = False) -> list[list[QualityDiff | None]]:
    """Per column after the first, per prompt: that column against the first (the reference),
    teacher-forced on the reference's output. The reference scores each answer once, whatever the
    number of columns. None for a prompt whose reference output is empty, or a column that errored."""
    reference = snapshots[0]
    out: list[list[QualityDiff | None]] = [[None] * len(prompts) for _ in snapshots[1:]]
    if reference.error:
        return out
    for i, prompt in enumerate(prompts):
        tokens = reference.token_ids[i]
        if not tokens:
            continue
        scored = [j for j, s in enumerate(snapshots[1:], 1) if not s.error]
        rows = await asyncio.gather(*(engines[j].score(prompt, chat, tokens, TOP_K) for j in [0, *scored]))
        for j, cand_rows in zip(scored, rows[1:]):
            out[j - 1][i] = quality_diff(tokens, rows[0], cand_rows, reference.texts[i], snapshots[j].texts[i])
    return out


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
