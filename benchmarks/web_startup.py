"""Start the app and time its start-up: when the page answers, and when each engine is ready,
with the stages the status line showed on the way.

    python benchmarks/web_startup.py --port 7860 --json startup.json -- --backend vllm --model DIR --load-format dummy
    python benchmarks/web_startup.py --port 7860 --keep -- ...   # leave the app running (its pid is printed)
    python benchmarks/web_startup.py --repeats 3 --page-only     # the CPU app: median seconds until the page answers
    python benchmarks/web_startup.py --first-answer 3            # then the default example prompt and settings
                                                                 # through /compare, three times: Run to both columns done

Everything after `--` is passed to app.py. The app runs in its own process session so that
vLLM's engine processes go with it when it is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
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
    p.add_argument("--repeats", type=int, default=1, help="start the app this many times; print the median")
    p.add_argument("--page-only", action="store_true", help="stop each start once the page answers")
    p.add_argument("--first-answer", type=int, default=0, metavar="N",
                   help="once the engines are ready, send the page's default comparison (its first example prompt, "
                        "64 tokens, fair) N times and time each until every column has finished")
    args = p.parse_args(argv)
    if args.repeats > 1:
        if args.keep or args.pidfile:
            raise SystemExit("error: --repeats stops every start; it does not combine with --keep or --pidfile")
        results = [start_once(args, app_args) for _ in range(args.repeats)]
        summary = {key: median([r[key] for r in results]) for key in ("page_up_s", "all_ready_s")}
        print(json.dumps({"median_of": args.repeats, **summary,
                          "page_up_s_each": [r["page_up_s"] for r in results]}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"median": summary, "runs": results}, indent=2))
        return 0 if all(r["page_up_s"] is not None for r in results) else 1
    result = start_once(args, app_args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.keep or args.page_only:
        return 0 if result["page_up_s"] is not None else 1
    return 0 if result["all_ready_s"] is not None else 1


def first_answers(url: str, repeats: int) -> list[float]:
    """Seconds from sending the page's default comparison to its final result (every column finished)."""
    from gradio_client import Client

    prompt = json.loads((ROOT / "assets" / "prompts.json").read_text())["prompts"][0]
    client, times = Client(url, verbose=False), []
    for _ in range(repeats):
        t = time.perf_counter()
        result = client.predict(prompt, 0.0, 1.0, 0, 64, 0, 1.0, 0.0, 0.0, "", "fair", True, api_name="/compare")
        times.append(round(time.perf_counter() - t, 2))
        print(f"default comparison: every column finished after {times[-1]:.2f} s "
              "(" + ", ".join(f"{c['label']} {c['output_tokens']} tokens" for c in result["columns"]) + ")", flush=True)
    return times


def median(values: list) -> float | None:
    known = sorted(v for v in values if v is not None)
    return statistics.median(known) if len(known) == len(values) else None


def start_once(args, app_args: list[str]) -> dict:
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
    print(f"page answers after {page_up:.2f} s" if page_up is not None else "the page never answered", flush=True)
    stages: list[tuple[float, list[str]]] = []
    facts: list[dict] = []
    while page_up is not None and not args.page_only and time.perf_counter() - t0 < args.timeout and proc.poll() is None:
        facts = engines(url)
        line = [f"{e['label']}: {e['stage']}" for e in facts]
        if not stages or stages[-1][1] != line:
            stages.append((round(time.perf_counter() - t0, 1), line))
            print(f"{stages[-1][0]:7.1f} s  " + " | ".join(line), flush=True)
        if all(e["ready"] or e["stage"].startswith("failed") for e in facts):
            break
        time.sleep(1)
    ready = time.perf_counter() - t0 if facts and all(e["ready"] for e in facts) else None
    answers_s = first_answers(url, args.first_answer) if ready is not None and args.first_answer else []
    result = {"page_up_s": page_up, "all_ready_s": ready, "stages": stages, "first_answer_s": answers_s,
              "engines": [{k: e.get(k) for k in ("label", "stage", "ready_after_s", "kv_tokens", "gpu_name", "dtype")}
                          for e in facts], "app_args": app_args}
    print(json.dumps({k: result[k] for k in ("page_up_s", "all_ready_s", "first_answer_s")}), flush=True)
    if args.keep and proc.poll() is None:
        print(f"app running: pid {proc.pid}", flush=True)
        return result
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return result


if __name__ == "__main__":
    sys.exit(main())
