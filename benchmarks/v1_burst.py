"""The app's web paths under a burst, on a fake engine as fast as a batching GPU (no GPU needed).

    python benchmarks/v1_burst.py --users 16,64 --protocol openai,http

Starts the app in this process (the page, /api/v1, /v1 and --load-test's /direct_load) with columns
of tests/helpers/step_engine.py's StepClockEngine (one token per request every --step-ms, all
active requests together, as vLLM's batch), then runs benchmarks/web_load.py against it once per
protocol in its own process, as on the GPU. The engine costs next to nothing, so web/direct is the
app's own overhead per request and per chunk: what a GPU run sees once the engine is fast.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(labels: list[str], step_s: float, port: int, data_dir: str, tokenizer: str = "smollm2"):
    """The app as app.py wires it (its defaults: concurrency 256, queue 512), on step-clock columns."""
    import gradio as gr

    import app
    from playground.runtime import EngineRuntime, SupervisedEngine
    from playground.service import Playground
    from playground.ui import http_api, openai_api, style
    from tests.helpers.step_engine import StepClockEngine, TokenizerPool

    def make(label):
        pool = None
        if tokenizer == "smollm2":  # the CPU model's tokenizer, shared as vLLM's renderer shares one
            from playground.engines.smollm2 import load_tokenizer

            pool = TokenizerPool(load_tokenizer())
        return StepClockEngine(label, step_s, tokenizer=pool)

    engines = [SupervisedEngine(lambda label=label: make(label)) for label in labels]
    playground = Playground(engines, EngineRuntime(), data_dir, "test")
    playground.max_in_flight = 512
    for e in engines:
        playground.runtime.call(e.start())
    demo = app.build_ui(playground, None, load_test=True)
    demo.queue(default_concurrency_limit=256, max_size=512)
    demo.launch(server_name="127.0.0.1", server_port=port, theme=gr.themes.Soft(), css=style.PAGE_CSS,
                max_threads=2 * 256 + 16, prevent_thread_lock=True, quiet=True)
    http_api.mount(demo.app, playground)
    openai_api.mount(demo.app, playground)
    return demo, playground


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", default="16,64")
    p.add_argument("--protocol", default="openai,http", help="web_load protocols, comma-separated")
    p.add_argument("--columns", default="BF16,FP8,FP8 checkpoint", help="column labels (the burst goes to --engine)")
    p.add_argument("--engine", default="FP8")
    p.add_argument("--step-ms", type=float, default=3.0)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--prompt-repeat", type=int, default=1,
                   help="web_load's default prompt this many times over (a long prompt takes the tokenizer longer)")
    p.add_argument("--tokenizer", choices=("smollm2", "words"), default="smollm2",
                   help="smollm2: each column tokenizes with the CPU model's tokenizer behind vLLM's tokenizer pool "
                        "(tests/helpers/step_engine.py TokenizerPool); words: a word is a token")
    p.add_argument("--json-dir", default=None, help="write web_load's rows here, one file per protocol")
    args = p.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        demo, playground = serve([x.strip() for x in args.columns.split(",") if x.strip()], args.step_ms / 1000, port,
                                 data_dir, args.tokenizer)
        pool = playground.find(args.engine).engine._tokenizer
        try:
            for protocol in [x.strip() for x in args.protocol.split(",") if x.strip()]:
                print(f"--protocol {protocol} (step {args.step_ms:g} ms, {args.max_tokens} tokens)", flush=True)
                cmd = [sys.executable, str(ROOT / "benchmarks" / "web_load.py"), "--url", f"http://127.0.0.1:{port}/",
                       "--protocol", protocol, "--api", "generate", "--engine", args.engine, "--users", args.users,
                       "--max-tokens", str(args.max_tokens)]
                if args.prompt_repeat > 1:
                    from benchmarks.web_load import DEFAULT_PROMPT

                    cmd += ["--prompt", " ".join([DEFAULT_PROMPT] * args.prompt_repeat)]
                if args.json_dir:
                    Path(args.json_dir).mkdir(parents=True, exist_ok=True)
                    cmd += ["--json", str(Path(args.json_dir) / f"{protocol}.json")]
                subprocess.run(cmd, check=True)
                if pool is not None:  # what the burst cost the tokenizer: copies made, most borrowers at once
                    print(f"{args.engine}'s tokenizer pool: {pool.copies_made} deep copies so far, at most "
                          f"{pool.max_borrowed} borrowers at once", flush=True)
        finally:
            demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
