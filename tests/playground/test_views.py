from planner import gpu_preset, model_spec, plan, side_by_side_split
from planner.nvml import GpuProcess, GpuReading
from playground import views


def test_gpu_readings_show_free_memory_processes_and_bandwidth():
    reading = GpuReading(index=0, name="NVIDIA H100 80GB HBM3", total_bytes=85_520_809_984, free_bytes=40 * 2**30,
                         used_bytes=39 * 2**30, reserved_bytes=503_316_480, processes=(GpuProcess(7, 38 * 2**30),),
                         compute_capability=(9, 0), bandwidth_gb_s=3352.32, driver_version="580.159.04", power_w=70.0)
    text = views.gpu_readings_text([reading])
    assert "40.00 of 79.65 GiB free" in text and "pid 7 38.0 GiB" in text and "3,352 GB/s" in text
    assert "presets" in views.gpu_readings_text([])


def test_plan_table_shows_the_verdict_tokens_and_advice():
    fitting = plan(model_spec("llama-2-7b"), gpu_preset("h100-sxm"), max_model_len=2048)
    ok = views.plan_table(fitting)
    assert ok.startswith("✅ **Fits**") and f"{fitting.kv_tokens:,}" in ok
    bad = views.plan_table(plan(model_spec("llama-3.1-70b"), gpu_preset("h100-sxm"), max_model_len=8192))
    assert bad.startswith("❌ **Does not fit**") and "tensor_parallel_size=2" in bad and "short by" in bad
    assert "None" not in bad and "-" + "0" not in bad.split("sizes from")[0].replace("--", "")
    split = views.split_text(side_by_side_split(model_spec("llama-2-7b"), gpu_preset("h100-sxm"), batch_size=16, context_len=1024))
    assert "16-bit engine at **0.5**" in split
