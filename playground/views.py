"""Text the UI shows, formatted from library values (no Gradio here, so it is tested directly)."""

from __future__ import annotations

from collections.abc import Sequence

from planner.fit import SideBySideSplit
from planner.gpus import GIB
from planner.memory import MemoryPlan
from playground.compare import ColumnSnapshot


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds is not None else "–"


def column_text(snapshot: ColumnSnapshot) -> str:
    if len(snapshot.texts) == 1:
        return snapshot.texts[0]
    return "\n\n".join(f"[prompt {i + 1}]\n{t}" for i, t in enumerate(snapshot.texts))


def column_metrics(snapshot: ColumnSnapshot) -> str:
    """The live line under a column: tokens, TTFT, decode speed, end-to-end time."""
    m = snapshot.metrics()
    decode = snapshot.decode_tok_s
    parts = [
        f"**{snapshot.output_tokens}** tokens",
        f"TTFT **{_ms(m.ttft_p50_s if m else None)}**",
        f"decode **{decode:.1f} tok/s**" if decode else "decode –",
        f"end-to-end **{m.duration_s:.2f} s**" if m else "end-to-end –",
    ]
    line = " · ".join(parts) + ("" if snapshot.finished else " · streaming…")
    if snapshot.error:
        line += f"\n\n⚠️ {snapshot.error}"
    return line


def comparison_api_result(snapshots: Sequence[ColumnSnapshot], divergence: str | None) -> dict:
    """The /compare API answer: texts and metrics per engine (seconds and tokens/s)."""
    columns = []
    for s in snapshots:
        m = s.metrics()
        columns.append({
            "label": s.label, "texts": list(s.texts), "error": s.error, "output_tokens": s.output_tokens,
            "ttft_s": m.ttft_p50_s if m else None, "decode_tok_s": s.decode_tok_s,
            "output_tok_s": m.output_tok_s if m else None, "e2e_s": m.duration_s if m else None,
        })
    return {"columns": columns, "divergence": divergence}


def gpu_readings_text(readings: Sequence) -> str:
    """The live NVML readings, one line per GPU (planner.nvml.GpuReading values)."""
    if not readings:
        return "_No NVIDIA GPU visible through NVML: planning with presets._"
    lines = []
    for r in readings:
        procs = ", ".join(f"pid {p.pid}" + (f" {p.used_bytes / GIB:.1f} GiB" if p.used_bytes else "") for p in r.processes)
        bandwidth = f" · {r.bandwidth_gb_s:,.0f} GB/s" if r.bandwidth_gb_s else ""
        lines.append(f"- GPU {r.index}: **{r.name}** · {r.free_bytes / GIB:.2f} of {r.total_bytes / GIB:.2f} GiB free"
                     f" · compute {r.compute_capability[0]}.{r.compute_capability[1]}{bandwidth}"
                     f" · driver {r.driver_version}" + (f" · processes: {procs}" if procs else ""))
    return "**Live GPUs (NVML)**\n" + "\n".join(lines)


def plan_table(p: MemoryPlan) -> str:
    rows = [
        ("GPU", f"{p.gpu} · {p.total_bytes / GIB:.2f} GiB"),
        ("requested", f"{p.requested_bytes / GIB:.2f} GiB (gpu_memory_utilization {p.gpu_memory_utilization})"),
        ("weights", f"{p.weights_bytes / GIB:.2f} GiB"),
        ("activation peak", f"{p.activation_peak_bytes / GIB:.2f} GiB"),
        ("non-torch", f"{p.non_torch_bytes / GIB:.2f} GiB"),
        ("CUDA graphs (after the KV cache)", f"{p.cudagraph_bytes / GIB:.2f} GiB"),
        ("KV cache", f"{p.kv_cache_bytes / GIB:.2f} GiB · {p.kv_bytes_per_token:,} bytes/token"),
        ("KV tokens", f"**{p.kv_tokens:,}** ({p.num_gpu_blocks:,} blocks of {p.block_size})"),
        ("concurrent sequences", f"**{p.max_concurrent_seqs}** of {p.max_model_len:,} tokens ({p.kv_concurrency:.1f}x)"),
    ]
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    verdict = ("✅ **Fits** — " if p.fits else "❌ **Does not fit** — ") + p.reason
    extra = "".join(f"\n- ⚠️ {w}" for w in p.warnings) + "".join(f"\n- try {a}" for a in p.advice)
    return f"{verdict}\n\n{table}\n{extra}"


def split_text(split: SideBySideSplit) -> str:
    icon = "✅" if split.fits else "❌"
    return (f"{icon} Side by side: 16-bit engine at **{split.baseline_utilization}** "
            f"({split.baseline.kv_tokens:,} KV tokens), FP8 engine at **{split.fp8_utilization}** "
            f"({split.fp8.kv_tokens:,} KV tokens). {split.reason}")
