"""plotly figures for the three tabs. Inputs are plain rows (dicts) or library values; hover shows raw numbers."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

COLORS = {"fp16": "#636EFA", "fp8": "#EF553B", "fp8-kv8": "#00CC96"}


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white",
                      margin=dict(l=50, r=20, t=50, b=40), height=340, legend=dict(orientation="h", y=-0.25))
    return fig


def speed_bars(labels: Sequence[str], decode_tok_s: Sequence[float | None], output_tok_s: Sequence[float | None]) -> go.Figure:
    """The comparison's two speeds per engine, and the ratio of the second engine to the first."""
    fig = go.Figure()
    fig.add_bar(name="decode tok/s (per request, median)", x=list(labels), y=[v or 0 for v in decode_tok_s])
    fig.add_bar(name="output tok/s (all prompts)", x=list(labels), y=[v or 0 for v in output_tok_s])
    title = "Speed"
    if len(labels) == 2 and decode_tok_s[0] and decode_tok_s[1]:
        title = f"Speed — {labels[1]}/{labels[0]} decode ratio {decode_tok_s[1] / decode_tok_s[0]:.2f}x"
    return _layout(fig, title, "engine", "tokens / s")


def memory_breakdown(parts_gib: dict[str, float], title: str) -> go.Figure:
    fig = go.Figure()
    for name, gib in parts_gib.items():
        fig.add_bar(name=name, x=["GPU memory"], y=[gib], hovertemplate=f"{name}: %{{y:.2f}} GiB<extra></extra>")
    fig.update_layout(barmode="stack")
    return _layout(fig, title, "", "GiB")


def _by_precision(points: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for p in sorted(points, key=lambda p: p["concurrency"]):
        groups.setdefault(p["precision"], []).append(p)
    return groups


def _concurrency_axis(fig: go.Figure, points: Sequence[dict]) -> None:
    """The measured concurrencies as categories, in order: no fractional ticks between them."""
    levels = sorted({p["concurrency"] for p in points})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[str(c) for c in levels])


def speed_words(ratio: float) -> str:
    """1.52 → '1.52× faster'; 0.40 → '2.50× slower' (never '0.4× faster')."""
    return f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"


def throughput(points: Sequence[dict]) -> go.Figure:
    """Output tok/s vs concurrency per precision, the roofline dashed beside each where one exists."""
    fig = go.Figure()
    for precision, rows in _by_precision(points).items():
        x = [str(r["concurrency"]) for r in rows]
        color = COLORS.get(precision)
        has_roof = any(r.get("percent_of_roofline") for r in rows)
        roof = [f" ({r['percent_of_roofline']:.0f}% of the roofline)" if r.get("percent_of_roofline") else "" for r in rows]
        fig.add_scatter(x=x, y=[r["output_tok_s"] for r in rows], mode="lines+markers", name=precision,
                        line=dict(color=color), customdata=[[t] for t in roof],
                        hovertemplate=f"{precision} · %{{x}} in flight: %{{y:,.1f}} output tok/s%{{customdata[0]}}<extra></extra>")
        if has_roof:
            fig.add_scatter(x=x, y=[r.get("roofline_output_tok_s") for r in rows], mode="lines", name=f"{precision} roofline",
                            line=dict(color=color, dash="dash"),
                            hovertemplate=f"{precision} roofline · %{{x}} in flight: %{{y:,.0f}} output tok/s<extra></extra>")
    _concurrency_axis(fig, points)
    roofed = any(p.get("roofline_output_tok_s") for p in points)
    return _layout(fig, "Output throughput vs concurrency" + (" (dashed: physical limit)" if roofed else ""),
                   "requests in flight (concurrency)", "output tok/s")


