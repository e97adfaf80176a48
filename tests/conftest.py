import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _has_gpu() -> bool:
    from planner import PlannerError, read_gpus

    try:
        return bool(read_gpus())
    except PlannerError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (NVML found no driver); results measured on H100s and H200s are in docs/results/playground-on-gpu.md")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def record():
    """Write a JSON result under $GPU_RECORD_DIR (the H100 run copies these into docs/)."""
    import json

    def write(name: str, data) -> None:
        folder = os.environ.get("GPU_RECORD_DIR")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))

    return write


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CPU_APP_STARTUP: dict = {}  # what the cpu_app fixture saw when the page first answered


@pytest.fixture(scope="session")
def cpu_app(tmp_path_factory):
    """The real app on the CPU backend, served on localhost for the API and browser tests."""
    import subprocess
    import time
    import urllib.request

    port = free_port()
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--load-test",
                             "--data-dir", str(tmp_path_factory.mktemp("bench"))],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    started = time.time()
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:  # not listening yet
            time.sleep(1)
    else:
        proc.kill()
        raise RuntimeError(f"app did not start: {log_path.read_text()[-2000:]}")
    # The page answers before the engines have loaded (that is the point); tests that generate wait for them.
    from gradio_client import Client

    import httpx

    client = Client(url, verbose=False)
    CPU_APP_STARTUP["page_up_s"] = time.time() - started
    CPU_APP_STARTUP["engines_at_page_up"] = client.predict(api_name="/engines")
    # Loading the model takes what this machine gives it (a minute on two busy cores); a status call
    # that the busy server answers late is asked again. Never ready is an error, not a slow test.
    ready_by = time.time() + 600
    while True:
        try:
            engines = client.predict(api_name="/engines")
        except httpx.TimeoutException:
            engines = None
        if engines and all(e["ready"] for e in engines):
            break
        if time.time() > ready_by or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"the engines did not get ready ({engines}): {log_path.read_text()[-2000:]}")
        time.sleep(1)
    yield url
    proc.terminate()
    proc.wait(30)


def start_servers(*servers: tuple[list[str], str, Path], timeout_s: float = 600) -> list:
    """Start server processes at once (argv, a URL that answers when up, a log path) and wait until
    each URL answers with any HTTP status. The wait is long because a loaded 2-core machine starts a CPU
    engine in minutes; a server that exits fails at once, one that never answers fails at the deadline."""
    import subprocess
    import time
    import urllib.error
    import urllib.request

    procs = [subprocess.Popen([sys.executable, *argv], stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)
             for argv, _, log in servers]
    deadline = time.time() + timeout_s
    for proc, (argv, url, log) in zip(procs, servers):
        while True:
            if proc.poll() is not None or time.time() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"{argv} did not start ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except urllib.error.HTTPError:  # answering, with an error status: up
                break
            except OSError:
                time.sleep(0.5)
    return procs


def start_server(argv: list[str], url: str, log_path: Path, timeout_s: float = 600):
    return start_servers((argv, url, log_path), timeout_s=timeout_s)[0]


@pytest.fixture(scope="session")
def cpu_app_columns(tmp_path_factory):
    """The app on the CPU with three --engine columns: the embedded model in 16-bit, its online FP8 twin,
    and a folder: llm-compressor's FP8-dynamic checkpoint where llm-compressor is installed, else the
    same weights as a 16-bit Hugging Face folder. Yields (url, labels) once every engine is ready."""
    import importlib.util
    import subprocess
    import time

    from gradio_client import Client

    models = tmp_path_factory.mktemp("column-models")
    name, label = (("smollm2-135m-fp8-dynamic", "FP8 checkpoint") if importlib.util.find_spec("llmcompressor")
                   else ("smollm2-135m", "16-bit folder"))
    subprocess.run([sys.executable, "-m", "playground.model_dirs", name, str(models / name)], cwd=ROOT, check=True,
                   capture_output=True, timeout=900)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    labels = ["16-bit", "FP8", label]
    proc = start_server([str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(tmp_path_factory.mktemp("bench")),
                         "--engine", "16-bit=smollm2-135m", "--engine", "FP8=smollm2-135m,quantization=fp8",
                         "--engine", f"{label}={models / name}"], url, models / "app.log")
    client = Client(url, verbose=False)
    deadline = time.time() + 600  # a bound for a broken start, not a timing: the engines load one after the other
    while not all(e["ready"] for e in client.predict(api_name="/engines")):
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"the three-column app did not get ready: {(models / 'app.log').read_text()[-2000:]}")
        time.sleep(1)
    yield url, labels
    proc.terminate()
    proc.wait(30)
