"""Where `python app.py` (CPU backend) spends its time before the page answers, stage by stage, in
this process: importing app.py (Gradio), building the engines' shells, the page, and launching.

    python benchmarks/startup_stages.py --port 7999

The engines' loading (torch, the model) is not here: the app starts it after the page answers.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=7999)
    p.add_argument("--data-dir", default="/tmp/startup-stages-data")
    args = p.parse_args(argv)
    marks = [("start", time.perf_counter())]
    import app
    marks.append(("import app (gradio, planner, playground)", time.perf_counter()))
    from playground.runtime import EngineRuntime
    from playground.service import Playground

    app_args = app.build_parser().parse_args(["--port", str(args.port), "--data-dir", args.data_dir])
    engines, _ = app.build_engines(app_args)
    playground = Playground(engines, EngineRuntime(), app_args.data_dir, "cpu", None, 49152)
    marks.append(("build the engines' shells", time.perf_counter()))
    demo = app.build_ui(playground, None)
    marks.append(("build the page", time.perf_counter()))
    demo.queue()
    demo.launch(server_port=args.port, prevent_thread_lock=True, quiet=True)
    urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=30)
    marks.append(("launch until the page answers", time.perf_counter()))
    print("| stage | seconds |\n|---|---|")
    for (_, before), (name, at) in zip(marks, marks[1:]):
        print(f"| {name} | {at - before:.2f} |")
    print(f"| total | {marks[-1][1] - marks[0][1]:.2f} |")
    print(f"torch imported before the page: {'torch' in sys.modules}")
    demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