def speedup(points: Sequence[dict], baseline: str = "fp16") -> go.Figure:
    """Measured speed of each precision over the baseline per concurrency, and the roofline's ideal ratio."""
    groups = _by_precision(points)
    base = {r["concurrency"]: r for r in groups.get(baseline, [])}
    fig = go.Figure()
    for precision, rows in groups.items():
        if precision == baseline:
            continue
        paired = [r for r in rows if r["concurrency"] in base]
        x = [str(r["concurrency"]) for r in paired]
        ratios = [r["output_tok_s"] / base[r["concurrency"]]["output_tok_s"] for r in paired]
        fig.add_scatter(x=x, y=ratios, mode="lines+markers", name=f"{precision} measured",
                        line=dict(color=COLORS.get(precision)), customdata=[[speed_words(v)] for v in ratios],
                        hovertemplate=f"{precision} · %{{x}} in flight: %{{customdata[0]}} than {baseline}<extra></extra>")
        if any(r.get("roofline_output_tok_s") for r in paired):
            ideal = [(r.get("roofline_output_tok_s") or 0) / (base[r["concurrency"]].get("roofline_output_tok_s") or 1)
                     for r in paired]
            fig.add_scatter(x=x, y=ideal, mode="lines", name=f"{precision} ideal (roofline)",
                            line=dict(color=COLORS.get(precision), dash="dot"), customdata=[[speed_words(v)] for v in ideal],
                            hovertemplate=f"{precision} ideal · %{{x}} in flight: %{{customdata[0]}}<extra></extra>")
    fig.add_hline(y=1.0, line=dict(color="grey", width=1))
    _concurrency_axis(fig, points)
    return _layout(fig, f"Speed relative to {baseline} (above 1: faster)", "requests in flight (concurrency)",
                   f"× {baseline}'s output tok/s")


def latency(points: Sequence[dict]) -> go.Figure:
    """TTFT and TPOT percentiles (ms) per precision and concurrency."""
    fig = go.Figure()
    for precision, rows in _by_precision(points).items():
        x = [str(r["concurrency"]) for r in rows]
        for metric, dash in (("ttft", "solid"), ("tpot", "dot")):
            for pct in ("p50", "p99"):
                key = f"{metric}_{pct}_s"
                name = f"{precision} {metric.upper()} {pct}"
                fig.add_scatter(x=x, y=[(r.get(key) or 0) * 1000 for r in rows], mode="lines+markers",
                                name=name, line=dict(color=COLORS.get(precision), dash=dash),
                                opacity=1.0 if pct == "p50" else 0.5,
                                hovertemplate=f"{name} · %{{x}} in flight: %{{y:,.1f}} ms<extra></extra>")
    fig.update_yaxes(type="log")
    _concurrency_axis(fig, points)
    return _layout(fig, "Latency: TTFT (time to first token, solid), TPOT (per output token, dotted)",
                   "requests in flight (concurrency)", "ms")


def memory(points: Sequence[dict]) -> go.Figure:
    fig = go.Figure()
    for precision, rows in _by_precision(points).items():
        fig.add_bar(name=precision, x=[str(r["concurrency"]) for r in rows],
                    y=[(r.get("peak_memory_bytes") or 0) / 2**30 for r in rows], marker_color=COLORS.get(precision),
                    hovertemplate=f"{precision} · %{{x}} in flight: %{{y:.2f}} GiB peak<extra></extra>")
    sampled = any(r.get("peak_memory_bytes") for r in points)
    title = "Peak GPU memory during the point (NVML)" if sampled else "GPU memory: not sampled (no NVIDIA GPU)"
    _concurrency_axis(fig, points)
    return _layout(fig, title, "requests in flight (concurrency)", "GiB")


def timeline(snapshots, mode: str) -> go.Figure:
    """Tokens against time from each request's own start, both engines on one chart: the race at
    true relative speed (in fair mode each engine was timed with the GPU to itself)."""
    fig = go.Figure()
    for column in snapshots:
        for i, t in enumerate(column.timings):
            if not t.chunk_times_s:
                continue
            x = [round(c - t.start_s, 4) for c in t.chunk_times_s]
            y = list(range(1, len(x) + 1)) if len(x) == t.output_tokens else \
                [round(t.output_tokens * (k + 1) / len(x)) for k in range(len(x))]
            name = column.label + (f" · prompt {i + 1}" if len(column.timings) > 1 else "")
            fig.add_scatter(x=x, y=y, mode="lines", name=name,
                            hovertemplate=f"{column.label}: %{{y}} tokens at %{{x:.2f}} s<extra></extra>")
    note = "each engine timed alone" if mode == "fair" else "both engines at once, sharing the hardware"
    return _layout(fig, f"Tokens over time ({note})", "seconds since the request started", "output tokens")


