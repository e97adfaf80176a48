"""Prometheus metrics for the app's columns, with vLLM's `vllm:` names where the meaning is the same.

Every series carries a ``column`` label (the column's label on the page: ``16-bit``, ``FP8``, ...).
Counters and histograms are fed by each finished request, from the OpenAI endpoints and from the
Playground's comparisons; gauges (requests running and waiting, the fair queue, KV-cache use) are
read from the engines and the fair queue when /metrics is scraped. One registry per app, not
prometheus_client's global one, so that several apps in one process (the tests) do not mix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from playground.metrics import RequestTiming

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# the buckets of vLLM's own histograms (vllm/v1/metrics/loggers.py), so dashboards built for vLLM read ours
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
               960.0, 1920.0, 7680.0)


class _LiveGauges:
    """The gauges read at scrape time from the Playground (nothing to keep in step by hand)."""

    def __init__(self, playground):
        self.playground = playground

    def collect(self):
        running = GaugeMetricFamily("vllm:num_requests_running", "Requests generating in the column's engine now.",
                                    labels=["column"])
        waiting = GaugeMetricFamily("vllm:num_requests_waiting",
                                    "Requests waiting for the column's turn in the fair queue.", labels=["column"])
        kv = GaugeMetricFamily("vllm:kv_cache_usage_perc", "KV-cache usage (1 = full), where the engine reports it.",
                               labels=["column"])
        queue = GaugeMetricFamily("playground:fair_queue_length",
                                  "Requests waiting for their engine's turn, all columns together.")
        phases = self.playground._phases
        for index, supervised in enumerate(self.playground.engines):
            label = supervised.info.label
            engine = supervised.engine if supervised.ready else None
            running.add_metric([label], float(getattr(engine, "num_running", 0) or 0))
            waiting.add_metric([label], float(phases.waiting[index] if phases else 0))
            usage = getattr(engine, "kv_cache_usage", None)
            if usage is not None:
                kv.add_metric([label], float(usage))
        queue.add_metric([], float(sum(phases.waiting.values()) if phases else 0))
        yield from (running, waiting, kv, queue)


class ColumnMetrics:
    """The registry behind GET /metrics."""

    def __init__(self, playground):
        self.registry = CollectorRegistry()
        r, labels = self.registry, ["column"]
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens processed.", labels, registry=r)
        self.generation_tokens = Counter("vllm:generation_tokens", "Generation tokens processed.", labels, registry=r)
        self.request_success = Counter("vllm:request_success", "Requests that finished.",
                                       ["column", "finished_reason"], registry=r)
        self.request_errors = Counter("playground:request_errors", "Requests refused (4xx) or failed (5xx).",
                                      ["column", "status"], registry=r)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token in seconds.", labels,
                              buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "Inter-token latency in seconds.", labels,
                             buckets=ITL_BUCKETS, registry=r)
        self.tpot = Histogram("vllm:request_time_per_output_token_seconds", "Time per output token per request.",
                              labels, buckets=ITL_BUCKETS, registry=r)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency in seconds.", labels,
                             buckets=E2E_BUCKETS, registry=r)
        r.register(_LiveGauges(playground))
        playground.on_request_done.append(self.observe)

    def observe(self, column: str, timing: RequestTiming, finish_reason: str | None = None) -> None:
        """One finished (or abandoned) request: its tokens and its latencies."""
        self.prompt_tokens.labels(column).inc(timing.prompt_tokens)
        self.generation_tokens.labels(column).inc(timing.output_tokens)
        if not timing.chunk_times_s:
            return
        self.request_success.labels(column, finish_reason or "unknown").inc()  # a comparison does not say
        self.ttft.labels(column).observe(timing.ttft_s)
        self.e2e.labels(column).observe(timing.e2e_s)
        if timing.tpot_s is not None:
            self.tpot.labels(column).observe(timing.tpot_s)
        for gap in timing.itls_s:
            self.itl.labels(column).observe(float(gap))

    def error(self, column: str, status: int) -> None:
        self.request_errors.labels(column or "", str(status)).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
