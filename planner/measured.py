"""The planner's prediction for one row of tests/data/vllm_kv_measurements.json: the engine as it was
measured (the GPU, and the batch limits where the engine was not vLLM's LLM class).

vLLM's defaults for max_num_seqs / max_num_batched_tokens depend on who builds the engine
(vllm/engine/arg_utils.py, get_batch_defaults, by UsageContext): the LLM class takes 1024 / 16384 on a
GPU of 70 GiB or more, `vllm serve` 1024 / 8192, and AsyncLLM.from_engine_args (ENGINE_CONTEXT)
SchedulerConfig's 128 / 2048. The planner assumes the LLM class unless told; a row measured
through AsyncLLM (the app, the bench CLI) carries the limits it ran with.
"""

from __future__ import annotations

from planner.gpus import gpu_preset
from planner.memory import CALIBRATION, Calibration, MemoryPlan, plan
from planner.models import model_spec


def plan_measured_row(row: dict, calibration: Calibration = CALIBRATION) -> MemoryPlan:
    return plan(model_spec(row["model"]), gpu_preset(row.get("gpu_preset", "h100-sxm")), calibration=calibration,
                advise=False, quantization=row["quantization"], kv_cache_dtype=row["kv_cache_dtype"], dtype=row["dtype"],
                gpu_memory_utilization=row["gpu_memory_utilization"], max_model_len=row["max_model_len"],
                tensor_parallel_size=row.get("tensor_parallel_size", 1), max_num_seqs=row.get("max_num_seqs"),
                max_num_batched_tokens=row.get("max_num_batched_tokens"), enforce_eager=row.get("enforce_eager", False),
                kv_cache_memory_bytes=row.get("kv_cache_memory_bytes"))
