import asyncio

import pytest

from playground.engines.base import EngineInfo
from playground.runtime import EngineRuntime, SupervisedEngine

INFO = EngineInfo(backend="test", label="t", model="m", dtype="bf16", quantization=None, kv_cache_dtype="auto",
                  max_model_len=8)


class FlakyEngine:
    built = 0

    def __init__(self):
        FlakyEngine.built += 1
        self.info = INFO
        self.errored = False
        self.started = False

    async def start(self):
        self.started = True

    async def stop(self):
        raise RuntimeError("already dead")


def test_a_dead_engine_is_rebuilt_and_started_again():
    supervised = SupervisedEngine(FlakyEngine)
    first = supervised.engine
    assert asyncio.run(supervised.ensure_running()) is False
    first.errored = True
    assert asyncio.run(supervised.ensure_running()) is True
    assert supervised.engine is not first and supervised.engine.started and supervised.restarts == 1


def test_streams_cross_from_the_engine_loop_and_closing_stops_the_producer():
    runtime = EngineRuntime()
    produced = []

    async def numbers():
        for i in range(1000):
            produced.append(i)
            yield i
            await asyncio.sleep(0.001)

    async def consume():
        got = []
        async for n in runtime.stream(numbers):
            got.append(n)
            if n == 4:
                break
        await asyncio.sleep(0.05)
        return got

    assert asyncio.run(consume()) == [0, 1, 2, 3, 4]
    assert len(produced) < 100  # the producer on the other loop was cancelled, not run to the end


def test_errors_on_the_engine_loop_reach_the_caller():
    runtime = EngineRuntime()

    async def failing():
        yield 1
        raise ValueError("boom")

    async def consume():
        return [n async for n in runtime.stream(failing)]

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(consume())
