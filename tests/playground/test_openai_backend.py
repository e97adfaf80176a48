"""The OpenAI backend against real local server processes that speak vLLM's OpenAI protocol.

Servers: `python -m playground.serve --backend cpu` (FP16 and FP8, behind an API key) and a test
server that drops every stream after three tokens. Everything goes over real sockets.
"""

import asyncio
import socket
import sys
import time

import pytest
from conftest import ROOT, free_port, start_server, start_servers

from playground.engines.base import GenerationRequest, RequestError, SamplingSettings
from playground.engines.openai_engine import OpenAIEngine, RemoteEngineSpec, cache_facts, parse_metrics

KEY = "test-key-123"
GREEDY = SamplingSettings(temperature=0.0, max_tokens=12, seed=0)
PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    import os

    logs = tmp_path_factory.mktemp("servers")
    ports = {"fp16": free_port(), "fp8": free_port(), "drop": free_port()}
    os.environ["PLAYGROUND_TEST_KEY"] = KEY
    # the servers compute in this process's dtype: the start-up pick can differ between processes on a busy
    # machine, and the token-for-token test below compares a server with an engine in this process
    from playground.engines import cpu_engine

    os.environ[cpu_engine.DTYPE_ENV] = str(cpu_engine.compute_dtype()).removeprefix("torch.")
    cpu = [(["-m", "playground.serve", "--backend", "cpu", "--precision", precision, "--port", str(ports[precision]),
             "--api-key-env", "PLAYGROUND_TEST_KEY"], f"http://127.0.0.1:{ports[precision]}/health", logs / f"{precision}.log")
           for precision in ("fp16", "fp8")]
    drop = ([str(ROOT / "tests" / "helpers" / "fault_server.py"), str(ports["drop"])],
            f"http://127.0.0.1:{ports['drop']}/health", logs / "drop.log")
    procs = start_servers(*cpu, drop)
    try:
        yield {name: f"http://127.0.0.1:{port}/v1" for name, port in ports.items()}
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        os.environ.pop(cpu_engine.DTYPE_ENV, None)


def run(coro):
    return asyncio.run(coro)


async def started(url: str, label: str = "FP8", key: str | None = KEY, **kw) -> OpenAIEngine:
    engine = OpenAIEngine(RemoteEngineSpec.parse(f"{label}={url}"), key, **kw)
    await engine.start()
    return engine


async def collect(engine, prompt=PROMPT, sampling=GREEDY, chat=True):
    return [c async for c in engine.stream(GenerationRequest("r1", sampling, prompt=prompt, chat=chat))]


def test_engine_spec_parsing_names_the_argument():
    spec = RemoteEngineSpec.parse("FP8=http://h:8001#my-model")
    assert (spec.label, spec.base_url, spec.model, spec.root_url) == ("FP8", "http://h:8001/v1", "my-model", "http://h:8001")
    for bad in ("http://h:8001/v1", "FP8=", "FP8=ftp://h/v1", "FP8=localhost:8001"):
        with pytest.raises(RequestError, match="engine"):
            RemoteEngineSpec.parse(bad)


def test_metrics_parser_reads_vllms_cache_config_info():
    text = ('# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n'
            'vllm:cache_config_info{block_size="16",cache_dtype="fp8",engine="0",gpu_memory_utilization="0.42",'
            'num_gpu_blocks="4096"} 1.0\nvllm:num_requests_running{engine="0",model_name="m"} 3.0\n')
    metrics = parse_metrics(text)
    assert cache_facts(metrics) == {"kv_cache_dtype": "fp8", "kv_tokens": 65536, "gpu_memory_utilization": 0.42}
    assert metrics["vllm:num_requests_running"][0][1] == 3.0


