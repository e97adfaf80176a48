"""Predict what fits on a GPU under vLLM before anything is loaded.

    from planner import EngineConfig, plan, gpu_preset
    p = plan(EngineConfig(model="llama-2-7b", quantization="fp8", max_model_len=2048), gpu_preset("h100-sxm"))
    p.kv_tokens, p.weights_bytes, p.kv_bytes_per_token, p.max_concurrent_seqs, p.fits
"""

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from planner.fit import (
    NeedAnswer, PrecisionRow, SideBySideSplit, compare_precisions, largest_model, max_batch_size, max_context_len,
    min_utilization_for, side_by_side_split,
)
from planner.fit import ResidentSplit, resident_split
from planner.gpus import GpuSpec, gpu_preset, gpu_presets
from planner.memory import CALIBRATION, Calibration, MemoryPlan, Suggestion, plan
from planner.models import ModelSpec, catalog_names, model_spec
from planner.nvml import GpuReading, read_gpus
from planner.quantization import QuantScheme, parse_quantization_config

__all__ = [
    "CALIBRATION", "Calibration", "EngineConfig", "GpuReading", "GpuSpec", "MemoryPlan", "ModelSpec", "NeedAnswer",
    "PlannerError", "PrecisionRow", "SideBySideSplit", "Suggestion", "catalog_names", "compare_precisions",
    "gpu_preset", "gpu_presets", "largest_model", "max_batch_size", "max_context_len", "min_utilization_for",
    "model_spec", "parse_quantization_config", "plan", "QuantScheme", "read_gpus", "side_by_side_split",
    "ResidentSplit", "resident_split",
]
