"""Start the app and time its start-up: when the page answers, and when each engine is ready,
with the stages the status line showed on the way.

    python benchmarks/web_startup.py --port 7860 --json startup.json -- --backend vllm --model DIR --load-format dummy
    python benchmarks/web_startup.py --port 7860 --keep -- ...   # leave the app running (its pid is printed)

Everything after `--` is passed to app.py. The app runs in its own process session so that
vLLM's engine processes go with it when it is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def engines(url: str) -> list[dict]:
    from gradio_client import Client

    return Client(url, verbose=False).predict(api_name="/engines")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    app_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--timeout", type=float, default=420)
    p.add_argument("--log", default="app.log")
    p.add_argument("--json", default=None)
    p.add_argument("--keep", action="store_true", help="leave the app running")
    p.add_argument("--pidfile", default=None, help="write the app's pid (its process group) here")
    args = p.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(args.port), *app_args],
                            stdout=open(args.log, "w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    if args.pidfile:
        Path(args.pidfile).write_text(str(proc.pid))
    page_up = None
    while time.perf_counter() - t0 < args.timeout and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            page_up = time.perf_counter() - t0
            break
        except OSError:
            time.sleep(0.1)
    stages: list[tuple[float, list[str]]] = []
    facts: list[dict] = []
    while page_up is not None and time.perf_counter() - t0 < args.timeout and proc.poll() is None:
        facts = engines(url)
        line = [f"{e['label']}: {e['stage']}" for e in facts]
        if not stages or stages[-1][1] != line:
            stages.append((round(time.perf_counter() - t0, 1), line))
            print(f"{stages[-1][0]:7.1f} s  " + " | ".join(line), flush=True)
        if all(e["ready"] or e["stage"].startswith("failed") for e in facts):
            break
        time.sleep(1)
    ready = time.perf_counter() - t0 if facts and all(e["ready"] for e in facts) else None
    result = {"page_up_s": page_up, "all_ready_s": ready, "stages": stages,
              "engines": [{k: e.get(k) for k in ("label", "stage", "ready_after_s", "kv_tokens", "gpu_name", "dtype")}
                          for e in facts], "app_args": app_args}
    print(json.dumps({k: result[k] for k in ("page_up_s", "all_ready_s")}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.keep and proc.poll() is None:
        print(f"app running: pid {proc.pid}", flush=True)
        return 0
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
