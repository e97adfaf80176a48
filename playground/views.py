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
        f"**{snapshot.output_tokens}** token{'' if snapshot.output_tokens == 1 else 's'}",
        f"TTFT **{_ms(m.ttft_p50_s if m else None)}**",
        f"decode **{decode:.1f} tok/s**" if decode else "decode –",
        f"end-to-end **{m.duration_s:.2f} s**" if m else "end-to-end –",
    ]
    line = " · ".join(parts) + ("" if snapshot.finished else " · streaming…")
    if snapshot.error:
        line += f"\n\n**Error:** {snapshot.error}"
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


def kv_tokens_text(p: MemoryPlan) -> str:
    """The one KV-tokens figure of a plan: the low end of its ±, the number the verdict counts on."""
    low = p.kv_tokens - p.kv_tokens_spread
    return f"{low:,}+ (planned {p.kv_tokens:,} ± {p.kv_tokens_spread:,})"


def sequences_text(p: MemoryPlan) -> str:
    """Sequences of max_model_len at once, from the same low end as the verdict (capped by max_num_seqs)."""
    low = p.kv_tokens - p.kv_tokens_spread
    at_once = min(p.max_num_seqs, low // p.max_model_len)
    capped = f", capped by max_num_seqs={p.max_num_seqs}" if at_once == p.max_num_seqs else ""
    return f"{at_once:,} of {p.max_model_len:,} tokens ({low / p.max_model_len:.1f}x the context{capped})"


def serve_line(p: MemoryPlan) -> str:
    """The `vllm serve` line to run: this plan's when it fits, else the first suggestion's (or none)."""
    if p.fits:
        return f"Run it:\n\n```\n{p.config.command('serve')}\n```"
    if p.advice:
        return (f"Run the first configuration that fits ({p.advice[0].change}):\n\n"
                f"```\n{p.advice[0].config.command('serve')}\n```")
    return ""


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
        ("CUDA-graph estimate (inside the request)", f"{p.cudagraph_estimate_bytes / GIB:.2f} GiB: vLLM sets it aside "
                                                     "before sizing the KV cache"),
        ("CUDA graphs (outside the request)", f"{p.cudagraph_bytes / GIB:.2f} GiB: captured after the KV cache"),
        ("KV cache", kv),
    ]
    if p.fits:
        rows += [("KV tokens", f"**{kv_tokens_text(p)}**"),
                 ("concurrent sequences", f"**{sequences_text(p)}**")]
    rows.append(("sizes from", p.structure_source))
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    verdict = ("**Fits**: " if p.fits else "**Does not fit**: ") + p.reason
    extra = "".join(f"\n- Note: {w}" for w in p.warnings)
    if p.advice:
        extra += "\n\n**Configurations that fit** (pick one below to apply it):" + "".join(
            f"\n- {s.change}: {s.kv_tokens_low:,}+ KV tokens" + (f" ({s.why})" if s.why else "")
            for s in p.advice)
    elif not p.fits:
        extra += "\n\nNo configuration of up to 8 GPUs fits: choose a smaller model."
    line = serve_line(p)
    return f"{verdict}\n\n{table}\n{extra}" + (f"\n\n{line}" if line else "")


def split_text(split: SideBySideSplit) -> str:
    word = "Fits" if split.fits else "Does not fit"
    return (f"{word}. Side by side: 16-bit engine at **{split.baseline_utilization}** "
            f"({split.baseline.kv_tokens:,} KV tokens), FP8 engine at **{split.fp8_utilization}** "
            f"({split.fp8.kv_tokens:,} KV tokens). {split.reason}")


def resident_split_text(split: ResidentSplit) -> str:
    """The planner's split of one GPU between the comparison's columns, one engine per column."""
    word = "Fits" if split.fits else "Does not fit"
    parts = ", ".join(f"{label} at **{u}** ({p.kv_tokens:,} KV tokens)"
                      for label, u, p in zip(split.labels, split.utilizations, split.plans))
    return f"{word}. {len(split.labels)} engines on one GPU: {parts}. {split.reason}"


# A speed ratio needs this many tokens after the first from each engine: decode tok/s is (n - 1) tokens over
# their time, so with fewer one slow step (a scheduler hiccup, the other engine's start) weighs more than 1/16.
MIN_DECODE_TOKENS = 16


def decode_tokens(snapshot: ColumnSnapshot) -> int:
    """Tokens after each request's first: what the decode speed is measured over."""
    return sum(max(t.output_tokens - 1, 0) for t in snapshot.timings)


