"""Read vLLM's start-up log lines into numbers: the ground truth the planner is calibrated on.

    python benchmarks/vllm_log.py run.log        # one JSON object per engine start found
"""

from __future__ import annotations

import json
import re
import sys

PATTERNS = {
    "weights_gib": r"Model loading took ([\d.]+) GiB",
    "cudagraph_estimate_gib": r"Estimated CUDA graph memory: ([\d.]+) GiB total",
    "available_kv_gib": r"Available KV cache memory: ([\d.]+) GiB",
    "kv_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "torch_peak_increase_gib": r"torch peak memory increase: ([\d.]+)GiB",
    "non_torch_increase_gib": r"non-torch forward increase memory: ([\d.]+)GiB",
    "graph_capture_gib": r"Graph capturing finished in \d+ secs, took ([\d.]+) GiB",
}


def parse_startup_log(text: str) -> list[dict]:
    """One dict per engine start (a start begins at each 'Model loading took' line)."""
    starts: list[dict] = []
    for line in text.splitlines():
        for key, pattern in PATTERNS.items():
            m = re.search(pattern, line)
            if not m:
                continue
            if key == "weights_gib":
                starts.append({})
            if not starts:
                continue
            value = m.group(1).replace(",", "")
            starts[-1].setdefault(key, int(value) if key == "kv_tokens" else float(value))
    return starts


if __name__ == "__main__":
    for start in parse_startup_log(open(sys.argv[1], encoding="utf-8", errors="replace").read()):
        print(json.dumps(start))
