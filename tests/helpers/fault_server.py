"""A test-only OpenAI-compatible server that closes every stream after a few tokens, as a server
that dies mid-answer would: python tests/helpers/fault_server.py PORT"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn  # noqa: E402

from playground.engines.cpu_engine import CpuEngine  # noqa: E402
from playground.openai_server import build_app  # noqa: E402

if __name__ == "__main__":
    app = build_app(CpuEngine("FP8", fp8=True), "dropping-server", drop_after_tokens=3)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
