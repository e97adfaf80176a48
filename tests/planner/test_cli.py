import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, timeout=120)


def test_cli_prints_the_plan_for_a_catalog_model_on_a_preset():
    out = run("--model", "llama-2-7b", "--gpu", "h100-sxm", "--max-model-len", "2048")
    assert out.returncode == 0
    assert "KV tokens           116,784" in out.stdout
    assert "FITS" in out.stdout


def test_cli_json_matches_the_library():
    from planner import gpu_preset, model_spec, plan

    out = run("--model", "qwen2.5-7b", "--gpu", "h100-sxm", "--quantization", "fp8", "--json")
    data = json.loads(out.stdout)
    assert data["kv_tokens"] == plan(model_spec("qwen2.5-7b"), gpu_preset("h100-sxm"), quantization="fp8").kv_tokens


def test_cli_without_a_driver_explains_how_to_use_a_preset():
    out = run("--model", "llama-2-7b")
    assert out.returncode == 2
    assert "--gpu h100-sxm" in out.stderr and "Traceback" not in out.stderr


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
