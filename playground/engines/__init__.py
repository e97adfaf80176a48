"""Engines behind one small interface (base.Engine): vllm_engine (GPU) and cpu_engine (embedded default)."""

from playground.engines.base import (
    Engine, EngineInfo, GenerationRequest, RequestError, SamplingSettings, StreamChunk,
)

__all__ = ["Engine", "EngineInfo", "GenerationRequest", "RequestError", "SamplingSettings", "StreamChunk"]
