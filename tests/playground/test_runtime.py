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


def test_vllm_start_up_lines_become_stages():
    from playground.engines.vllm_stages import stage_of

    # lines as vLLM 0.25.1 prints them (from the H100 logs in docs/results)
    assert stage_of("(EngineCore pid=1) INFO 11-25 [gpu_model_runner.py:5210] Starting to load model /m...") == "loading weights"
    assert stage_of("INFO Model loading took 12.55 GiB memory and 3.1 seconds") == \
        "weights loaded (12.55 GiB); compiling (torch.compile)"
    assert stage_of("INFO torch.compile took 41.27 s in total") == "compiled in 41 s; profiling memory"
    assert stage_of("INFO GPU KV cache size: 123,456 tokens") == "KV cache 123,456 tokens; capturing CUDA graphs"
    assert stage_of("INFO Graph capturing finished in 9 secs, took 0.51 GiB") == "CUDA graphs captured in 9 s; warming up"
    assert stage_of("INFO Automatically detected platform cuda.") is None


def test_a_stage_shows_only_while_the_engine_starts():
    supervised = SupervisedEngine(FlakyEngine)
    supervised.note_stage("loading weights")
    assert supervised.stage == "waiting to start"  # not started: a stray line changes nothing
    asyncio.run(supervised.start())
    supervised.note_stage("loading weights")
    assert supervised.ready and supervised.stage == "ready"


def test_the_output_watcher_copies_and_reads_every_line(tmp_path):
    """A child process's line (as vLLM's engine core writes) and the process's own both reach the
    real output and the callback."""
    import subprocess
    import sys

    seen_file = tmp_path / "seen.txt"
    code = ("import time, os; from playground.engines.vllm_stages import watch_process_output\n"
            "seen = []\nwatch_process_output(seen.append)\n"
            "os.system('echo INFO GPU KV cache size: 7 tokens')\n"
            "print('hello', flush=True); time.sleep(0.5)\n"
            f"open({str(seen_file)!r}, 'w').write(repr(seen))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "INFO GPU KV cache size: 7 tokens" in out.stdout and "hello" in out.stdout
    assert seen_file.read_text() == "['INFO GPU KV cache size: 7 tokens', 'hello']"
