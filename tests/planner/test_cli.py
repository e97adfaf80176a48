import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, timeout=120)


def test_cli_prints_the_plan_for_a_catalog_model_on_a_preset():
    out = run("--model", "llama-2-7b", "--gpu", "h100-sxm", "--max-model-len", "2048")
    from planner import gpu_preset, plan

    assert out.returncode == 0
    kv_tokens = plan("llama-2-7b", gpu_preset("h100-sxm"), max_model_len=2048).kv_tokens
    assert abs(kv_tokens - 116_768) / 116_768 < 0.005  # what vLLM 0.25.1 logged on the H100
    assert f"KV tokens           {kv_tokens:,}" in out.stdout
    assert "FITS" in out.stdout


def test_cli_json_matches_the_library():
    from planner import gpu_preset, model_spec, plan

    out = run("--model", "qwen2.5-7b", "--gpu", "h100-sxm", "--quantization", "fp8", "--json")
    data = json.loads(out.stdout)
    assert data["kv_tokens"] == plan(model_spec("qwen2.5-7b"), gpu_preset("h100-sxm"), quantization="fp8").kv_tokens


def test_cli_without_a_driver_explains_how_to_use_a_preset(monkeypatch, capsys):
    # NVML is made to fail here, so the test means the same on a GPU host and on CI.
    import pynvml

    from planner import cli

    def no_driver():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    assert cli.main(["--model", "llama-2-7b"]) == 2
    err = capsys.readouterr().err
    assert "--gpu h100-sxm" in err and "Traceback" not in err


def test_cli_need_prints_the_smallest_utilization_and_the_serve_line():
    from planner import EngineConfig, gpu_preset, min_utilization_for

    out = run("--model", "qwen3-30b-a3b", "--gpu", "h100-sxm", "--quantization", "fp8", "--dtype", "bfloat16",
              "--need", "32x8192")
    assert out.returncode == 0, out.stderr
    reason, serve, comment, pinned = out.stdout.strip().splitlines()
    answer = min_utilization_for("qwen3-30b-a3b", gpu_preset("h100-sxm"), concurrency=32, context_len=8192,
                                 quantization="fp8", dtype="bfloat16")
    assert reason == answer.reason and serve == answer.serve_command and comment.startswith("# or pin")
    config = EngineConfig.parse_command(serve)
    assert (config.max_model_len, config.max_num_seqs, config.quantization) == (8192, 32, "fp8")
    assert config.gpu_memory_utilization == answer.plan.gpu_memory_utilization < 0.9
    pinned_config = EngineConfig.parse_command(pinned)
    assert pinned_config == config.__class__(**{**config.__dict__, "kv_cache_memory_bytes": answer.kv_cache_memory_bytes})


def test_a_pinned_kv_cache_holds_exactly_the_workload():
    """--kv-cache-memory-bytes: vLLM reserves that much KV per GPU whatever the utilization; planned back,
    it holds the 32 x 8,192 tokens asked for, and one block fewer would not."""
    from dataclasses import replace

    from planner import gpu_preset, min_utilization_for, plan

    gpu = gpu_preset("h100-sxm")
    answer = min_utilization_for("llama-3.1-8b", gpu, concurrency=32, context_len=8192, dtype="bfloat16")
    pinned = replace(answer.plan.config, kv_cache_memory_bytes=answer.kv_cache_memory_bytes)
    p = plan(pinned, gpu)
    assert p.kv_cache_bytes == answer.kv_cache_memory_bytes and p.kv_tokens == 32 * 8192 and p.fits
    assert p.requested_bytes == p.weights_bytes + p.activation_peak_bytes + p.non_torch_bytes + p.kv_cache_bytes
    smaller = plan(replace(pinned, kv_cache_memory_bytes=answer.kv_cache_memory_bytes - 16 * p.kv_bytes_per_token), gpu)
    assert smaller.kv_tokens == 32 * 8192 - 16
    assert answer.kv_cache_memory_bytes == 32 * 8192 * 131_072  # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 x 2 B


def test_cli_need_that_cannot_fit_exits_1_and_bad_need_names_the_argument():
    out = run("--model", "llama-3.1-70b", "--gpu", "rtx-4090", "--need", "8x4096")
    assert out.returncode == 1 and "do not fit" in out.stdout
    out = run("--model", "llama-2-7b", "--gpu", "h100-sxm", "--need", "lots")
    assert out.returncode == 2 and out.stderr.startswith("error: need")


def test_cli_bad_input_is_one_line_naming_the_argument():
    out = run("--model", "llama-2-7b", "--gpu", "h100-sxm", "--gpu-memory-utilization", "1.5")
    assert out.returncode == 2 and out.stderr.startswith("error: gpu_memory_utilization")
    out = run("--model", "llama-3-8b", "--gpu", "h100-sxm", "--tensor-parallel-size", "3")
    assert out.returncode == 2 and "tensor_parallel_size" in out.stderr


def test_cli_does_not_fit_exits_1_with_advice():
    out = run("--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--max-model-len", "8192")
    assert out.returncode == 1
    assert "DOES NOT FIT" in out.stdout and "tensor_parallel_size=2" in out.stdout


def test_cli_largest_model():
    out = run("--largest-model", "--gpu", "l40s", "--quantization", "fp8")
    assert out.returncode == 0 and "qwen2.5-32b" in out.stdout


def test_a_plan_that_does_not_fit_prints_each_fix_as_a_serve_line():
    out = run("--model", "falcon-h1-7b", "--gpu", "h100-sxm", "--max-model-len", "8192")
    assert out.returncode == 1 and "DOES NOT FIT" in out.stdout and "Mamba cache blocks" in out.stdout  # 1: does not fit
    tries = [line for line in out.stdout.splitlines() if line.startswith("try")]
    # the model's Hugging Face id from the catalog: a line vLLM can run, not the planner's short name
    assert tries and all("vllm serve tiiuae/Falcon-H1-7B-Instruct " in line and "Suggestion(" not in line for line in tries)
    assert "--max-num-seqs" in tries[0]
    assert "state per sequence  1 block (" in out.stdout  # the hybrid's Mamba state, whatever the length


def test_each_try_row_says_why_and_carries_the_kv_figure_its_verdict_counts_on():
    from planner import gpu_preset, plan

    out = run("--model", "qwen3-32b", "--gpu", "rtx-4090", "--max-model-len", "4096")
    tries = [line for line in out.stdout.splitlines() if line.startswith("try")]
    advice = plan("qwen3-32b", gpu_preset("rtx-4090"), max_model_len=4096).advice
    assert out.returncode == 1 and len(tries) == len(advice) > 0, out.stdout
    for line, s in zip(tries, advice):
        applied = plan(s.config, gpu_preset("rtx-4090"))
        low = applied.kv_tokens - applied.kv_tokens_spread  # what the verdict says once the suggestion is applied
        assert f"{s.change}: {low:,}+ KV tokens ({s.why}); vllm serve Qwen/Qwen3-32B " in line, line
