"""How much work does the Playground page do while a comparison streams, and does it keep up?

Starts the app on the CPU backend, opens the page in Debian's Chromium (headless), runs one fair comparison
and profiles the page's main thread (Chrome's sampling profiler): the run's wall time, how long the page was
busy, and the share of that in plotly's script (the tokens-over-time chart).

    python benchmarks/page_work.py                        # 200 tokens, the machine as it is
    python benchmarks/page_work.py --cpus 0.5 --json w.json   # app and browser on half a core (a slow CPU)

--cpus puts the app and the browser in a CPU cgroup with that quota (cgroup v1 or v2; needs root). Prints JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def cpu_cgroup(cpus: float) -> Path:
    """A new CPU cgroup limited to ``cpus`` CPUs; this process joins it, so the app and the browser it starts do too."""
    period = 100_000
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    group = (v1 if v1.is_dir() else v2) / f"page-work-{os.getpid()}"
    try:
        group.mkdir()
        if v1.is_dir():
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))
        else:
            (group / "cpu.max").write_text(f"{int(cpus * period)} {period}")
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        raise SystemExit(f"error: --cpus needs a writable CPU cgroup ({e}); run as root, or leave --cpus out")
    return group


def start_app(port: int, log: Path) -> subprocess.Popen:
    from gradio_client import Client

    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--load-test",
                             "--data-dir", tempfile.mkdtemp(prefix="page-work-")],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 900
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the app exited with {proc.returncode}; see {log}")
        try:
            if all(e.get("ready") for e in Client(url, verbose=False).predict(api_name="/engines")):
                return proc
        except Exception:  # not listening yet, or busy loading
            pass
        time.sleep(3)
    proc.kill()
    raise SystemExit(f"error: the engines were not ready within 900 s; see {log}")


def profile_run(url: str, tokens: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--headless", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url, wait_until="load")
        page.locator("#run").wait_for()
        page.wait_for_timeout(5000)  # the page's own start-up work is not the run's
        cdp = page.context.new_cdp_session(page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 1000})
        page.get_by_text("Sampling").click()
        page.locator("#max-tokens input").fill(str(tokens))
        page.locator("#prompts textarea").fill("Write a long story about a GPU that learned FP8.")
        cdp.send("Profiler.start")
        start = time.monotonic()
        page.locator("#run").click()
        page.locator("#quality").get_by_text("token agreement").wait_for(timeout=1_800_000)
        wall = time.monotonic() - start
        profile = cdp.send("Profiler.stop")["profile"]
        shown = {label: page.locator(f"#metrics-{label}").inner_text() for label in ("16-bit", "FP8")}
        browser.close()
    nodes = {n["id"]: n["callFrame"] for n in profile["nodes"]}
    by_script, idle = collections.Counter(), 0.0
    for sample, delta_us in zip(profile["samples"], profile["timeDeltas"]):
        frame = nodes[sample]
        if frame["functionName"] == "(idle)":
            idle += delta_us / 1e6
        else:
            by_script[frame["url"].rsplit("/", 1)[-1] or frame["functionName"]] += delta_us / 1e6
    busy = sum(by_script.values())
    plotly = sum(s for name, s in by_script.items() if name.startswith("PlotlyPlot"))
    return {"tokens": tokens, "wall_s": round(wall, 1), "page_busy_s": round(busy, 1), "page_idle_s": round(idle, 1),
            "plotly_script_s": round(plotly, 1),
            "top_scripts_s": {name: round(s, 1) for name, s in by_script.most_common(6)},
            "metrics_shown": shown}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=200, help="max new tokens per engine (default 200)")
    p.add_argument("--cpus", type=float, default=None, help="CPU quota for the app and the browser, e.g. 0.5")
    p.add_argument("--port", type=int, default=7871)
    p.add_argument("--log", default="page-work-app.log")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.tokens < 1:
        p.error("--tokens must be 1 or more")
    if args.cpus is not None and not 0.05 <= args.cpus <= os.cpu_count():
        p.error(f"--cpus must be between 0.05 and {os.cpu_count()} (this machine's CPUs)")
    if args.cpus is not None:
        cpu_cgroup(args.cpus)
    proc = start_app(args.port, Path(args.log))
    try:
        result = {"cpus": args.cpus or os.cpu_count(), **profile_run(f"http://127.0.0.1:{args.port}/", args.tokens)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
