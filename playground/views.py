"""Text the UI shows, formatted from library values (no Gradio here, so it is tested directly)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from planner.fit import ResidentSplit, SideBySideSplit
from planner.gpus import GIB
from planner.memory import MemoryPlan
from playground.compare import ColumnSnapshot
from playground.quality import combine


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
    """The plan as a person reads it: no negative memory, the shortfall said as such."""
    kv = (f"{p.kv_cache_bytes / GIB:.2f} GiB · {p.kv_bytes_per_token:,} bytes/token" if p.kv_cache_bytes > 0
          else f"none: short by {-p.kv_cache_bytes / GIB:.2f} GiB")
    rows = [
        ("GPU", f"{p.gpu} · {p.total_bytes / GIB:.2f} GiB"),
        ("requested", f"{p.requested_bytes / GIB:.2f} GiB (gpu_memory_utilization {p.gpu_memory_utilization})"),
        ("weights", f"{p.weights_bytes / GIB:.2f} GiB per GPU"),
        ("activation peak", f"{p.activation_peak_bytes / GIB:.2f} GiB"),
        ("non-torch", f"{p.non_torch_bytes / GIB:.2f} GiB"),
        ("CUDA graphs (after the KV cache)", f"{p.cudagraph_bytes / GIB:.2f} GiB"),
        ("KV cache", kv),
    ]
    if p.fits:
        rows += [("KV tokens", f"**{p.kv_tokens:,}** ± {p.kv_tokens_spread:,}"),
                 ("concurrent sequences", f"**{p.max_concurrent_seqs}** of {p.max_model_len:,} tokens ({p.kv_concurrency:.1f}x)")]
    rows.append(("sizes from", p.structure_source))
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    verdict = ("✅ **Fits** — " if p.fits else "❌ **Does not fit** — ") + p.reason
    extra = "".join(f"\n- ⚠️ {w}" for w in p.warnings)
    if p.advice:
        extra += "\n\n**Configurations that fit** (pick one below to apply it):" + "".join(
            f"\n- {s.change}: {s.kv_tokens:,} KV tokens" for s in p.advice)
    elif not p.fits:
        extra += "\n\nNo configuration of up to 8 GPUs fits: choose a smaller model."
    return f"{verdict}\n\n{table}\n{extra}\n\n`{p.config.command('serve')}`"


def split_text(split: SideBySideSplit) -> str:
    icon = "✅" if split.fits else "❌"
    return (f"{icon} Side by side: 16-bit engine at **{split.baseline_utilization}** "
            f"({split.baseline.kv_tokens:,} KV tokens), FP8 engine at **{split.fp8_utilization}** "
            f"({split.fp8.kv_tokens:,} KV tokens). {split.reason}")


def resident_split_text(split: ResidentSplit) -> str:
    """The planner's split of one GPU between the comparison's columns, one engine per column."""
    icon = "✅" if split.fits else "❌"
    parts = ", ".join(f"{label} at **{u}** ({p.kv_tokens:,} KV tokens)"
                      for label, u, p in zip(split.labels, split.utilizations, split.plans))
    return f"{icon} {len(split.labels)} engines on one GPU: {parts}. {split.reason}"


def headline(snapshots: Sequence[ColumnSnapshot], mode: str, quality_by_column: Sequence = ()) -> str:
    """The one line a visitor came for: how much faster each engine decodes than the first (the
    reference), and, once scored, how often it picks the first one's token."""
    if len(snapshots) < 2:
        return ""
    a = snapshots[0]
    ma = a.metrics()
    how = ("each engine had the GPU to itself (fair mode: one after the other)" if mode == "fair"
           else "the engines ran at once and shared the GPU (race mode: slower than alone)")
    lines = []
    for j, b in enumerate(snapshots[1:]):
        mb = b.metrics()
        if b.error and b.finished:
            lines.append(f"### {b.label}: no answer ({b.error})")
            continue
        if not (a.decode_tok_s and b.decode_tok_s and ma and mb):
            return "_Waiting for the engines to answer…_"
        ratio = b.decode_tok_s / a.decode_tok_s
        word = f"**{ratio:.2f}× faster**" if ratio >= 1 else f"**{1 / ratio:.2f}× slower**"
        scored = combine(quality_by_column[j]) if j < len(quality_by_column) else None
        agreement = f", **{100 * scored.token_agreement:.0f}% token agreement**" if scored else ""
        lines.append(f"### {b.label} is {word} than {a.label} at decode{agreement}\n"
                     f"{b.decode_tok_s:.1f} vs {a.decode_tok_s:.1f} tok/s · TTFT {_ms(mb.ttft_p50_s)} vs {_ms(ma.ttft_p50_s)} · "
                     f"end-to-end {mb.duration_s:.2f} s vs {ma.duration_s:.2f} s")
    return "\n".join(lines) + f" · {how}."


