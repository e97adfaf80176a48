"""The app on the CPU backend, driven through its named API endpoints with gradio_client."""

import argparse

import pytest
from gradio_client import Client

import app

SAMPLING = dict(temperature=0.0, top_p=1.0, top_k=0, max_tokens=8, seed=0, repetition_penalty=1.0,
                presence_penalty=0.0, frequency_penalty=0.0, stop="")


@pytest.fixture(scope="module")
def client(cpu_app):
    return Client(cpu_app, verbose=False)


def test_compare_streams_both_engines_and_reports_metrics(client):
    result = client.predict("Why FP8?\n---\nWhat fits on my GPU?", *SAMPLING.values(), api_name="/compare")
    labels = [c["label"] for c in result["columns"]]
    assert labels == ["16-bit", "FP8"]
    for column in result["columns"]:
        assert column["error"] is None and len(column["texts"]) == 2 and all(column["texts"])
        assert 0 < column["output_tokens"] <= 16
        assert column["ttft_s"] > 0 and column["decode_tok_s"] > 0 and column["e2e_s"] > column["ttft_s"]
    assert result["mode"] == "fair" and result["decode_ratio"] > 0
    assert len(result["quality"]) == 2 and all(0 <= q["token_agreement"] <= 1 for q in result["quality"] if q)


def test_generate_and_engines_endpoints(client):
    out = client.predict("Hello", "FP8", 0.0, 5, 0, api_name="/generate")
    assert out["label"] == "FP8" and out["output_tokens"] == 5
    engines = client.predict(api_name="/engines")
    assert [e["backend"] for e in engines] == ["cpu", "cpu"]
    assert "E4M3" in engines[1]["quantization"] and "per-token" in engines[1]["quantization"]
    assert engines[0]["dtype"].split(" ")[0] in ("bfloat16", "float32")  # the compute dtype measured at start


def test_plan_endpoint_is_the_planner(client):
    from planner import gpu_preset, model_spec, plan

    out = client.predict("llama-3-8b", "h100-sxm", "fp8", "fp8", "bfloat16", 0.9, 4096, 1, api_name="/plan")
    expected = plan(model_spec("llama-3-8b"), gpu_preset("h100-sxm"), quantization="fp8", kv_cache_dtype="fp8",
                    dtype="bfloat16", gpu_memory_utilization=0.9, max_model_len=4096)
    assert out["kv_tokens"] == expected.kv_tokens and out["fits"] is True


def test_plan_precisions_carries_the_predicted_speed(client):
    from planner import gpu_preset
    from planner.speed import predict_speed

    rows = client.predict("llama-3-8b", "h200", 0.9, 4096, 4096, 32, 1, 512, 256, api_name="/plan_precisions")
    fp8 = next(r for r in rows if r["precision"] == "fp8")
    expected = predict_speed("llama-3-8b", gpu_preset("h200"), quantization="fp8", max_model_len=4096)
    assert fp8["speed"]["points"][0]["decode_tok_s"] == pytest.approx(expected.at(1).decode_tok_s)
    assert fp8["speed"]["points"][0]["spread"] > 0 and fp8["speed"]["vllm_version"] == "0.25.1"


@pytest.mark.parametrize("prompt, overrides, message", [
    ("", {}, "prompts: is empty"),
    ("hi", {"temperature": -1.0}, "temperature"),
    ("hi", {"top_p": 1.5}, "top_p"),
    ("hi", {"max_tokens": 0}, "max_tokens"),
    ("hi", {"max_tokens": 10_000}, "max_tokens"),
    ("x" * 1_000_000, {}, "prompt"),
    ("word " * 2100, {"max_tokens": 64}, "max_model_len"),
])
def test_bad_input_is_a_clear_error_and_the_app_keeps_serving(client, prompt, overrides, message):
    with pytest.raises(Exception, match=message):
        client.predict(prompt, *{**SAMPLING, **overrides}.values(), api_name="/compare")
    ok = client.predict("still there?", *SAMPLING.values(), api_name="/compare")
    assert all(c["error"] is None for c in ok["columns"])