def test_streams_the_same_tokens_as_the_in_process_engine_with_timestamps(servers):
    from playground.engines.cpu_engine import CpuEngine

    async def go():
        remote = await started(servers["fp8"])
        try:
            chunks = await collect(remote)
        finally:
            await remote.stop()
        local = CpuEngine("FP8", fp8=True)
        await local.start()
        try:
            local_chunks = await collect(local)
        finally:
            await local.stop()
        return remote, chunks, local_chunks

    remote, chunks, local_chunks = run(go())
    assert remote.info.model == "smollm2-135m-instruct-fp8" and remote.info.max_model_len == 2048
    assert remote.precision == "fp8"
    ids = [t for c in chunks for t in c.token_ids]
    assert ids == [t for c in local_chunks for t in c.token_ids]  # the protocol path changes nothing
    assert "Paris" in "".join(c.text for c in chunks)
    times = [c.t_s for c in chunks]
    assert times == sorted(times) and times[-1] > times[0]  # one arrival time per token
    assert chunks[-1].finished and chunks[-1].finish_reason in ("stop", "length")
    assert chunks[-1].num_output_tokens == len(ids) and chunks[0].num_prompt_tokens > 5


def test_a_comparison_over_http_has_metrics_and_a_quality_diff(servers, tmp_path):
    """The Playground service, unchanged, over two servers: both columns, the ratio, the KL diff."""
    from playground.runtime import EngineRuntime, SupervisedEngine
    from playground.service import ComparisonResult, Playground

    engines = [SupervisedEngine(lambda: OpenAIEngine(RemoteEngineSpec.parse(f"FP16={servers['fp16']}"), KEY)),
               SupervisedEngine(lambda: OpenAIEngine(RemoteEngineSpec.parse(f"FP8={servers['fp8']}"), KEY))]
    playground = Playground(engines, EngineRuntime(), tmp_path, "openai")
    for e in engines:
        playground.runtime.call(e.start())

    async def go():
        async for item in playground.compare(PROMPT, GREEDY, mode="fair"):
            if isinstance(item, ComparisonResult):
                return item

    result = run(go())
    a, b = result.snapshots
    assert not a.error and not b.error and a.decode_tok_s > 0 and b.decode_tok_s > 0
    assert result.quality[0] is not None and result.quality[0].mean_kl > 0 and result.quality[0].positions > 0
    assert "Paris" in a.texts[0]
    assert playground.available_precisions() == ["fp16", "fp8"]


def test_closing_the_stream_aborts_the_request_on_the_server(servers):
    async def go():
        engine = await started(servers["fp8"])
        long = SamplingSettings(temperature=0.0, max_tokens=400, ignore_eos=True)
        stream = engine.stream(GenerationRequest("long", long, prompt=PROMPT, chat=True))
        await anext(stream)
        during = (await engine.server_facts())["num_requests_running"]
        await stream.aclose()  # what a Stop button or a departed web client does
        deadline = time.time() + 5
        after = during
        while time.time() < deadline and after:
            await asyncio.sleep(0.1)
            after = (await engine.server_facts())["num_requests_running"]
        await engine.stop()
        return during, after

    during, after = run(go())
    assert during == 1 and after == 0


@pytest.mark.parametrize("case, message", [
    ("down", "not reachable"), ("wrong_url", "404"), ("bad_key", "401"), ("no_model", "does not serve 'nope'"),
])
def test_server_errors_are_clear_and_fast(servers, case, message):
    port = servers["fp8"].rsplit(":", 1)[1].split("/")[0]
    url, key = {"down": (f"http://127.0.0.1:{free_port()}/v1", KEY),
                "wrong_url": (f"http://127.0.0.1:{port}/wrong/v1", KEY),
                "bad_key": (servers["fp8"], "wrong"),
                "no_model": (servers["fp8"] + "#nope", KEY)}[case]
    t = time.perf_counter()
    with pytest.raises(RequestError, match=message):
        run(started(url, key=key))
    assert time.perf_counter() - t < 10


def test_a_stream_that_stops_mid_answer_is_an_error_not_a_hang(servers):
    async def go():
        engine = await started(servers["drop"], key=None)
        try:
            return await collect(engine, sampling=SamplingSettings(temperature=0.0, max_tokens=50, ignore_eos=True))
        finally:
            await engine.stop()

    with pytest.raises(RequestError, match="ended the stream|closed the connection"):
        run(go())


