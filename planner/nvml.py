"""The only module that talks to NVML (pynvml, from the nvidia-ml-py package).

Readings come back as frozen GpuReading values; everything else in the planner works on those.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

from planner.errors import PlannerError
from planner.gpus import GpuSpec, preset_for_device_name


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_bytes: int | None  # None where NVML cannot say (some containers)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    processes: tuple[GpuProcess, ...]
    compute_capability: tuple[int, int]
    bandwidth_gb_s: float | None  # from bus width x max memory clock; None if NVML won't say
    driver_version: str
    power_w: float | None

    def to_spec(self) -> GpuSpec:
        """A GpuSpec for planning: live memory, datasheet tensor-core rates where the name is known."""
        preset = preset_for_device_name(self.name)
        return GpuSpec(
            name=self.name,
            total_bytes=self.total_bytes,
            bandwidth_gb_s=self.bandwidth_gb_s or (preset.bandwidth_gb_s if preset else 0.0),
            fp16_tflops=preset.fp16_tflops if preset else 0.0,
            fp8_tflops=preset.fp8_tflops if preset else 0.0,
            compute_capability=self.compute_capability,
            free_bytes=self.free_bytes,
        )


@contextmanager
def _nvml():
    try:
        import pynvml
    except ImportError as e:  # the package is a hard dependency, but say what to do if it is gone
        raise PlannerError("gpu", "pynvml is not installed: pip install nvidia-ml-py") from e
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        raise PlannerError(
            "gpu",
            f"NVML is not available on this machine ({e}): no NVIDIA driver was found. "
            "Plan with a preset instead, for example gpu_preset('h100-sxm') or --gpu h100-sxm.",
        ) from e
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def _optional(call, *args):
    """NVML answers 'not supported' for some fields on some boards and in some containers."""
    import pynvml

    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


def _read_one(nvml, index: int) -> GpuReading:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    processes = _optional(nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
    bus_bits = _optional(nvml.nvmlDeviceGetMemoryBusWidth, handle)
    mem_clock_mhz = _optional(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_MEM)
    # HBM/GDDR move data on both clock edges: bytes/s = bus bytes x clock x 2.
    bandwidth = bus_bits / 8 * mem_clock_mhz * 1e6 * 2 / 1e9 if bus_bits and mem_clock_mhz else None
    power_mw = _optional(nvml.nvmlDeviceGetPowerUsage, handle)
    name = nvml.nvmlDeviceGetName(handle)
    return GpuReading(
        index=index,
        name=name.decode() if isinstance(name, bytes) else name,
        total_bytes=int(memory.total),
        free_bytes=int(memory.free),
        used_bytes=int(memory.used),
        processes=tuple(
            GpuProcess(pid=p.pid, used_bytes=p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None)
            for p in processes
        ),
        compute_capability=tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle)),
        bandwidth_gb_s=bandwidth,
        driver_version=str(nvml.nvmlSystemGetDriverVersion()),
        power_w=power_mw / 1000 if power_mw is not None else None,
    )


def read_gpus(index: int | None = None) -> list[GpuReading]:
    """One reading per GPU (or only GPU ``index``). Raises PlannerError without a driver."""
    with _nvml() as nvml:
        count = nvml.nvmlDeviceGetCount()
        if index is None:
            return [_read_one(nvml, i) for i in range(count)]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise PlannerError("gpu_index", f"{index!r} does not exist: this machine has GPUs 0..{count - 1}")
        return [_read_one(nvml, index)]


@dataclass(frozen=True)
class PowerMemorySample:
    t_s: float
    used_bytes: int
    power_w: float | None


def sample(index: int = 0) -> PowerMemorySample:
    """One memory/power sample, for the benchmark's NVML sampler thread."""
    with _nvml() as nvml:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        power_mw = _optional(nvml.nvmlDeviceGetPowerUsage, handle)
        return PowerMemorySample(
            t_s=time.perf_counter(),
            used_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).used),
            power_w=power_mw / 1000 if power_mw is not None else None,
        )
