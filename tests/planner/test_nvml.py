import sys
import types
from types import SimpleNamespace

import pytest

from planner import PlannerError, read_gpus


class FakeNvmlError(Exception):
    pass


def fake_pynvml(count=1):
    """A stand-in for the pynvml module shaped like an H100 (values as NVML reported them on ours)."""
    m = types.ModuleType("pynvml")
    m.NVMLError = FakeNvmlError
    m.NVML_CLOCK_MEM = 2
    m.nvmlMemory_v2 = 0x02000028
    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: count
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"

    def memory(h, version=None):
        if version:
            return SimpleNamespace(total=85520809984, reserved=503316480, free=85017493504, used=0)
        return SimpleNamespace(total=85520809984, free=85017493504, used=503316480)

    m.nvmlDeviceGetMemoryInfo = memory
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: [SimpleNamespace(pid=42, usedGpuMemory=1 << 30)]
    m.nvmlDeviceGetMemoryBusWidth = lambda h: 5120
    m.nvmlDeviceGetMaxClockInfo = lambda h, clock: 2619
    m.nvmlDeviceGetPowerUsage = lambda h: 71_000
    m.nvmlDeviceGetCudaComputeCapability = lambda h: (9, 0)
    m.nvmlSystemGetDriverVersion = lambda: "580.159.04"
    return m


def test_reading_turns_nvml_fields_into_a_spec(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    reading = read_gpus()[0]
    assert reading.bandwidth_gb_s == pytest.approx(3352.32)  # 5120 bits / 8 x 2619 MHz x 2
    assert reading.processes[0].pid == 42 and reading.power_w == 71.0
    spec = reading.to_spec()
    assert spec.cuda_total_bytes == 85_017_493_504  # what vLLM's utilization applies to
    assert spec.fp8_tflops > 0 and spec.free_bytes == 85017493504


def test_a_gpu_index_that_does_not_exist_names_the_range(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=2))
    with pytest.raises(PlannerError) as e:
        read_gpus(5)
    assert e.value.argument == "gpu_index" and "0..1" in str(e.value)


def test_no_driver_is_a_clear_error_pointing_at_presets(monkeypatch):
    m = fake_pynvml()

    def fail():
        raise FakeNvmlError("NVML Shared Library Not Found")

    m.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", m)
    with pytest.raises(PlannerError, match="gpu_preset"):
        read_gpus()


def test_the_nvml_index_follows_cuda_visible_devices(monkeypatch):
    from planner.nvml import visible_gpu_index

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu_index() == 0 and visible_gpu_index(1) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpu_index() == 2 and visible_gpu_index(1) == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1234abcd")  # a UUID: NVML's order is the best guess left
    assert visible_gpu_index() == 0
