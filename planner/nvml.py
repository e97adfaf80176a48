"""The only module that talks to NVML (pynvml, from the nvidia-ml-py package).

Readings come back as frozen GpuReading values; everything else in the planner works on those.
"""

from __future__ import annotations

import os

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
    used_bytes: int  # includes reserved_bytes (NVML's v1 memory info)
    reserved_bytes: int
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
            reserved_bytes=self.reserved_bytes,
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
    memory_v2 = _optional(nvml.nvmlDeviceGetMemoryInfo, handle, nvml.nvmlMemory_v2)
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
        reserved_bytes=int(memory_v2.reserved) if memory_v2 is not None else 0,
        processes=tuple(
            GpuProcess(pid=p.pid, used_bytes=p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None)
            for p in processes
        ),
        compute_capability=tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle)),
        bandwidth_gb_s=bandwidth,
        driver_version=str(nvml.nvmlSystemGetDriverVersion()),
        power_w=power_mw / 1000 if power_mw is not None else None,
    )


def visible_gpu_index(position: int = 0) -> int:
    """NVML's index of the GPU that CUDA calls ``position``: NVML ignores CUDA_VISIBLE_DEVICES, so a
    process limited to GPU 2 must read NVML device 2, not 0."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if position < len(visible) and visible[position].isdigit():
        return int(visible[position])
    return position


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


class Sampler:
    """Samples one GPU's memory and power in a background thread while a block runs:

        with Sampler(0) as s: run()
        s.summary()  # {'peak_memory_bytes': ..., 'mean_power_w': ...}
    """

    def __init__(self, index: int = 0, interval_s: float = 0.1):
        import threading

        self.index, self.interval_s = index, interval_s
        self.samples: list[PowerMemorySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with _nvml() as nvml:
            handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
            while not self._stop.is_set():
                power_mw = _optional(nvml.nvmlDeviceGetPowerUsage, handle)
                self.samples.append(PowerMemorySample(
                    t_s=time.perf_counter(), used_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).used),
                    power_w=power_mw / 1000 if power_mw is not None else None,
                ))
                self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        powers = [s.power_w for s in self.samples if s.power_w is not None]
        return {
            "peak_memory_bytes": max((s.used_bytes for s in self.samples), default=None),
            "mean_power_w": sum(powers) / len(powers) if powers else None,
        }