def test_plan_bad_input_names_the_argument(client):
    with pytest.raises(Exception, match="gpu_memory_utilization"):
        client.predict("llama-3-8b", "h100-sxm", "none", "auto", "auto", 1.5, 4096, 1, api_name="/plan")
    with pytest.raises(Exception, match="Did you mean"):
        client.predict("llama3-8b", "h100-sxm", "none", "auto", "auto", 0.9, 4096, 1, api_name="/plan")


def test_benchmark_endpoint_runs_a_small_sweep_and_saves_it(client):
    result = client.predict("1,2", 8, 4, 1, "fp16,fp8", api_name="/benchmark")
    assert result["status"] == "complete" and result["run_id"] >= 1
    assert [(p["precision"], p["concurrency"]) for p in result["points"]] == [("fp16", 1), ("fp16", 2), ("fp8", 1), ("fp8", 2)]


def test_only_the_documented_endpoints_are_published(client):
    """The documented ones, plus /direct_load because this app runs with --load-test."""
    from playground.ui.api import ENDPOINTS

    published = sorted(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert published == sorted(f"/{e}" for e in (*ENDPOINTS, "direct_load"))


@pytest.mark.parametrize("backend, device", [("cpu", "the CPU"), ("vllm", "the GPU")])
def test_the_compare_api_docs_name_what_the_engines_share_on_this_backend(backend, device):
    """Gradio shows each endpoint's description as its API docs: a CPU run's claim no GPU."""
    import gradio as gr
    from types import SimpleNamespace

    from playground.ui import api

    with gr.Blocks() as demo:
        api.register(SimpleNamespace(backend=backend), None)
    docs = demo.get_api_info()["named_endpoints"]
    assert f"with {device} to itself" in docs["/compare"]["description"]
    if backend == "cpu":
        assert "GPU" not in docs["/compare"]["description"] + docs["/generate"]["description"]


def test_the_page_answers_while_the_engines_are_still_loading(cpu_app):
    from conftest import CPU_APP_STARTUP

    engines = CPU_APP_STARTUP["engines_at_page_up"]
    assert CPU_APP_STARTUP["page_up_s"] < 60
    assert not all(e["ready"] for e in engines), "the engines were ready before the page: nothing was shown early"
    assert all(e["stage"] in ("waiting to start", "ready") or e["stage"].startswith("starting") for e in engines)


def test_a_client_that_goes_away_stops_its_request_in_the_engine(cpu_app, client):
    """A streaming /generate whose HTTP client disconnects: the engine's running count drops to 0."""
    import httpx

    http = httpx.Client(timeout=60)
    event_id = http.post(f"{cpu_app}gradio_api/call/generate",
                         json={"data": ["Tell me a long story about GPUs", "FP8", 0.0, 500, 0, True]}).json()["event_id"]
    _disconnect_stops_the_engine(client, http, http.stream("GET", f"{cpu_app}gradio_api/call/generate/{event_id}"))


def _disconnect_stops_the_engine(client, http, stream) -> None:
    """Open ``stream`` (a streaming /generate on FP8), wait until the engine runs it, hang up: the running count
    must drop to 0."""
    import time

    def running():
        return {e["label"]: e["num_running"] for e in client.predict(api_name="/engines")}["FP8"]

    stream.__enter__()
    deadline = time.time() + 60
    while time.time() < deadline and running() == 0:
        time.sleep(0.2)
    assert running() == 1
    stream.__exit__(None, None, None)
    http.close()
    deadline = time.time() + 15
    while time.time() < deadline and running():
        time.sleep(0.2)
    assert running() == 0


def test_the_web_load_script_runs_against_the_app(cpu_app, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    http = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "web_load.py"), "--url", cpu_app, "--users", "2",
                           "--api", "generate", "--max-tokens", "4", "--protocol", "http", "--no-direct",
                           "--json", str(tmp_path / "http.json")], capture_output=True, text=True, timeout=300)
    assert http.returncode == 0, http.stderr
    [row] = json.loads((tmp_path / "http.json").read_text())
    assert row["protocol"] == "http" and row["web"]["completed"] == 2 and row["web"]["output_tokens"] == 8
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "web_load.py"), "--url", cpu_app, "--users", "1,2",
                          "--api", "generate", "--max-tokens", "4", "--processes", "2", "--json", str(tmp_path / "rows.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["web"]["users"] for r in rows] == [1, 2]
    for r in rows:
        assert r["web"]["errors"] == 0 and r["web"]["completed"] == r["web"]["users"]
        assert r["web"]["output_tokens"] == 4 * r["web"]["users"]  # max_tokens each (no early end in 4 tokens)
        assert r["direct"]["completed"] == r["web"]["users"] and r["direct"]["output_tok_s"] > 0
        assert r["web_over_direct"] > 0 and 0 <= r["generator_cpu_share"] < 1
    assert "web/direct" in out.stdout


def test_behind_auth_a_visitor_without_the_password_gets_only_the_login(tmp_path, monkeypatch):
    """--auth: the page, its config, the API, files and the queue answer 401 or the bare login page until
    the login; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address when no flag does."""

    import httpx
    from conftest import ROOT, free_port, start_server

    port = free_port()
    monkeypatch.setenv("GRADIO_SERVER_PORT", str(port))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "127.0.0.1")
    url = f"http://127.0.0.1:{port}/"
    # remote engines at a closed port: no model to load, the web is what is tested
    proc = start_server([str(ROOT / "app.py"), "--backend", "openai", "--engine", "A=http://127.0.0.1:9/v1",
                         "--engine", "B=http://127.0.0.1:9/v1", "--auth", "me:secret", "--data-dir", str(tmp_path)],
                        url + "config", tmp_path / "app.log")
    try:
        with httpx.Client(timeout=10) as anonymous:
            page = anonymous.get(url, headers={"Accept": "text/html"})
            assert page.status_code == 200 and "FP8 LLM playground" not in page.text
            for path in ("config", "gradio_api/info", "gradio_api/openapi.json", "gradio_api/file=/etc/passwd",
                         "gradio_api/queue/status", "gradio_api/file=" + str(tmp_path / "app.log")):
                assert anonymous.get(url + path).status_code == 401, path
            assert anonymous.post(url + "gradio_api/call/plan", json={"data": ["llama-3-8b"]}).status_code == 401
            assert anonymous.post(url + "login", data={"username": "me", "password": "wrong"}).status_code >= 400
            # the plain streaming API asks for the same login: Basic credentials or the page's cookie
            # (a request that fails validation: admitted callers get its 400, the engines here are unreachable)
            body = {"prompts": "hi", "temperature": -1}
            assert anonymous.post(url + "api/v1/compare", json=body).status_code == 401
            assert anonymous.post(url + "api/v1/compare", json=body, auth=("me", "wrong")).status_code == 401
            admitted = anonymous.post(url + "api/v1/compare", json=body, auth=("me", "secret"))
            assert admitted.status_code == 400 and admitted.json()["argument"] == "temperature"
        with httpx.Client(timeout=10) as user:
            assert user.post(url + "login", data={"username": "me", "password": "secret"}).status_code == 200
            assert user.get(url + "config").status_code == 200
            assert user.post(url + "api/v1/compare", json={"prompts": "hi", "temperature": -1}).status_code == 400
            assert "FP8 LLM playground" in user.get(url, headers={"Accept": "text/html"}).text
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_server_path_is_not_read_over_the_web(client):
    with pytest.raises(Exception, match="not a catalog model"):
        client.predict("../../etc/passwd", "h100-sxm", api_name="/plan")


