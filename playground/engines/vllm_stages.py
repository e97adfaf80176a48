"""What a starting vLLM engine is doing, read from its own log lines.

vLLM's engine core runs in child processes that write their log to the app's stdout and stderr.
``watch_process_output`` puts a pipe under both (children inherit it), copies every byte through
to the real output, and hands each line to a callback; ``stage_of`` turns the lines vLLM 0.25.1
prints at each step of its start-up (vllm/v1/worker/gpu_model_runner.py, gpu_worker.py,
compilation/monitor.py, v1/core/kv_cache_utils.py) into the words the status line shows.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable

_STAGES = (
    (re.compile(r"Starting to load model"), lambda m: "loading weights"),
    (re.compile(r"Model loading took ([\d.]+) GiB"), lambda m: f"weights loaded ({m[1]} GiB); compiling (torch.compile)"),
    (re.compile(r"torch\.compile took ([\d.]+) s"), lambda m: f"compiled in {float(m[1]):.0f} s; profiling memory"),
    (re.compile(r"Available KV cache memory: ([\d.]+) GiB"), lambda m: f"KV cache {m[1]} GiB; allocating"),
    (re.compile(r"GPU KV cache size: ([\d,]+) tokens"), lambda m: f"KV cache {m[1]} tokens; capturing CUDA graphs"),
    (re.compile(r"Graph capturing finished in (\d+) secs"), lambda m: f"CUDA graphs captured in {m[1]} s; warming up"),
)


def stage_of(line: str) -> str | None:
    """The start-up stage a vLLM log line announces, or None for any other line."""
    for pattern, words in _STAGES:
        m = pattern.search(line)
        if m:
            return words(m)
    return None


def watch_process_output(on_line: Callable[[str], None]) -> None:
    """Route this process's (and its future children's) stdout and stderr through a pipe that is
    copied to the original output and read line by line."""
    sys.stdout.flush()
    sys.stderr.flush()
    original = os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        buffer = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                return
            os.write(original, chunk)
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for line in lines:
                if line:
                    try:
                        on_line(line.decode(errors="replace"))
                    except Exception:  # noqa: BLE001 - a status update must never stop the output
                        pass

    threading.Thread(target=pump, name="vllm-log-watch", daemon=True).start()