def test_a_server_that_never_answers_times_out(servers):
    """A socket that accepts and then says nothing: the read timeout ends the request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    t = time.perf_counter()
    try:
        with pytest.raises(RequestError, match="did not answer in time"):
            run(started(url, read_timeout_s=1.0))
    finally:
        listener.close()
    assert time.perf_counter() - t < 8


def test_one_failing_server_leaves_the_other_column_working(servers):
    from playground.compare import compare

    async def go():
        good = await started(servers["fp8"])
        bad = await started(servers["drop"], label="Dropping", key=None)
        final = None
        sampling = SamplingSettings(temperature=0.0, max_tokens=20, ignore_eos=True)
        async for final in compare([good, bad], [PROMPT], sampling, mode="race", chat=True):
            pass
        await good.stop()
        await bad.stop()
        return final

    ok, failed = run(go())
    assert ok.error is None and ok.output_tokens == 20
    assert failed.error and "Dropping" in failed.error


def test_bench_cli_sweeps_running_servers(servers, tmp_path, monkeypatch, capsys):
    from playground.bench.__main__ import main

    monkeypatch.setenv("PLAYGROUND_TEST_KEY", KEY)
    code = main(["--backend", "openai", "--engine", f"FP16={servers['fp16']}", "--engine", f"FP8={servers['fp8']}",
                 "--api-key-env", "PLAYGROUND_TEST_KEY", "--concurrency", "1,2", "--input-len", "16",
                 "--output-len", "8", "--repeats", "1", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["fp16"], ["fp8"])]
    assert {(r[0], r[1]) for r in rows} == {("fp16", "1"), ("fp16", "2"), ("fp8", "1"), ("fp8", "2")}
    assert all(float(r[2]) > 0 for r in rows)


def test_serve_prints_the_vllm_line_it_would_run(capsys):
    from planner import EngineConfig
    from playground.serve import main

    assert main(["--model", "llama-3-8b", "--precision", "fp8", "--gpu", "1", "--port", "8001",
                 "--gpu-memory-utilization", "0.85", "--dry-run"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("CUDA_VISIBLE_DEVICES=1 vllm serve llama-3-8b ")
    assert "--port 8001" in line and "--quantization fp8" in line
    config = EngineConfig.parse_command(line)
    assert (config.quantization, config.gpu_memory_utilization, config.gpu_ids) == ("fp8", 0.85, (1,))


def test_app_refuses_an_openai_backend_without_two_engines():
    import subprocess

    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--backend", "openai", "--engine", "FP8=http://h:1/v1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode != 0 and "2 to 4 --engine" in out.stderr


def test_the_app_with_the_openai_backend_serves_comparisons(servers, tmp_path, monkeypatch):
    """./run.sh app --backend openai --engine ...: the page's API answers from the two servers; the
    planner's note says what it could not size and where the numbers come from."""
    from gradio_client import Client

    port = free_port()
    monkeypatch.setenv("PLAYGROUND_TEST_KEY", KEY)
    proc = start_server([str(ROOT / "app.py"), "--backend", "openai", "--engine", f"FP16={servers['fp16']}",
                         "--engine", f"FP8={servers['fp8']}", "--api-key-env", "PLAYGROUND_TEST_KEY",
                         "--port", str(port), "--data-dir", str(tmp_path)], f"http://127.0.0.1:{port}/",
                        tmp_path / "app.log")
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        deadline = time.time() + 60
        while time.time() < deadline and not all(e["ready"] for e in client.predict(api_name="/engines")):
            time.sleep(0.5)
        facts = client.predict(api_name="/engines")
        assert [(e["label"], e["backend"], e["max_model_len"]) for e in facts] == [("FP16", "openai", 2048),
                                                                                   ("FP8", "openai", 2048)]
        assert all("planner" in e["planner_note"] for e in facts)
        out = client.predict(PROMPT, api_name="/compare")
        assert [c["label"] for c in out["columns"]] == ["FP16", "FP8"]
        assert all("Paris" in c["texts"][0] for c in out["columns"]) and out["decode_ratio"] > 0
    finally:
        proc.terminate()
        proc.wait(30)
