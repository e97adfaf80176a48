"""GPU tests (marker gpu): the NVML adapter and the vLLM playground on the H100.

Run on the GPU host:  PLAYGROUND_GPU_MODEL=/tmp/models/llama-2-7b pytest -m gpu tests/gpu
Results are written under $GPU_RECORD_DIR and copied into docs/results/playground-on-gpu/ (`bash benchmarks/gpu.sh tests`).
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from planner import model_spec, plan, read_gpus
from planner.nvml import visible_gpu_index

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = json.loads((ROOT / "assets" / "prompts.json").read_text())["prompts"]
PORT = 7870


def test_nvml_reads_the_hopper_gpu(record):
    """An H100 or H200 read through NVML matches its preset's memory (the planner's numbers rest on it)."""
    from planner.gpus import preset_for_device_name

    readings = read_gpus()
    gpu = readings[visible_gpu_index()]
    record("nvml_reading", [r.__dict__ for r in readings])
    assert "H100" in gpu.name or "H200" in gpu.name
    assert gpu.total_bytes == preset_for_device_name(gpu.name).total_bytes  # 85,520,809,984 / 150,754,820,096
    assert gpu.compute_capability == (9, 0)
    assert gpu.bandwidth_gb_s and gpu.bandwidth_gb_s > 3000
    assert 0 < gpu.free_bytes <= gpu.total_bytes
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():  # vLLM's gpu_memory_utilization applies to CUDA's total: the planner's must match
        assert gpu.to_spec().cuda_total_bytes == torch.cuda.mem_get_info(0)[1]


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    model = os.environ.get("PLAYGROUND_GPU_MODEL")
    if not model:
        pytest.skip("set PLAYGROUND_GPU_MODEL to a model folder (python -m playground.model_dirs llama-2-7b DIR)")
    log = open(os.environ.get("PLAYGROUND_APP_LOG", "/tmp/app-gpu.log"), "w")
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--backend", "vllm", "--model", model,
                            "--load-format", "dummy", "--port", str(PORT)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 420
    connected = None
    while time.time() < deadline and app.poll() is None:
        try:
            connected = Client(f"http://127.0.0.1:{PORT}/", verbose=False)
            break
        except Exception:  # not listening yet: both engines take minutes to start
            time.sleep(5)
    if connected is None:
        app.kill()
        pytest.fail(f"the app did not come up (exit code {app.poll()}); see {log.name}")
    # the page answers before the engines are loaded: wait for both
    while time.time() < deadline and not all(e["ready"] for e in connected.predict(api_name="/engines")):
        time.sleep(3)
    yield connected
    app.terminate()
    try:
        app.wait(60)
    except subprocess.TimeoutExpired:
        app.kill()


def test_both_engines_resident(client, record):
    """Both engines loaded at once; each one's KV tokens against the planner's prediction for it
    (the second engine starts with the first already resident)."""
    engines = client.predict(api_name="/engines")
    spec = model_spec(os.environ["PLAYGROUND_GPU_MODEL"])
    gpu = replace(read_gpus(visible_gpu_index())[0].to_spec(), free_bytes=None)  # this GPU, as the first engine found it
    rows = []
    for e in engines:
        predicted = plan(spec, gpu, quantization=e["quantization"], kv_cache_dtype=e["kv_cache_dtype"], dtype=e["dtype"],
                         gpu_memory_utilization=e["gpu_memory_utilization"], max_model_len=e["max_model_len"])
        rows.append({**e, "predicted_kv_tokens": predicted.kv_tokens,
                     "error_percent": 100 * (predicted.kv_tokens - e["kv_tokens"]) / e["kv_tokens"]})
    record("engines", rows)
    assert [e["backend"] for e in engines] == ["vllm", "vllm"]
    assert [e["quantization"] for e in engines] == [None, "fp8"]
    assert all(e["kv_tokens"] >= 16 * 1024 for e in engines)  # the app's default split: 16 x 1024 tokens each
    for row in rows:  # the planner's bar: 1.5% of KV tokens (the second engine starts beside the first)
        assert abs(row["error_percent"]) <= 1.5, row


def test_seed_prompts_answered_side_by_side(client, record):
    result = client.predict("\n---\n".join(EXAMPLES), 0.0, 1.0, 0, 128, 0, 1.0, 0.0, 0.0, "", api_name="/compare")
    record("seed_prompts", result)
    for column in result["columns"]:
        assert column["error"] is None
        assert len(column["texts"]) == 3 and all(column["texts"])
        assert column["output_tokens"] > 0 and column["decode_tok_s"] > 0 and column["ttft_s"] > 0


def test_fp8_decodes_faster_than_fp16_at_batch_1(client, record):
    runs = [client.predict(EXAMPLES[0], 0.0, 1.0, 0, 256, 0, 1.0, 0.0, 0.0, "", api_name="/compare") for _ in range(3)]
    speeds = {c["label"]: sorted(r["columns"][i]["decode_tok_s"] for r in runs)[1]
              for i, c in enumerate(runs[0]["columns"])}
    record("batch1_speed", {"median_decode_tok_s": speeds, "runs": runs})
    base, fp8 = (runs[0]["columns"][0]["label"], runs[0]["columns"][1]["label"])
    assert speeds[fp8] > speeds[base]


def test_64_concurrent_compare_requests_complete(client, record):
    from gradio_client import Client

    def one(i):
        c = Client(f"http://127.0.0.1:{PORT}/", verbose=False)
        return c.predict(f"{EXAMPLES[i % 3]} (request {i})", 0.8, 0.95, 0, 64, i, 1.0, 0.0, 0.0, "", api_name="/compare")

    started = time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, range(64)))
    wall = time.perf_counter() - started
    tokens = sum(c["output_tokens"] for r in results for c in r["columns"])
    record("concurrent_64", {"requests": len(results), "wall_s": wall, "output_tokens": tokens,
                             "aggregate_output_tok_s": tokens / wall,
                             "errors": [c["error"] for r in results for c in r["columns"] if c["error"]]})
    assert len(results) == 64
    assert all(c["error"] is None and c["output_tokens"] > 0 for r in results for c in r["columns"])
