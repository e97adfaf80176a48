"""Latency and throughput metrics, defined once, as vLLM's `vllm bench serve` defines them.

- TTFT (time to first token): first streamed token's arrival - request start.
- TPOT (time per output token): (end-to-end - TTFT) / (output tokens - 1), per request; the
  first token is excluded because it pays for the prefill.
- ITL (inter-token latency): the gaps between successive streamed chunks of one request.
- decode tok/s (per request): (output tokens - 1) / (last arrival - first arrival), i.e. 1 / TPOT.
- output tok/s (per run): all output tokens / wall time from the first request start to the last
  arrival; total tok/s counts prompt tokens too.
- goodput (per run, under a service-level objective): requests that met every bound of the SLO /
  wall time, as `vllm bench serve --goodput ttft:MS tpot:MS e2el:MS` counts them
  (vllm/benchmarks/serve.py, calculate_metrics): a request of one output token has TPOT 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RequestTiming:
    """Arrival times (perf_counter seconds) of one request's streamed chunks."""

    start_s: float
    chunk_times_s: tuple[float, ...]
    output_tokens: int
    prompt_tokens: int = 0

    @property
    def ttft_s(self) -> float | None:
        return self.chunk_times_s[0] - self.start_s if self.chunk_times_s else None

    @property
    def e2e_s(self) -> float | None:
        return self.chunk_times_s[-1] - self.start_s if self.chunk_times_s else None

    @property
    def tpot_s(self) -> float | None:
        if self.output_tokens < 2 or not self.chunk_times_s:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def decode_tok_s(self) -> float | None:
        tpot = self.tpot_s
        return 1.0 / tpot if tpot else None

    @property
    def itls_s(self) -> tuple[float, ...]:
        return tuple(np.diff(self.chunk_times_s)) if len(self.chunk_times_s) > 1 else ()


@dataclass(frozen=True)
class RunMetrics:
    """A group of requests measured together (one benchmark point, or one comparison column)."""

    num_requests: int
    duration_s: float
    output_tokens: int
    prompt_tokens: int
    output_tok_s: float
    total_tok_s: float
    requests_per_s: float
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    tpot_p50_s: float | None
    tpot_p90_s: float | None
    tpot_p99_s: float | None
    itl_p50_s: float | None
    itl_p90_s: float | None
    itl_p99_s: float | None
    goodput_requests_per_s: float | None = None  # with an SLO only
    good_requests: int | None = None
    slo: str = ""  # the SLO it was counted under, as vllm bench serve's --goodput takes it: "ttft:500 tpot:50"
    # vllm bench serve's first TPOT line. Unlike the median it moves little when one request crosses from the
    # requests that decode through a later prefill step to those that do not (docs/speed.md)
    tpot_mean_s: float | None = None


SLO_NAMES = ("ttft", "tpot", "e2el")
DEFAULT_SLO_MS = (("ttft", 500.0), ("tpot", 50.0))  # the question a buyer asks: "at TTFT <= 500 ms and TPOT <= 50 ms"


def parse_slo(text: str) -> tuple[tuple[str, float], ...]:
    """``"ttft:500 tpot:50"`` (or comma-separated) into ((name, milliseconds), ...), checked as vLLM checks it."""
    out = []
    for pair in text.replace(",", " ").split():
        name, sep, value = pair.partition(":")
        try:
            ms = float(value)
        except ValueError:
            ms = None
        if not sep or ms is None:
            raise ValueError(f"goodput: {pair!r} is not KEY:MILLISECONDS, e.g. ttft:500 tpot:50")
        if name not in SLO_NAMES:
            raise ValueError(f"goodput: {name!r} is not one of {', '.join(SLO_NAMES)}")
        if ms < 0:
            raise ValueError(f"goodput: {name}:{value} must be non-negative")
        out.append((name, ms))
    return tuple(out)


def slo_text(slo_ms) -> str:
    return " ".join(f"{name}:{ms:g}" for name, ms in slo_ms)


def good_requests(ttfts_s: Sequence[float], tpots_s: Sequence[float], e2els_s: Sequence[float], slo_ms) -> int:
    """Requests within every bound (vLLM's rule: value <= bound for each metric named)."""
    values = {"ttft": ttfts_s, "tpot": tpots_s, "e2el": e2els_s}
    bounds = [(values[name], ms / 1000) for name, ms in slo_ms]
    return sum(all(metric[i] <= bound for metric, bound in bounds) for i in range(len(ttfts_s)))


def _percentiles(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    p50, p90, p99 = np.percentile(np.asarray(values, dtype=float), [50, 90, 99])
    return float(p50), float(p90), float(p99)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize(timings: Sequence[RequestTiming], slo_ms=()) -> RunMetrics:
    """Aggregate measured requests; with ``slo_ms`` ((name, ms), ...) the goodput too. Raises
    ValueError if none produced a token: no timing, no metric."""
    done = [t for t in timings if t.chunk_times_s]
    if not done:
        raise ValueError("no request produced a token, so there is nothing to measure")
    start = min(t.start_s for t in done)
    end = max(t.chunk_times_s[-1] for t in done)
    duration = end - start
    out_tokens = sum(t.output_tokens for t in done)
    prompt_tokens = sum(t.prompt_tokens for t in done)
    ttft = _percentiles([t.ttft_s for t in done])
    tpot = _percentiles([t.tpot_s for t in done if t.tpot_s is not None])
    itl = _percentiles([gap for t in done for gap in t.itls_s])
    good = good_requests([t.ttft_s for t in done], [t.tpot_s or 0.0 for t in done], [t.e2e_s for t in done],
                         slo_ms) if slo_ms else None
    return RunMetrics(
        num_requests=len(done), duration_s=duration, output_tokens=out_tokens, prompt_tokens=prompt_tokens,
        output_tok_s=out_tokens / duration, total_tok_s=(out_tokens + prompt_tokens) / duration,
        requests_per_s=len(done) / duration,
        ttft_p50_s=ttft[0], ttft_p90_s=ttft[1], ttft_p99_s=ttft[2],
        tpot_p50_s=tpot[0], tpot_p90_s=tpot[1], tpot_p99_s=tpot[2],
        itl_p50_s=itl[0], itl_p90_s=itl[1], itl_p99_s=itl[2],
        goodput_requests_per_s=good / duration if good is not None and duration > 0 else None,
        good_requests=good, slo=slo_text(slo_ms), tpot_mean_s=_mean([t.tpot_s for t in done if t.tpot_s is not None]),
    )


def first_divergence(a: Sequence[int] | str, b: Sequence[int] | str) -> int | None:
    """Index of the first position where two outputs differ (None if one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None
