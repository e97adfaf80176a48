"""Load figures for the web path and for the same workload run directly on the engines.

A load point is a burst: ``users`` clients send one request each at the same moment. Its figures
are the aggregate output tokens per second over the burst's wall time and the request latency
percentiles (numpy). ``benchmarks/web_load.py`` measures the web path through the app's public
API; ``direct_load`` runs the same requests through the Playground service in the app's process
(no HTTP, no Gradio), so the two can be set side by side in one run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

import numpy as np

APIS = ("generate", "compare")


@dataclass(frozen=True)
class LoadResult:
    api: str
    users: int
    completed: int
    errors: int
    output_tokens: int
    wall_s: float
    latency_p50_s: float | None
    latency_p99_s: float | None
    first_error: str | None = None

    @property
    def output_tok_s(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"output_tok_s": self.output_tok_s}


def summarize_load(api: str, users: int, latencies_s: list[float], output_tokens: list[int], errors: list[str],
                   wall_s: float) -> LoadResult:
    """Figures for one burst. ``latencies_s`` and ``output_tokens`` are per completed request."""
    if users < 1:
        raise ValueError(f"users: {users} must be at least 1")
    if len(latencies_s) != len(output_tokens):
        raise ValueError("latencies_s and output_tokens must have one entry per completed request")
    lat = np.asarray(latencies_s, dtype=float)
    return LoadResult(api=api, users=users, completed=len(lat), errors=len(errors), output_tokens=int(sum(output_tokens)),
                      wall_s=wall_s, latency_p50_s=float(np.percentile(lat, 50)) if len(lat) else None,
                      latency_p99_s=float(np.percentile(lat, 99)) if len(lat) else None,
                      first_error=errors[0] if errors else None)


def check_load_args(api: str, users: int, max_tokens: int) -> None:
    from playground.engines.base import RequestError

    if api not in APIS:
        raise RequestError("api", f"{api!r} is not one of {', '.join(APIS)}")
    if not 1 <= users <= 1024:
        raise RequestError("users", f"{users} is outside [1, 1024]")
    if not 1 <= max_tokens <= 4096:
        raise RequestError("max_tokens", f"{max_tokens} is outside [1, 4096]")


async def direct_load(playground, api: str, users: int, prompt: str, max_tokens: int, engine: str = "FP8") -> LoadResult:
    """The web path's workload without the web: ``users`` concurrent calls into the Playground service,
    with the settings the public /generate and /compare use (temperature 0, chat template, fair mode,
    the quality diff for /compare)."""
    from playground.engines.base import SamplingSettings
    from playground.service import ComparisonResult

    check_load_args(api, users, max_tokens)
    sampling = SamplingSettings(temperature=0.0, max_tokens=max_tokens, seed=0)
    chosen = [playground.find(engine)] if api == "generate" else None

    async def one() -> tuple[float, int]:
        t0 = time.perf_counter()
        async for item in playground.compare(prompt, sampling, mode="race" if chosen else "fair", chat=True,
                                             quality=api == "compare", engines=chosen):
            if isinstance(item, ComparisonResult):
                errors = [s.error for s in item.snapshots if s.error]
                if errors:
                    raise RuntimeError(errors[0])
                return time.perf_counter() - t0, sum(s.output_tokens for s in item.snapshots)
        raise RuntimeError("no result")

    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(one() for _ in range(users)), return_exceptions=True)
    wall = time.perf_counter() - t0
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return summarize_load(api, users, [d[0] for d in done], [d[1] for d in done], errors, wall)
