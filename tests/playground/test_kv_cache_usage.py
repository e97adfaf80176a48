"""KV-cache usage on /metrics: vLLM's scheduler reports it to a stat logger on the engine, and the
app's gauge reads it per column (the CPU engine has no KV pool, so its columns publish none)."""

import sys
import types
from types import SimpleNamespace

import pytest

from playground.prom import ColumnMetrics


def fake_playground(*engines):
    supervised = [SimpleNamespace(info=SimpleNamespace(label=label), engine=engine, ready=True)
                  for label, engine in engines]
    return SimpleNamespace(engines=supervised, _phases=None, on_request_done=[])


def test_the_gauge_carries_each_engines_usage_and_leaves_out_an_engine_without_one():
    text = ColumnMetrics(fake_playground(("16-bit", SimpleNamespace(kv_cache_usage=0.25, num_running=3)),
                                         ("FP8", SimpleNamespace(num_running=0)))).text().decode()
    lines = [line for line in text.splitlines() if line.startswith("vllm:kv_cache_usage_perc")]
    assert lines == ['vllm:kv_cache_usage_perc{column="16-bit"} 0.25'], lines
    assert 'vllm:num_requests_running{column="16-bit"} 3.0' in text


@pytest.fixture
def fake_vllm_loggers(monkeypatch):
    """vllm.v1.metrics.loggers' StatLoggerBase as vLLM 0.25.1 defines it (abstract __init__, record,
    log_engine_initialized), for the machines without vLLM."""
    from abc import ABC, abstractmethod

    class StatLoggerBase(ABC):
        @abstractmethod
        def __init__(self, vllm_config, engine_index: int = 0): ...

        @abstractmethod
        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0): ...

        @abstractmethod
        def log_engine_initialized(self): ...

    module = types.ModuleType("vllm.v1.metrics.loggers")
    module.StatLoggerBase = StatLoggerBase
    for name in ("vllm", "vllm.v1", "vllm.v1.metrics"):
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "vllm.v1.metrics.loggers", module)


def test_the_stat_logger_keeps_the_schedulers_latest_usage_on_the_engine(fake_vllm_loggers):
    from playground.engines.vllm_engine import kv_usage_logger

    engine = SimpleNamespace(kv_cache_usage=None)
    logger = kv_usage_logger(engine)(vllm_config=None, engine_index=0)  # vLLM calls the factory so
    logger.record(SimpleNamespace(kv_cache_usage=0.4), None)
    assert engine.kv_cache_usage == 0.4
    logger.record(None, SimpleNamespace())  # an iteration without scheduler stats keeps the last figure
    assert engine.kv_cache_usage == 0.4
    logger.record(SimpleNamespace(kv_cache_usage=0.1), None)
    assert engine.kv_cache_usage == 0.1
