import asyncio

import pytest

from playground.compare import compare, parse_prompts
from playground.engines.base import EngineInfo, RequestError, SamplingSettings
from playground.engines.cpu_engine import CpuEngine


class BrokenEngine:
    """An engine whose stream fails after starting: the comparison must report it and go on."""

    info = EngineInfo(backend="test", label="broken", model="m", dtype="bf16", quantization=None,
                      kv_cache_dtype="auto", max_model_len=100)

    async def stream(self, request):
        raise RuntimeError("engine core died")
        yield  # pragma: no cover


def test_prompts_are_split_on_separator_lines():
    assert parse_prompts("one\n---\ntwo\n---\n\n") == ["one", "two"]
    with pytest.raises(RequestError):
        parse_prompts("  \n---\n ")
    with pytest.raises(RequestError, match="more than"):
        parse_prompts("\n---\n".join(["p"] * 17))


def test_both_columns_stream_and_finish_with_metrics():
    base, fp8 = CpuEngine("16-bit", fp8=False), CpuEngine("FP8", fp8=True)

    async def go():
        await base.start()
        await fp8.start()
        return [s async for s in compare([base, fp8], ["Hello", "FP8?"], SamplingSettings(temperature=0, max_tokens=8))]

    snapshots = asyncio.run(go())
    assert len(snapshots) > 2  # streamed, not one final answer
    final = snapshots[-1]
    for column in final:
        assert column.finished and column.error is None
        assert column.output_tokens == 16 and all(column.texts)
        metrics = column.metrics()
        assert metrics.ttft_p50_s > 0 and column.decode_tok_s > 0


def test_a_failing_engine_is_reported_while_the_other_finishes():
    good = CpuEngine("16-bit", fp8=False)

    async def go():
        await good.start()
        return [s async for s in compare([good, BrokenEngine()], ["Hi"], SamplingSettings(temperature=0, max_tokens=4))]

    final = asyncio.run(go())[-1]
    assert final[0].error is None and final[0].output_tokens == 4
    assert "engine core died" in final[1].error