def quality_text(quality_by_column: Sequence, labels: Sequence[str] = ("16-bit", "FP8")) -> str:
    """Every column against the first: one row per column (and per prompt when there are several)."""
    if not quality_by_column:
        return "_The quality diff is computed at temperature 0._"
    several = any(len(diffs) > 1 for diffs in quality_by_column)
    lines = ["| column | prompt | token agreement | same top | mean KL (nats/token) | KL p99 | mean Δp | "
             "top-1 logprob gap | first differing character |", "|---|---|---|---|---|---|---|---|---|"]

    def row(label: str, prompt: str, d) -> str:
        if d is None:
            return f"| {label} | {prompt} | – | – | – | – | – | – | – |"
        where = "identical" if d.first_difference_char is None else str(d.first_difference_char)
        return (f"| {label} | {prompt} | {100 * d.token_agreement:.1f}% | {100 * d.same_top:.1f}% | {d.mean_kl:.4f} | "
                f"{d.kl_p99:.4f} | {100 * d.mean_delta_p:+.2f}% | {d.mean_top1_logprob_gap:+.4f} | {where} |")

    for label, diffs in zip(labels[1:], quality_by_column):
        if several:
            lines.append(row(f"**{label}**", "all", combine(diffs)))
            lines += [row(label, str(i + 1), d) for i, d in enumerate(diffs)]
        else:
            lines.append(row(label, "1", diffs[0] if diffs else None))
    reference = labels[0]
    return (f"**Did FP8 change the answer?** Each column teacher-forced on {reference}'s answer: agreement = its top "
            f"token equals {reference}'s token; same top = both rank the same token first; KL over the top-20 tokens "
            f"(rest pooled), its mean and 99th percentile; Δp = the change in the probability of {reference}'s token "
            "(as llama.cpp's --kl-divergence reports them).\n\n" + "\n".join(lines))


def precision_table(rows) -> str:
    """FP16 / FP8 / FP8-KV side by side (planner.compare_precisions rows)."""
    head = "| | " + " | ".join(r.precision for r in rows) + " |\n|---|" + "---|" * len(rows)

    def line(name, cell):
        return f"| {name} | " + " | ".join(cell(r) for r in rows) + " |"

    body = [
        line("verdict", lambda r: "✅ fits" if r.plan.fits else f"❌ short by {r.plan.shortfall_bytes / GIB:.2f} GiB"
             if r.plan.shortfall_bytes else "❌ does not fit"),
        line("weights per GPU", lambda r: f"{r.plan.weights_bytes / GIB:.2f} GiB"),
        line("KV cache", lambda r: f"{max(r.plan.kv_cache_bytes, 0) / GIB:.2f} GiB"),
        line("KV tokens", lambda r: f"{r.plan.kv_tokens:,} ± {r.plan.kv_tokens_spread:,}" if r.plan.fits else "–"),
        line("largest batch at the context", lambda r: f"{r.largest_batch:,}"),
        line("longest context at the batch", lambda r: f"{r.longest_context:,}"),
    ]
    return head + "\n" + "\n".join(body)


def need_text(answer) -> str:
    icon = "✅" if answer.fits else "❌"
    text = f"{icon} {answer.reason}\n\n```\n{answer.serve_command}\n```"
    if answer.fits:
        text += ("\n\nOr pin the KV cache to what this workload needs (vLLM then skips measuring it):\n\n"
                 f"```\n{answer.pinned_serve_command}\n```")
    return text


# --- The CPU backend's headline: CPU speeds for what they are, beside the GPU figures this project recorded ---

FAIR_TIMING = Path(__file__).resolve().parent.parent / "docs" / "results" / "fair-timing.json"


@cache
def recorded_gpu_figures(path: Path = FAIR_TIMING) -> tuple[dict, ...]:
    """FP8 vs BF16 on GPUs as measured by this project (docs/results/fair-timing.json, each record
    with its GPU, date, command and source page). None recorded: an empty tuple, said as such."""
    try:
        return tuple(json.loads(Path(path).read_text())["records"])
    except (OSError, ValueError, KeyError):
        return ()


