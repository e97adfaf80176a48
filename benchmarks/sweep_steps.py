"""Where a small CPU sweep's time goes: each step of the Benchmark tab's sweep, timed as it runs.

    python benchmarks/sweep_steps.py                      # the tab's CPU default: concurrency 1,4; 32 in / 16 out; 1 repeat
    python benchmarks/sweep_steps.py --concurrency 1,4 --input-len 32 --output-len 16 --repeats 1

Prints one line per step (the untimed warm-up and each timed repeat, per precision and concurrency) with
its seconds, then the total: the progress messages the tab shows, with how long each one stays up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's packages, not an installed copy

from playground.bench.runner import BenchConfig, BenchmarkService, cpu_source  # noqa: E402
from playground.bench.sweep import SweepSpec  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", default="1,4")
    p.add_argument("--input-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    spec = SweepSpec(concurrency=tuple(int(c) for c in args.concurrency.split(",")), input_len=args.input_len,
                     output_len=args.output_len, repeats=args.repeats, precisions=("fp16", "fp8"))
    steps: list[tuple[float, str]] = []

    def progress(done: int, total: int, message: str) -> None:
        steps.append((time.perf_counter(), message))

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as data:
        asyncio.run(BenchmarkService(data).run(BenchConfig(backend="cpu", data_dir=data), spec, cpu_source(), 49152,
                                               2048, progress))
    end = time.perf_counter()
    for (t, message), (t_next, _) in zip(steps, steps[1:] + [(end, "")]):
        print(f"{t_next - t:7.1f} s  {message}")
    print(f"{end - start:7.1f} s  total (engine starts included)")


if __name__ == "__main__":
    main()
