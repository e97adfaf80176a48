"""GPU specs: bundled presets for planning without a GPU, and the value live NVML readings become."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from planner.assets import load_json
from planner.errors import PlannerError

GIB = 1 << 30


@dataclass(frozen=True)
class GpuSpec:
    """One GPU as the planner sees it. free_bytes is None for a preset (an empty GPU)."""

    name: str
    total_bytes: int
    bandwidth_gb_s: float = 0.0  # peak HBM bandwidth; 0 = unknown
    fp16_tflops: float = 0.0  # dense tensor-core rate; 0 = unknown
    fp8_tflops: float = 0.0  # 0 = no FP8 tensor cores
    compute_capability: tuple[int, int] = (0, 0)
    free_bytes: int | None = None
    reserved_bytes: int = 0  # kept back by the driver; CUDA (and so vLLM) never sees it

    @property
    def available_bytes(self) -> int:
        """What a new engine can have: the free memory of a live GPU, all of CUDA's total on a preset."""
        return self.free_bytes if self.free_bytes is not None else self.cuda_total_bytes

    @property
    def cuda_total_bytes(self) -> int:
        """What cudaMemGetInfo calls total: the base of vLLM's gpu_memory_utilization."""
        return self.total_bytes - self.reserved_bytes

    @property
    def supports_fp8_tensor_cores(self) -> bool:
        return self.compute_capability >= (8, 9)

    @property
    def is_hopper(self) -> bool:
        return self.compute_capability[0] == 9


def gpu_presets() -> dict[str, dict]:
    return load_json("gpus.json")["gpus"]


def gpu_preset(name: str) -> GpuSpec:
    """The spec of a bundled GPU: h100-sxm, h100-pcie, h200, a100-80gb, a100-40gb, l40s, rtx-4090."""
    presets = gpu_presets()
    key = str(name).strip().lower()
    if key not in presets:
        close = difflib.get_close_matches(key, presets, n=3, cutoff=0.3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise PlannerError("gpu", f"unknown GPU preset {name!r}.{hint} Presets: {', '.join(presets)}.")
    entry = presets[key]
    return GpuSpec(
        name=entry["name"],
        total_bytes=int(entry["total_bytes"]),
        bandwidth_gb_s=float(entry["bandwidth_gb_s"]),
        fp16_tflops=float(entry["fp16_tflops"]),
        fp8_tflops=float(entry["fp8_tflops"]),
        compute_capability=tuple(entry["compute_capability"]),
        reserved_bytes=int(entry.get("reserved_bytes", 0)),
    )


def preset_for_device_name(device_name: str) -> GpuSpec | None:
    """The preset whose NVML name matches a live device's, for its datasheet rates."""
    for key, entry in gpu_presets().items():
        if entry["name"].lower() == device_name.lower():
            return gpu_preset(key)
    return None
