"""plotly figures for the three tabs. Inputs are plain rows (dicts) or library values; hover shows raw numbers."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from functools import lru_cache

import plotly.graph_objects as go

COLORS = {"fp16": "#636EFA", "fp8": "#EF553B", "fp8-kv8": "#00CC96"}


TITLE_CHARS = 38  # a title line that fits a 390 px phone at 15 px (plotly does not wrap titles itself)
AXIS_CHARS = 36  # an x-axis title line under a phone's plot area


def _wrap(title: str, width: int = TITLE_CHARS) -> str:
    return "<br>".join(textwrap.wrap(title, width)) or title


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    """One look for every chart, readable at 390 px: the title wrapped, the legend in its own band at the
    bottom of the figure (below the axis title, never over it) and the margins grown to what they hold."""
    lines = _wrap(title).count("<br>") + 1
    # the title below the band where plotly's tool bar appears, and the bar upright along the right edge:
    # on a phone a wrapped title reaches the top right corner
    fig.update_layout(title=dict(text=_wrap(title), font=dict(size=15), x=0.02, xanchor="left", yref="container", y=1,
                                 yanchor="top", pad=dict(t=30)),
                      xaxis_title=_wrap(x, AXIS_CHARS) if x else x, yaxis_title=y, template="plotly_white",
                      height=360 + 20 * lines,
                      margin=dict(l=50, r=20, t=50 + 20 * lines, b=40),
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                      modebar=dict(orientation="v"))
    fig.update_xaxes(automargin=True, title_standoff=8)
    fig.update_yaxes(automargin=True)
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


LOG_STEPS = tuple(m * 10.0 ** e for e in range(-3, 8) for m in (1, 2, 5))  # ms: 0.001 to 5e7


def _log_ticks(values: Sequence[float]) -> list[float]:
    """A log axis's labels: the 1-2-5 steps from the one at or below the smallest value to the one at or
    above the largest (at least two), only the powers of ten where more would crowd. Plotly's own labels
    for a narrow log range are every hundred ("400 500 600 700" drawn over each other on a phone)."""
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return []
    low = max((i for i, s in enumerate(LOG_STEPS) if s <= min(values)), default=0)
    high = min((i for i, s in enumerate(LOG_STEPS) if s >= max(values)), default=len(LOG_STEPS) - 1)
    ticks = list(LOG_STEPS[low:max(high, low + 1) + 1])
    if len(ticks) <= 7:
        return ticks
    return [10.0 ** e for e in range(math.floor(math.log10(ticks[0])), math.ceil(math.log10(ticks[-1])) + 1)]


def _tick_text(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def latency(points: Sequence[dict]) -> go.Figure:
    """TTFT and TPOT percentiles (ms) per precision and concurrency."""
    fig = go.Figure()
    timed = any(p.get("tpot_p50_s") is not None for p in points)  # one output token: TPOT is undefined
    metrics = (("ttft", "solid"), ("tpot", "dot")) if timed else (("ttft", "solid"),)
    for precision, rows in _by_precision(points).items():
        x = [str(r["concurrency"]) for r in rows]
        for metric, dash in metrics:
            for pct in ("p50", "p99"):
                key = f"{metric}_{pct}_s"
                name = f"{precision} {metric.upper()} {pct}"
                # None (no point drawn) where a value is undefined, never 0 ms (which a log axis cannot show)
                fig.add_scatter(x=x, y=[r[key] * 1000 if r.get(key) is not None else None for r in rows],
                                mode="lines+markers",
                                name=name, line=dict(color=COLORS.get(precision), dash=dash),
                                opacity=1.0 if pct == "p50" else 0.5,
                                hovertemplate=f"{name} · %{{x}} in flight: %{{y:,.1f}} ms<extra></extra>")
    ticks = _log_ticks([y for trace in fig.data for y in trace.y])
    fig.update_yaxes(type="log")
    if ticks:  # the range a little beyond the outer labels, so that no point sits on the frame
        fig.update_yaxes(tickvals=ticks, ticktext=[_tick_text(t) for t in ticks],
                         range=[math.log10(ticks[0]) - 0.05, math.log10(ticks[-1]) + 0.05])
    _concurrency_axis(fig, points)
    title = ("Latency: TTFT (first token, solid), TPOT (per output token, dotted)" if timed else
             "Latency: TTFT (first token); TPOT undefined for one output token")
    return _layout(fig, title, "requests in flight (concurrency)", "ms")


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


def _timeline_traces(snapshots) -> list[dict]:
    traces = []
    for column in snapshots:
        for i, t in enumerate(column.timings):
            if not t.chunk_times_s:
                continue
            x = [round(c - t.start_s, 4) for c in t.chunk_times_s]
            y = list(range(1, len(x) + 1)) if len(x) == t.output_tokens else \
                [round(t.output_tokens * (k + 1) / len(x)) for k in range(len(x))]
            name = column.label + (f" · prompt {i + 1}" if len(column.timings) > 1 else "")
            # a point per arrival: the chart is drawn while the tokens stream, and each point is one chunk
            traces.append(dict(type="scatter", x=x, y=y, mode="lines+markers", marker=dict(size=4), name=name,
                               hovertemplate=f"{column.label}: %{{y}} tokens at %{{x:.2f}} s<extra></extra>"))
    return traces


@lru_cache(maxsize=2)
def _timeline_layout_json(mode: str) -> str:
    # one line on a phone (TITLE_CHARS): "fair" times each engine with the hardware to itself
    title = "Tokens over time, each engine alone" if mode == "fair" else "Tokens over time, both engines at once"
    empty = _layout(go.Figure(), title, "seconds since the request started", "output tokens")
    return json.dumps(empty.to_plotly_json()["layout"])


def timeline(snapshots, mode: str) -> go.Figure:
    """Tokens against time from each request's own start, both engines on one chart: the race at
    true relative speed (in fair mode each engine was timed with the GPU to itself)."""
    return go.Figure(json.loads(timeline_json(snapshots, mode)))


def timeline_json(snapshots, mode: str) -> str:
    """timeline() as plotly JSON, built without plotly's validation: the page redraws it every 2 s
    while the engines stream (a validated figure took ~33 ms of the server's CPU each time)."""
    return '{"data": ' + json.dumps(_timeline_traces(snapshots)) + ', "layout": ' + _timeline_layout_json(mode) + "}"


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
    ticks = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
    fig.update_xaxes(type="log", tickvals=list(ticks), ticktext=[f"{t // 1024}k" if t >= 1024 else str(t) for t in ticks])
    nothing_fits = not any(b for points in rows.values() for _, b in points)
    if nothing_fits:
        fig.update_yaxes(range=[0, 1])
    title = ("Nothing fits at any context on this GPU with these settings: see the suggestions" if nothing_fits
             else "Largest batch vs context length")
    return _layout(fig, title, "context length (tokens, log scale)", "largest batch (sequences)")


# the two CUDA-graph terms told apart as the plan's table tells them (playground.views.plan_table)
PART_NAMES = {"CUDA-graph estimate": "CUDA-graph estimate (inside the request)",
              "CUDA graphs (after the KV cache)": "CUDA graphs (outside the request)"}


def plan_overflow(p) -> go.Figure:
    """The GPU's memory as stacked parts with the requested memory as a line; what exceeds it in red."""
    fig = go.Figure()
    for name, gib in p.breakdown_gib().items():
        name = PART_NAMES.get(name, name)
        fig.add_bar(name=name, x=["this engine"], y=[gib], hovertemplate=f"{name}: %{{y:.2f}} GiB<extra></extra>")
    short = p.shortfall_bytes / (1 << 30)
    if short > 0:
        fig.add_bar(name=f"short by {short:.2f} GiB", x=["this engine"], y=[0], marker_color="#d62728",
                    hovertemplate=f"over the request by {short:.2f} GiB<extra></extra>")
    requested = p.requested_bytes / (1 << 30)
    fig.add_hline(y=requested, line_dash="dash", line_color="#d62728" if short else "#444",
                  annotation_text=f"requested {requested:.1f} GiB")
    fig.update_layout(barmode="stack")
    return _layout(fig, f"{p.config.precision_label} engine: {p.model} on {p.gpu}", "", "GiB per GPU")


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
    ticks = _log_ticks([x for trace in fig.data for x in trace.x])
    if ticks:  # whole batches, not plotly's bare "2 5" between the powers of ten
        fig.update_xaxes(tickvals=ticks, ticktext=[_tick_text(t) for t in ticks])
    return _layout(fig, "Predicted decode throughput vs batch (x: measured runs)", "batch (requests decoding at once, log scale)",
                   "output tok/s")