def headline(snapshots: Sequence[ColumnSnapshot], mode: str, quality_by_column: Sequence = ()) -> str:
    """The one line a visitor came for: how much faster each engine decodes than the first (the
    reference), and, once scored, how often it picks the first one's token. Shown once both have
    MIN_DECODE_TOKENS decode tokens, marked provisional until both have finished."""
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
        counts = f"{a.label} {decode_tokens(a)}, {b.label} {decode_tokens(b)}"
        if min(decode_tokens(a), decode_tokens(b)) < MIN_DECODE_TOKENS or not (a.decode_tok_s and b.decode_tok_s and ma and mb):
            if a.finished and b.finished:
                return (f"_Too few tokens to compare speeds ({counts} after the first; {MIN_DECODE_TOKENS} each are "
                        "needed): raise Max new tokens or ask for a longer answer._")
            return (f"_The ratio appears once each engine has {MIN_DECODE_TOKENS} tokens after its first "
                    f"(so far {counts})…_")
        ratio = b.decode_tok_s / a.decode_tok_s
        word = f"**{ratio:.2f}× faster**" if ratio >= 1 else f"**{1 / ratio:.2f}× slower**"
        provisional = "" if a.finished and b.finished else " (provisional: still streaming)"
        scored = combine(quality_by_column[j]) if j < len(quality_by_column) else None
        agreement = f", **{100 * scored.token_agreement:.0f}% token agreement**" if scored else ""
        lines.append(f"### {b.label} is {word} than {a.label} at decode{agreement}{provisional}\n"
                     f"{b.decode_tok_s:.1f} vs {a.decode_tok_s:.1f} tok/s · TTFT {_ms(mb.ttft_p50_s)} vs {_ms(ma.ttft_p50_s)} · "
                     f"end-to-end {mb.duration_s:.2f} s vs {ma.duration_s:.2f} s")
    return "\n".join(lines) + f" · {how}."


def stopped_headline(snapshots: Sequence[ColumnSnapshot], mode: str, backend: str = "vllm") -> str:
    """After Stop: the ratio only if every engine had finished; a partial run's ratio is not a result. On the CPU
    the recorded GPU figures stay (the notes under the columns point to them)."""
    if snapshots and all(s.finished for s in snapshots):
        return headline_for(backend)(snapshots, mode)
    stopped = "_Stopped before every engine finished: no speed ratio from a partial run. Run again to compare._"
    return stopped + "\n\n" + cpu_headline_intro() if backend == "cpu" else stopped


def stopped_metrics(snapshot: ColumnSnapshot) -> str:
    """A column after Stop: a finished one keeps its metrics; a running one says what it had."""
    if snapshot.finished:
        return column_metrics(snapshot)
    m = snapshot.metrics()
    if not m:
        return "Stopped before its first token."
    n = snapshot.output_tokens
    return f"Stopped: {n} token{'' if n == 1 else 's'} in {m.duration_s:.2f} s before Stop (partial)."


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
            "(as llama.cpp's --kl-divergence reports them). Scored this way, one differing token does not count "
            "against every token after it: two answers that part at their first word can still agree on most "
            "tokens, since after the split each answer follows its own words.\n\n" + "\n".join(lines))


def precision_table(rows) -> str:
    """FP16 / FP8 / FP8-KV side by side (planner.compare_precisions rows)."""
    head = "| | " + " | ".join(r.precision for r in rows) + " |\n|---|" + "---|" * len(rows)

    def line(name, cell):
        return f"| {name} | " + " | ".join(cell(r) for r in rows) + " |"

    body = [
        line("verdict", lambda r: "fits" if r.plan.fits else f"does not fit: short by {r.plan.shortfall_bytes / GIB:.2f} GiB"
             if r.plan.shortfall_bytes else "does not fit"),
        line("weights per GPU", lambda r: f"{r.plan.weights_bytes / GIB:.2f} GiB"),
        line("KV cache", lambda r: f"{max(r.plan.kv_cache_bytes, 0) / GIB:.2f} GiB"),
        line("KV tokens", lambda r: kv_tokens_text(r.plan) if r.plan.fits else "–"),
        line("largest batch", lambda r: f"{r.largest_batch:,} sequences of {r.context_len:,} tokens"
             if r.context_len else f"{r.largest_batch:,}"),
        line("longest context", lambda r: f"{r.longest_context:,} tokens for {r.batch_size:,} sequence"
             f"{'' if r.batch_size == 1 else 's'}" if r.batch_size else f"{r.longest_context:,}"),
    ]
    return head + "\n" + "\n".join(body)