def parse(argv):
    return app.check_launch_args(app.build_parser().parse_args(argv))


def test_share_needs_auth_unless_insecure_is_explicit():
    with pytest.raises(SystemExit, match="--auth"):
        parse(["--share"])
    assert parse(["--share", "--auth", "me:secret"]) == ("me", "secret")
    assert parse(["--share", "--insecure-share"]) is None
    with pytest.raises(SystemExit, match="user:password"):
        parse(["--auth", "nopassword"])


def test_dtype_fp8_is_refused_with_the_real_options():
    with pytest.raises(SystemExit, match="quantization='fp8'"):
        parse(["--backend", "vllm", "--model", "m", "--dtype", "fp8"])
    assert isinstance(app.build_parser().parse_args([]), argparse.Namespace)


def test_an_api_call_builds_no_block_configuration():
    """Gradio's SessionState builds every block's config per session; ours builds them on first use
    (a deep link needs them all), so an API call that opens a session builds none."""
    import gradio as gr
    from gradio.blocks import BlocksConfig
    from gradio.state_holder import SessionState

    from playground.ui.sessions import make_session_configs_lazy

    with gr.Blocks() as demo:
        box = gr.Textbox(value="kept")
        gr.Number(value=3)
    assert make_session_configs_lazy()
    calls = []
    real = BlocksConfig.config_for_block

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    BlocksConfig.config_for_block = staticmethod(counting)
    try:
        session = SessionState(demo)
        assert calls == []
        assert session.config_values[box._id]["props"]["value"] == "kept" and calls == [box._id]
        everything = dict(session.config_values.items())  # what a deep link reads
        assert box._id in everything and len(everything) == len(session.config_values) >= 2
    finally:
        BlocksConfig.config_for_block = staticmethod(real)


