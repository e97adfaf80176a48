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
    assert "float8_e4m3fn" in engines[1]["quantization"]


def test_plan_endpoint_is_the_planner(client):
    from planner import gpu_preset, model_spec, plan

    out = client.predict("llama-3-8b", "h100-sxm", "fp8", "fp8", "bfloat16", 0.9, 4096, 1, api_name="/plan")
    expected = plan(model_spec("llama-3-8b"), gpu_preset("h100-sxm"), quantization="fp8", kv_cache_dtype="fp8",
                    dtype="bfloat16", gpu_memory_utilization=0.9, max_model_len=4096)
    assert out["kv_tokens"] == expected.kv_tokens and out["fits"] is True


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
    from playground.ui.api import ENDPOINTS

    assert sorted(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == sorted(f"/{e}" for e in ENDPOINTS)


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