def need_text(answer) -> str:
    if not answer.fits:  # no line to print: the failing one would not start
        return f"**Does not fit**: {answer.reason}"
    text = f"**Fits**: {answer.reason}\n\n```\n{answer.serve_command}\n```"
    if answer.fits:
        text += ("\n\nOr pin the KV cache to what this workload needs (vLLM then skips measuring it):\n\n"
                 f"```\n{answer.pinned_serve_command}\n```")
    return text


def _said(text: str) -> str:
    """Text from an engine's facts, safe inside the HTML of the engine line."""
    from html import escape

    return escape(str(text), quote=False)


def _weights(info) -> str:
    """How a GPU or remote engine stores its weights: vLLM's dtype is both its weights' and its compute's."""
    quant = str(info.quantization or "")
    return "FP8 weights" if quant.startswith("fp8") else f"{_said(quant)} weights" if quant else \
        f"{_said(str(info.dtype).split(' (')[0])} weights"


def _cpu_precision(info) -> str:
    """What the CPU engine holds and what it computes in, which differ here: the weights are 16-bit or
    rounded to FP8, the matmuls run in the dtype measured fastest on this CPU at start-up."""
    compute = _said(str(info.dtype).split(" (")[0])
    quant = str(info.quantization or "")
    if "FP8 from config.json" in quant:  # an FP8 checkpoint: its own E4M3 weights and scales
        return f"FP8 weights (E4M3, from the checkpoint), computed in {compute}"
    if quant.startswith("fp8"):  # online FP8: the 16-bit weights rounded onto the E4M3 grid in this process
        return f"FP8 weights (E4M3, rounded once at load), computed in {compute}"
    if quant:  # another checkpoint method, decompressed at load
        return f"{_said(quant.split(' (')[0])} weights decompressed to 16-bit, computed in {compute}"
    return f"16-bit model computed in {compute}"


def engine_line(engine) -> str:
    """One engine as a person says it ("FP8: SmolLM2-135M-Instruct, FP8 weights (E4M3, rounded once at
    load), computed in bfloat16 on this CPU"), the engine's own parameter names one click away. ``engine`` is a runtime.SupervisedEngine."""
    info = engine.info
    if not engine.ready:
        return f"<p>{_said(engine.status_line())}</p>"
    model = str(info.model).removesuffix(" (CPU)").rstrip("/").rsplit("/", 1)[-1]
    kv = ", FP8 KV cache" if str(info.kv_cache_dtype).startswith("fp8") else ""
    room = f", room for {info.kv_tokens:,} tokens of KV cache" if info.kv_tokens else ""
    precision = f"{_cpu_precision(info)} on this CPU" if info.backend == "cpu" else \
        f"{_weights(info)}{kv}, on {_said(info.gpu_name or 'the CPU')}"
    restarts = f" (restarted {engine.restarts}x)" if engine.restarts else ""
    facts = [("backend", info.backend), ("model", info.model), ("dtype", info.dtype),
             ("quantization", info.quantization or "none"), ("kv_cache_dtype", info.kv_cache_dtype),
             ("max_model_len", f"{info.max_model_len:,}" if info.max_model_len else "–")]
    if info.gpu_memory_utilization:
        facts.append(("gpu_memory_utilization", info.gpu_memory_utilization))
    facts += [("note", n) for n in (*info.notes, info.planner_note) if n]
    details = "".join(f"<li><code>{_said(k)}</code>: {_said(v)}</li>" for k, v in facts)
    return (f"<details><summary><b>{_said(info.label)}</b>: {_said(model)}, {precision}{room}"
            f"{restarts}</summary><ul>{details}</ul></details>")


