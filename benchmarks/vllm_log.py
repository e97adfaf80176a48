"""Read vLLM's start-up log lines into numbers: the ground truth the planner is calibrated on.

    python benchmarks/vllm_log.py run.log        # one JSON object per engine start found

The parser is planner.calibrate's (the one `python -m planner calibrate` reads its own engine starts with).
"""

from __future__ import annotations

import json
import sys

from planner.calibrate import LOG_PATTERNS as PATTERNS, parse_startup_log  # noqa: F401  (PATTERNS: old name)

if __name__ == "__main__":
    for start in parse_startup_log(open(sys.argv[1], encoding="utf-8", errors="replace").read()):
        print(json.dumps(start))