def batch_vs_context(rows, measured: Sequence[tuple[str, int, int]] = ()) -> go.Figure:
    """Largest batch against context length for each precision (planner.compare_precisions rows are
    re-planned at each length by the caller and passed as {precision: [(context, batch), ...]})."""
    fig = go.Figure()
    for precision, points in rows.items():
        fig.add_scatter(x=[c for c, _ in points], y=[b for _, b in points], mode="lines+markers", name=precision,
                        line=dict(color=COLORS.get(precision)),
                        hovertemplate=f"{precision}: %{{y:,}} sequences of %{{x:,}} tokens<extra></extra>")
    for precision, context, batch in measured:
        fig.add_scatter(x=[context], y=[batch], mode="markers", marker=dict(symbol="x", size=11, color=COLORS.get(precision)),
                        name=f"{precision} measured", hovertemplate="measured on the H100: %{y:,} at %{x:,}<extra></extra>")
    fig.update_xaxes(type="log", tickvals=[p for p in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)])
    nothing_fits = not any(b for points in rows.values() for _, b in points)
    if nothing_fits:
        fig.update_yaxes(range=[0, 1])
    title = ("Nothing fits at any context on this GPU with these settings: see the suggestions" if nothing_fits
             else "Largest batch vs context length")
    return _layout(fig, title, "context length (tokens, log scale)", "largest batch (sequences)")


def plan_overflow(p) -> go.Figure:
    """The GPU's memory as stacked parts with the requested memory as a line; what exceeds it in red."""
    fig = go.Figure()
    for name, gib in p.breakdown_gib().items():
        fig.add_bar(name=name, x=["this engine"], y=[gib], hovertemplate=f"{name}: %{{y:.2f}} GiB<extra></extra>")
    short = p.shortfall_bytes / (1 << 30)
    if short > 0:
        fig.add_bar(name=f"short by {short:.2f} GiB", x=["this engine"], y=[0], marker_color="#d62728",
                    hovertemplate=f"over the request by {short:.2f} GiB<extra></extra>")
    requested = p.requested_bytes / (1 << 30)
    fig.add_hline(y=requested, line_dash="dash", line_color="#d62728" if short else "#444",
                  annotation_text=f"requested {requested:.1f} GiB")
    fig.update_layout(barmode="stack")
    return _layout(fig, f"{p.model} on {p.gpu}", "", "GiB per GPU")


def speed_vs_batch(predictions, measured: Sequence[tuple[str, int, float]] = ()) -> go.Figure:
    """Predicted output tok/s (all requests decoding together) against the batch, per precision, with the fit's ±;
    measured points (precision, batch, output tok/s) overlaid where a recorded run exists."""
    fig = go.Figure()
    for pred in predictions:
        xs = [p.batch for p in pred.points]
        ys = [p.output_tok_s for p in pred.points]
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=f"{pred.precision} predicted",
                        line=dict(color=COLORS.get(pred.precision)),
                        error_y=dict(type="data", array=[p.output_tok_s * p.spread for p in pred.points], visible=True),
                        hovertemplate=f"{pred.precision}: %{{y:,.0f}} output tok/s at batch %{{x:,}} (predicted)<extra></extra>")
    for precision, batch, tok_s in measured:
        fig.add_scatter(x=[batch], y=[tok_s], mode="markers", marker=dict(symbol="x", size=11, color=COLORS.get(precision)),
                        name=f"{precision} measured", showlegend=False,
                        hovertemplate=f"{precision} measured: %{{y:,.0f}} output tok/s at batch %{{x:,}} (batch / TPOT)<extra></extra>")
    fig.update_xaxes(type="log")
    return _layout(fig, "Predicted decode throughput vs batch (x: measured runs)", "batch (requests decoding at once, log scale)",
                   "output tok/s")
