"""The Playground service: back-pressure, an engine that cannot be had, a remote engine retried."""

import asyncio

import pytest

from playground.engines.base import EngineInfo, RequestError, SamplingSettings, StreamChunk
from playground.runtime import EngineRuntime, SupervisedEngine
from playground.service import ComparisonResult, Playground


class GatedEngine:
    """Streams two tokens, the second only once ``gate`` is set; can be told to fail its start."""

    def __init__(self, label: str, gate: asyncio.Event | None = None, fail_start: list | None = None):
        self.info = EngineInfo(backend="test", label=label, model="m", dtype="bf16", quantization=None,
                               kv_cache_dtype="auto", max_model_len=64)
        self.gate, self.fail_start, self.errored = gate, fail_start, False

    async def start(self):
        if self.fail_start:
            raise RequestError("engine", self.fail_start.pop())

    def count_prompt_tokens(self, prompt, chat=False):
        return 3

    async def stream(self, request):
        import time

        yield StreamChunk(text="a", num_output_tokens=1, token_ids=(1,), t_s=time.perf_counter(), num_prompt_tokens=3)
        if self.gate is not None:
            await self.gate.wait()
        yield StreamChunk(text="b", num_output_tokens=2, token_ids=(2,), t_s=time.perf_counter(), num_prompt_tokens=3,
                          finished=True, finish_reason="length")


def make(engines, tmp_path) -> Playground:
    playground = Playground(engines, EngineRuntime(), tmp_path, "test")
    for e in engines:
        try:
            playground.runtime.call(e.start())
        except RequestError:
            pass
    return playground


async def final_of(playground, **kw):
    async for item in playground.compare("hi", SamplingSettings(temperature=0.0, max_tokens=2), quality=False, **kw):
        if isinstance(item, ComparisonResult):
            return item


def test_over_the_limit_a_caller_is_told_the_server_is_busy(tmp_path):
    runtime_gate = asyncio.Event()
    engine = SupervisedEngine(lambda: GatedEngine("A", runtime_gate))
    playground = make([engine, SupervisedEngine(lambda: GatedEngine("B"))], tmp_path)
    playground.max_in_flight = 1

    async def go():
        first = asyncio.create_task(final_of(playground, mode="race"))
        while playground.in_flight == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(RequestError, match=r"busy: 1 requests are being served \(the limit is 1\)"):
            await final_of(playground, mode="race")
        playground.runtime.loop.call_soon_threadsafe(runtime_gate.set)
        result = await first
        assert playground.in_flight == 0
        return result

    result = asyncio.run(go())
    assert [s.texts[0] for s in result.snapshots] == ["ab", "ab"]


def test_an_engine_that_cannot_be_had_is_its_columns_error_and_the_other_answers(tmp_path):
    down = SupervisedEngine(lambda: GatedEngine("Remote", fail_start=["server not reachable"] * 10))
    playground = make([SupervisedEngine(lambda: GatedEngine("Local")), down], tmp_path)
    result = asyncio.run(final_of(playground, mode="race"))
    local, remote = result.snapshots
    assert local.texts == ("ab",) and local.error is None
    assert "server not reachable" in remote.error


def test_a_remote_engine_that_failed_to_start_is_tried_again_on_the_next_request(tmp_path):
    reasons = ["not up yet"]  # the first start fails, the retry succeeds
    remote = SupervisedEngine(lambda: GatedEngine("Remote", fail_start=reasons), retry_failed_start=True)
    playground = make([SupervisedEngine(lambda: GatedEngine("Local")), remote], tmp_path)
    assert remote.failed
    result = asyncio.run(final_of(playground, mode="race"))
    assert [s.texts for s in result.snapshots] == [("ab",), ("ab",)] and remote.ready


class SlowStartEngine(GatedEngine):
    def __init__(self, label, gate):
        super().__init__(label)
        self.start_gate = gate

    async def start(self):
        await self.start_gate.wait()


def test_a_request_before_the_engine_is_ready_is_told_how_long_is_left(tmp_path, monkeypatch):
    """The start time is saved in the data folder; on the next start a request that arrives early is
    told '~N s left' from it (and the status line says the same)."""
    import json

    import playground.service as service

    monkeypatch.setattr(service, "READY_WAIT_S", 0.2)
    (tmp_path / "start_times.json").write_text(json.dumps({"test:A:m": 60.0, "test:B:m": 5.0}))
    gate = asyncio.Event()
    engines = [SupervisedEngine(lambda: SlowStartEngine("A", gate)), SupervisedEngine(lambda: GatedEngine("B"))]
    playground = Playground(engines, EngineRuntime(), tmp_path, "test")
    playground.start_in_background()
    with pytest.raises(RequestError, match=r"A engine is still starting \(starting\); \d+ s so far, ~\d+ s left "
                                           r"\(the last start took 60 s\)"):
        asyncio.run(final_of(playground, mode="race"))
    assert "~" in engines[0].status_line() and "s left" in engines[0].status_line()
    import time

    playground.runtime.loop.call_soon_threadsafe(gate.set)
    for _ in range(100):  # both started and saved
        saved = json.loads((tmp_path / "start_times.json").read_text())
        if saved["test:A:m"] < 60.0 and saved["test:B:m"] < 5.0:
            break
        time.sleep(0.05)
    assert saved["test:A:m"] < 60.0 and saved["test:B:m"] < 5.0  # this start's times replace the old ones


class HandshakeEngine(GatedEngine):
    """Its first token sets ``sent``; its second waits for the other engine's first (``other``)."""

    def __init__(self, label, sent: asyncio.Event, other: asyncio.Event):
        super().__init__(label, other)
        self.sent = sent

    async def stream(self, request):
        async for chunk in super().stream(request):
            self.sent.set()
            yield chunk


def test_a_race_runs_every_engine_at_once_and_waits_for_a_fair_turn_in_progress(tmp_path):
    """Each engine finishes only after the other has started: run one after the other, the race never ends."""
    import time

    a_sent, b_sent = asyncio.Event(), asyncio.Event()
    playground = make([SupervisedEngine(lambda: HandshakeEngine("A", a_sent, b_sent)),
                       SupervisedEngine(lambda: HandshakeEngine("B", b_sent, a_sent))], tmp_path)
    result = asyncio.run(asyncio.wait_for(final_of(playground, mode="race"), 10))
    assert [c.output_tokens for c in result.snapshots] == [2, 2]

    loop, held, release = playground.runtime.loop, asyncio.Event(), None

    async def hold_16bit_turn():  # a fair comparison's 16-bit turn, on the loop the engines run on
        nonlocal release
        release = asyncio.Event()
        async with playground.phases.turn(0):
            held.set()
            await release.wait()

    holder = asyncio.run_coroutine_threadsafe(hold_16bit_turn(), loop)
    while not held.is_set():
        time.sleep(0.01)
    for e in (a_sent, b_sent):
        e.clear()

    async def race():
        return await asyncio.wait_for(final_of(playground, mode="race"), 10)

    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(asyncio.run, race())
        deadline = time.time() + 5
        while time.time() < deadline and not playground.phases.waiting[2]:
            time.sleep(0.01)
        assert playground.phases.waiting[2] == 1 and not pending.done()  # the race waits for the fair turn
        loop.call_soon_threadsafe(release.set)
        holder.result(5)
        assert [c.output_tokens for c in pending.result(10).snapshots] == [2, 2]