def gpu_figures_text(records: Sequence[dict]) -> str:
    """The recorded GPU figures as a table, then where each came from (date, page, command)."""
    if not records:
        return "_No GPU figures recorded (docs/results/fair-timing.json is missing)._"
    rows = ["| model | GPU | 16-bit decode | FP8 decode | FP8 / 16-bit | measured |", "|---|---|---|---|---|---|"]
    sources = []
    for i, r in enumerate(records, 1):
        rows.append(f"| {r['model']} | {r['gpu']} | {r['bf16_decode_tok_s']:.1f} tok/s | {r['fp8_decode_tok_s']:.1f} tok/s "
                    f"| **{r['fp8_over_bf16']:.2f}×** | {r['date']} [{i}] |")
        sources.append(f"[{i}] {r['what']}; {r['weights']} weights; `{r['source']}`: `{r['command']}`")
    return ("**FP8 on a GPU, as this project measured it** (vLLM, each engine timed with the GPU to itself, batch 1):\n\n"
            + "\n".join(rows) + "\n\n<small>" + "<br>".join(sources) + "</small>")


CPU_WHAT_THE_SPEEDS_ARE = ("These are **CPU speeds, not FP8's**: this machine has no GPU, and a CPU has no FP8 matrix "
                           "units, so the FP8 column computes FP8's numbers (E4M3 weights and activations, as vLLM "
                           "rounds them) at 16-bit speed. What FP8 changes here is the text: the quality diff.")


def cpu_headline_intro(records: Sequence[dict] = ()) -> str:
    """The CPU backend's first screen, before any run: what the speeds will mean, and the GPU figures."""
    return (f"### On this CPU the quality diff is the answer; the speed answer is a GPU's\n{CPU_WHAT_THE_SPEEDS_ARE}\n\n"
            + gpu_figures_text(records or recorded_gpu_figures()))


def cpu_headline(snapshots: Sequence[ColumnSnapshot], quality_by_column: Sequence = (),
                 records: Sequence[dict] = ()) -> str:
    """The headline on the CPU backend: the quality diff of each column against the first leads (when
    there is one), then the CPU speeds said as CPU speeds, then the recorded GPU figures. No wording
    about a GPU's use here."""
    records = records or recorded_gpu_figures()
    if len(snapshots) < 2:
        return cpu_headline_intro(records)
    a = snapshots[0]
    leads = []
    for b, diffs in zip(snapshots[1:], quality_by_column):
        scored = [d for d in diffs if d is not None]
        if scored:
            agreement = sum(d.token_agreement for d in scored) / len(scored)
            kl = sum(d.mean_kl for d in scored) / len(scored)
            leads.append(f"### {b.label} kept {100 * agreement:.1f}% of {a.label}'s top tokens · KL "
                         f"{kl:.4f} nats/token" + (f" (mean of {len(scored)} prompts)" if len(scored) > 1 else ""))
    lead = "\n".join(leads) or "### The quality diff comes when both answers are complete (temperature 0)"
    speeds = []
    for b in snapshots[1:]:
        if not (a.decode_tok_s and b.decode_tok_s):
            speeds.append(f"{b.label}: waiting for both engines to decode")
            continue
        speeds.append(f"{b.label} {b.decode_tok_s:.1f} vs {a.label} {a.decode_tok_s:.1f} tok/s at decode "
                      f"({b.decode_tok_s / a.decode_tok_s:.2f}×)")
    return (f"{lead}\nCPU speeds, not FP8's: " + " · ".join(speeds) + f".\n\n{CPU_WHAT_THE_SPEEDS_ARE}\n\n"
            + gpu_figures_text(records))


def headline_for(backend: str):
    """The headline function of a backend: (snapshots, mode, quality_by_column=()) -> text, where
    quality_by_column holds, per column after the first, its per-prompt diffs against the first."""
    if backend == "cpu":
        return lambda snapshots, mode, quality=(): cpu_headline(snapshots, quality)
    return lambda snapshots, mode, quality=(): headline(snapshots, mode, quality)


def headline_placeholder(backend: str) -> str:
    if backend == "cpu":
        return cpu_headline_intro()
    return "_Run a prompt: each engine's decode speed against the first column's appears here._"


def mode_choices(backend: str) -> list[tuple[str, str]]:
    """The timing modes in words that name what the engines share (a CPU run claims no GPU)."""
    device = "the CPU" if backend == "cpu" else "the GPU"
    return [(f"Fair: one engine after the other, each with {device} to itself", "fair"),
            (f"Race: both at once, sharing {device} (slower than alone)", "race")]