def engine_lines(engines) -> str:
    """The engine status block at the top of the page."""
    return "\n".join(engine_line(e) for e in engines)


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
            leads.append(f"### {b.label} kept {100 * agreement:.1f}% of {a.label}'s top tokens (scored on "
                         f"{a.label}'s answer) · KL "
                         f"{kl:.4f} nats/token" + (f" (mean of {len(scored)} prompts)" if len(scored) > 1 else ""))
    lead = "\n".join(leads) or "### The quality diff comes when both answers are complete (temperature 0)"
    speeds = []
    for b in snapshots[1:]:
        counts = f"{a.label} {decode_tokens(a)}, {b.label} {decode_tokens(b)}"
        if min(decode_tokens(a), decode_tokens(b)) < MIN_DECODE_TOKENS or not (a.decode_tok_s and b.decode_tok_s):
            speeds.append(f"too few tokens to compare ({counts} after the first; {MIN_DECODE_TOKENS} each are needed)"
                          if a.finished and b.finished else
                          f"{b.label}: the speeds appear once each engine has {MIN_DECODE_TOKENS} tokens after its "
                          f"first (so far {counts})")
            continue
        provisional = "" if a.finished and b.finished else " (provisional: still streaming)"
        speeds.append(f"{b.label} {b.decode_tok_s:.1f} vs {a.label} {a.decode_tok_s:.1f} tok/s at decode "
                      f"({b.decode_tok_s / a.decode_tok_s:.2f}×){provisional}")
    return (f"{lead}\nOn this CPU: " + " · ".join(speeds) + f".\n\n{CPU_WHAT_THE_SPEEDS_ARE}\n\n"
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


def device_words(backend: str) -> str:
    """What the engines of a backend share, said so that a CPU run claims no GPU."""
    return "the CPU" if backend == "cpu" else "the GPU"


def mode_choices(backend: str) -> list[tuple[str, str]]:
    """The timing modes in words that name what the engines share (a CPU run claims no GPU)."""
    device = device_words(backend)
    return [(f"Fair: one engine after the other, each with {device} to itself", "fair"),
            (f"Race: both at once, sharing {device} (slower than alone)", "race")]


# --- Goodput in words: the number a buyer of GPUs wants, from a sweep's rows ---

PRECISION_WORDS = {"fp16": "16-bit", "fp8": "FP8", "fp8-kv8": "FP8 with an FP8 KV cache"}
SLO_WORDS = {"ttft": "TTFT", "tpot": "TPOT", "e2el": "end-to-end latency"}
_WHERE = {"cpu": "on this CPU", "vllm": "on this GPU"}  # a remote server's or guidellm's run: where it ran


def _precision_said(name: str) -> str:
    """A sweep row's precision as the page says it ("fp8 (#5)" → "FP8 (#5)"); a column label as it is."""
    base, sep, rest = name.partition(" ")
    return PRECISION_WORDS.get(base, base) + sep + rest


def slo_words(slo: str) -> str:
    """``"ttft:500 tpot:50"`` as a person reads it: "TTFT ≤ 500 ms and TPOT ≤ 50 ms"."""
    from playground.metrics import parse_slo

    bounds = [f"{SLO_WORDS[name]} ≤ {ms:g} ms" for name, ms in parse_slo(slo)]
    return " and ".join(bounds) if len(bounds) < 3 else ", ".join(bounds[:-1]) + " and " + bounds[-1]


def goodput_text(rows: Sequence[dict], baseline: str, backend: str) -> str:
    """Each precision's goodput against the baseline's, in words, under the SLO the sweep counted it
    with: each at its best concurrency of the sweep (the rate it can serve within the SLO). Empty for
    fewer than two precisions or no SLO; a baseline that served nothing within the SLO is said so."""
    slo = next((r["slo"] for r in rows if r.get("slo")), "")
    best: dict[str, dict] = {}
    for r in rows:
        if r.get("goodput_requests_per_s") is None:
            continue
        if r["precision"] not in best or r["goodput_requests_per_s"] > best[r["precision"]]["goodput_requests_per_s"]:
            best[r["precision"]] = r
    if not slo or baseline not in best or len(best) < 2:
        return ""
    where, base = _WHERE.get(backend, "on the servers measured"), best[baseline]
    at = lambda r: f"{r['goodput_requests_per_s']:.2f} req/s at concurrency {r['concurrency']}"  # noqa: E731
    lines = []
    for name, r in best.items():
        if name == baseline:
            continue
        other, ref = _precision_said(name), _precision_said(baseline)
        if base["goodput_requests_per_s"] == 0:
            lines.append(f"At {slo_words(slo)}, {ref} served no request within the SLO at any concurrency of this "
                         f"sweep {where}, so there is no ratio; {other} served " +
                         (f"{at(r)}." if r["goodput_requests_per_s"] else "none either."))
        elif r["goodput_requests_per_s"] == 0:
            lines.append(f"At {slo_words(slo)}, {other} served no request within the SLO at any concurrency of this "
                         f"sweep {where}; {ref} served {at(base)}.")
        else:
            lines.append(f"At {slo_words(slo)}, **{other} serves {r['goodput_requests_per_s'] / base['goodput_requests_per_s']:.2f}×** "
                         f"the requests per second of {ref} {where} (each at its best of the sweep: {at(r)}, "
                         f"against {at(base)}).")
    return "\n\n".join(lines)
