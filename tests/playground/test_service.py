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
