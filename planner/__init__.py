"""Predict what fits on a GPU under vLLM before anything is loaded.

    from planner import plan, model_spec, gpu_preset, read_gpus
    p = plan(model_spec("llama-2-7b"), gpu_preset("h100-sxm"), quantization="fp8", kv_cache_dtype="auto",
             dtype="float16", gpu_memory_utilization=0.9, max_model_len=2048, tensor_parallel_size=1)
    p.kv_tokens, p.weights_bytes, p.kv_bytes_per_token, p.max_concurrent_seqs, p.fits
"""

from planner.errors import PlannerError
from planner.fit import SideBySideSplit, largest_model, max_batch_size, max_context_len, side_by_side_split
from planner.gpus import GpuSpec, gpu_preset, gpu_presets
from planner.memory import CALIBRATION, Calibration, MemoryPlan, plan
from planner.models import ModelSpec, catalog_names, model_spec
from planner.nvml import GpuReading, read_gpus

__all__ = [
    "CALIBRATION", "Calibration", "GpuReading", "GpuSpec", "MemoryPlan", "ModelSpec", "PlannerError",
    "SideBySideSplit", "catalog_names", "gpu_preset", "gpu_presets", "largest_model", "max_batch_size",
    "max_context_len", "model_spec", "plan", "read_gpus", "side_by_side_split",
]