def test_the_pages_stream_updates_at_most_every_half_second(cpu_app):
    """A headless client receives exactly what the page receives (the undocumented /ui_run event): its updates
    come at most every 0.5 s of the run, however fast or slow the machine, so formatting the page cannot take
    the engines' CPU token by token; the chart comes with one update in four or so, and whole at the end. (A decode-speed comparison would be a timed test: on a 2-core runner one
    24-token run varies by about 12% either way.)"""
    import json
    import time

    import httpx

    prompt, max_tokens = "Explain in two sentences why FP8 inference can be faster.", 24
    with httpx.Client(timeout=300) as http:
        event_id = http.post(f"{cpu_app}gradio_api/call/ui_run", json={"data": [
            prompt, "fair", True, 0.0, 1.0, 0, max_tokens, 0, 1.0, 0.0, 0.0, ""]}).json()["event_id"]
        updates, charts, event, last, start = 0, 0, None, None, time.monotonic()
        with http.stream("GET", f"{cpu_app}gradio_api/call/ui_run/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("generating", "complete"):
                    updates += event == "generating"
                    last = json.loads(line[5:])
                    charts += event == "generating" and "value" in last[5]  # gr.skip() carries none
                    if event == "complete":
                        break
        wall = time.monotonic() - start
    assert "decode **" in last[2] and "decode **" in last[4]  # both columns finished, with their speeds
    # 2 x 24 tokens one by one would be 48 updates or more; throttled: one per 0.5 s, and the start and the end
    assert updates <= wall / 0.5 + 3, (updates, wall)
    # the chart, plotly's redraw in the page, every 2 s, at each line's first token, and in the final update
    assert 1 <= charts <= wall / 2.0 + 2 + 2, (charts, updates, wall)
    lines = {trace["name"]: len(trace["x"]) for trace in json.loads(last[5]["value"]["plot"])["data"]}
    assert set(lines) == {"16-bit", "FP8"} and min(lines.values()) > 1, lines


def test_a_deep_link_taken_after_a_run_holds_the_runs_final_chart(cpu_app):
    """The chart skips most streamed updates; the session Gradio saves for a deep link still holds the
    chart of the run's last update, both lines point for point (the page's own updates, through the queue)."""
    import json
    import uuid

    import httpx

    session = uuid.uuid4().hex
    with httpx.Client(timeout=300) as http:
        config = http.get(f"{cpu_app}config").json()
        fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "ui_run")
        http.post(f"{cpu_app}gradio_api/queue/join", json={"data": [
            "Explain in two sentences why FP8 inference can be faster.", "fair", True, 0.0, 1.0, 0, 24, 0, 1.0, 0.0,
            0.0, ""], "fn_index": fn_index, "session_hash": session}).raise_for_status()
        with http.stream("GET", f"{cpu_app}gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    final = message["output"]["data"][5]["value"]
                    break
        link = http.get(f"{cpu_app}gradio_api/deep_link", params={"session_hash": session}).json()
        components = http.get(f"{cpu_app}config", params={"deep_link": link}).json()["components"]
    chart = next(c for c in components if c["props"].get("elem_id") == "speed-chart")["props"]["value"]
    lines = {trace["name"]: len(trace["x"]) for trace in json.loads(chart["plot"])["data"]}
    assert chart == final and set(lines) == {"16-bit", "FP8"} and min(lines.values()) > 1, lines


def test_the_chart_is_redrawn_every_two_seconds_and_when_a_line_starts():
    from playground.ui.playground_tab import CHART_INTERVAL_S, chart_due

    assert chart_due(10.0, None, 0, 0)  # the first update
    assert not chart_due(10.5, 10.0, 1, 1) and not chart_due(10.0 + CHART_INTERVAL_S - 0.01, 10.0, 1, 1)
    assert chart_due(10.0 + CHART_INTERVAL_S, 10.0, 1, 1)
    assert chart_due(10.5, 10.0, 1, 2)  # the next engine's first token


def _sse(response) -> list[tuple[str, dict]]:
    import json

    events, kind = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            events.append((kind, json.loads(line[5:])))
    return events


def test_the_plain_streaming_api_answers_in_one_request_like_the_gradio_api(cpu_app, client):
    """POST /api/v1/generate and /api/v1/compare: partial events, then the same final answer as the Gradio API."""
    import httpx

    with httpx.Client(timeout=120) as http:
        with http.stream("POST", f"{cpu_app}api/v1/generate",
                         json={"prompt": "Name three colours.", "engine": "FP8", "max_tokens": 24, "seed": 0}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = _sse(r)
        kinds = [k for k, _ in events]
        assert kinds[-1] == "complete" and set(kinds[:-1]) <= {"partial"}
        final = events[-1][1]
        assert final["output_tokens"] == 24 and final["label"] == "FP8" and "partial" not in final
        same = client.predict("Name three colours.", "FP8", 0.0, 24, 0, True, api_name="/generate")
        assert same["texts"] == final["texts"]  # the same engine, settings and seed through either API
        with http.stream("POST", f"{cpu_app}api/v1/compare", json={"prompts": "Hi", "max_tokens": 8}) as r:
            compare = _sse(r)[-1]
        assert compare[0] == "complete" and [c["label"] for c in compare[1]["columns"]] == ["16-bit", "FP8"]


@pytest.mark.parametrize("body, status, argument", [
    ({"prompt": "hi", "temperature": -1}, 400, "temperature"),
    ({"prompt": "hi", "engine": "FP9"}, 400, "engine"),
    ({"prompt": "hi", "tempreature": 0.5}, 400, "tempreature"),
    ({"prompt": "   "}, 400, "prompt"),
    ([1, 2], 400, "body"),
    ({"engine": "FP8"}, 400, "prompt"),
    ({"prompt": ["a", "b"]}, 400, "prompt"),
    ({"prompt": "hi", "max_tokens": 2.5}, 400, "max_tokens"),
    ({"prompt": "hi", "max_tokens": 1e300}, 400, "max_tokens"),
])
def test_the_plain_api_refuses_a_bad_request_before_streaming_and_names_the_argument(cpu_app, body, status, argument):
    import httpx

    r = httpx.post(f"{cpu_app}api/v1/generate", json=body, timeout=60)
    assert r.status_code == status and r.json()["argument"] == argument, r.text


def test_a_plain_api_client_that_goes_away_stops_its_request_in_the_engine(cpu_app, client):
    import httpx

    http = httpx.Client(timeout=60)
    _disconnect_stops_the_engine(client, http, http.stream(
        "POST", f"{cpu_app}api/v1/generate",
        json={"prompt": "Tell me a long story about GPUs", "engine": "FP8", "max_tokens": 500}))


@pytest.mark.parametrize("n", [1, 5])
def test_a_column_count_outside_two_to_four_names_engine_and_the_range(n):
    with pytest.raises(SystemExit) as e:
        parse([*(x for i in range(n) for x in ("--engine", f"c{i}=smollm2-135m"))])
    assert "--engine" in str(e.value) and "2 to 4" in str(e.value)


def test_a_malformed_column_is_refused_at_start_with_the_flag_named():
    args = app.build_parser().parse_args(["--engine", "A=smollm2-135m", "--engine", "B=smollm2-135m,quant=fp8"])
    with pytest.raises(SystemExit, match="engine: 'B=smollm2-135m,quant=fp8': 'quant=fp8' is not a column setting"):
        app.build_engines(args)


def test_cpu_columns_become_one_engine_each_with_its_own_folder_and_settings(tmp_path):
    args = app.build_parser().parse_args(["--engine", "16-bit=smollm2-135m", "--engine", "FP8=smollm2-135m,quantization=fp8",
                                          "--engine", f"FP8 checkpoint={tmp_path}"])
    engines, _ = app.build_engines(args)
    assert [(e.info.label, e.engine.folder, e.engine.fp8) for e in engines] == [
        ("16-bit", None, False), ("FP8", None, True), ("FP8 checkpoint", str(tmp_path), False)]


class FakeGpu:
    """An H200 as NVML would read it, empty (the split runs without a GPU)."""

    def to_spec(self):
        from planner import gpu_preset

        return gpu_preset("h200")


def vllm_columns(monkeypatch, tmp_path, *columns):
    from playground.model_dirs import write_model_dir

    monkeypatch.setattr(app, "read_gpus", lambda index=None: [FakeGpu()])
    monkeypatch.setattr(app, "visible_gpu_index", lambda: 0)
    argv = ["--backend", "vllm"]
    for label, name, settings in columns:
        folder = tmp_path / name
        if name != "empty" and not folder.exists():
            write_model_dir(name, folder)
        folder.mkdir(exist_ok=True)
        argv += ["--engine", f"{label}={folder}{settings}"]
    args = app.build_parser().parse_args(argv)
    app.check_launch_args(args)
    engines, _ = app.build_engines(args)
    return engines


def test_vllm_columns_get_the_planners_share_and_a_bad_folder_only_its_own_error(monkeypatch, tmp_path):
    engines = vllm_columns(monkeypatch, tmp_path, ("BF16", "llama-3.1-8b", ""), ("FP8", "llama-3.1-8b", ",quantization=fp8"),
                           ("FP8 KV", "llama-3.1-8b", ",quantization=fp8,kv-cache-dtype=fp8"), ("Broken", "empty", ""))
    configs = [e.engine._resolve() for e in engines[:3]]  # what each engine starts with (vLLM is not imported)
    assert [c.quantization for c in configs] == [None, "fp8", "fp8"] and configs[2].kv_cache_dtype == "fp8"
    assert all(c.model.endswith("llama-3.1-8b") for c in configs)
    assert sum(c.gpu_memory_utilization for c in configs) < 1 and configs[1].gpu_memory_utilization < configs[0].gpu_memory_utilization
    with pytest.raises(ValueError, match="has no config.json"):
        engines[3].engine._resolve()


def test_more_vllm_columns_than_fit_are_refused_by_the_planner_before_any_engine_starts(monkeypatch, tmp_path):
    engines = vllm_columns(monkeypatch, tmp_path, *((f"70B {i}", "llama-3.1-70b", "") for i in range(3)))
    for e in engines:
        with pytest.raises(ValueError, match="do not fit on .*cannot hold"):
            e.engine._resolve()


def test_three_columns_answer_through_the_api_each_with_its_diff_against_the_first(cpu_app_columns):
    url, labels = cpu_app_columns
    result = Client(url, verbose=False).predict("What is the capital of France?", *SAMPLING.values(), api_name="/compare")
    assert [c["label"] for c in result["columns"]] == labels
    first, *others = result["columns"]
    assert first["error"] is None and "quality" not in first
    for column in others:
        assert column["error"] is None and column["texts"][0] and column["decode_ratio"] > 0
        (diff,) = column["quality"]
        assert diff["positions"] > 0 and 0 <= diff["token_agreement"] <= 1 and diff["kl_p99"] >= diff["mean_kl"] >= 0
        assert "token_kls" not in diff  # per-token values stay in the library
    assert result["columns"][1]["quality"][0]["mean_kl"] > 1e-4  # online FP8 changes the distribution
