"""The Benchmark tab: a paired sweep on the loaded engines, its charts, and the saved history."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from playground import charts, views
from playground.bench import store
from playground.bench.sweep import SweepSpec
from playground.service import Playground
from playground.ui.inputs import USER_ERRORS


def measured_vs_predicted(r: dict) -> str:
    """Decode tok/s per request measured (1 / TPOT) over planner/speed.py's prediction: far from 1 means a
    throttled or shared GPU, or a setup the prediction does not know."""
    if not r.get("predicted_decode_tok_s") or not r.get("tpot_p50_s"):
        return " – |"
    measured = 1 / r["tpot_p50_s"]
    return f" {measured:,.0f} / {r['predicted_decode_tok_s']:,.0f} ({measured / r['predicted_decode_tok_s']:.2f}) |"


def table(rows) -> str:
    """The sweep's points; the roofline and predicted columns only where they exist (a GPU), goodput where an SLO
    was set."""
    roofed = any(r.get("percent_of_roofline") for r in rows)
    predicted = any(r.get("predicted_decode_tok_s") for r in rows)
    slo = next((r["slo"] for r in rows if r.get("slo")), "")
    head = "| precision | concurrency | output tok/s | TTFT p50 ms | TPOT p50 ms |" + (" % of roofline |" if roofed else "")
    head += " decode tok/s measured / predicted |" if predicted else ""
    head += f" goodput req/s ({slo} ms) |" if slo else ""
    head += "\n|---|---|---|---|---|" + ("---|" if roofed else "") + ("---|" if predicted else "") + ("---|" if slo else "") + "\n"
    return head + "\n".join(
        f"| {r['precision']} | {r['concurrency']} | {r['output_tok_s']:.1f} | {(r['ttft_p50_s'] or 0) * 1000:.0f} | "
        f"{tpot_cell(r)} |" + (f" {r['percent_of_roofline']:.0f}% |" if roofed and r.get("percent_of_roofline")
                               else " – |" if roofed else "")
        + (measured_vs_predicted(r) if predicted else "")
        + ((f" {r['goodput_requests_per_s']:.2f} |" if r.get("goodput_requests_per_s") is not None else " – |") if slo else "")
        for r in rows) + (
        "\n\n_TPOT is undefined for one output token: there is no token after the first to time._"
        if any(r.get("tpot_p50_s") is None for r in rows) else "")


def tpot_cell(row) -> str:
    """TPOT in ms; a point with one output token has none (not 0.0 ms)."""
    return f"{row['tpot_p50_s'] * 1000:.1f}" if row.get("tpot_p50_s") is not None else "undefined"


def sweep_status(state: str, run_id: int) -> str:
    """What the page says after a sweep: complete, cancelled or failed, never 'saved' alone for a failure."""
    if state == "complete":
        return f"Complete: saved as run #{run_id}."
    if state == "cancelled":
        return f"Cancelled: the finished points are saved as run #{run_id} (marked cancelled)."
    return f"Failed ({state.removeprefix('failed: ')}): the finished points are saved as run #{run_id} (marked failed)."


def outputs_for(rows, backend: str):
    sampled = any(r.get("peak_memory_bytes") for r in rows)
    names = [r["precision"] for r in rows]  # the app's --engine columns name their rows by label
    baseline = "fp16" if "fp16" in names or not names else names[0]
    goodput = views.goodput_text(rows, baseline, backend)
    return (charts.throughput(rows), charts.speedup(rows, baseline), charts.latency(rows),
            gr.update(value=charts.memory(rows), visible=sampled), table(rows) + (f"\n\n{goodput}" if goodput else ""))


def run_choices(playground: Playground) -> list[str]:
    return [f"#{r['id']} {r['created_at']} {r['model']} ({r['status']})" for r in playground.runs()]


def build(playground: Playground) -> dict:
    cpu = playground.backend == "cpu"
    gr.Markdown("Random token prompts of exact length (seeded), `ignore_eos`, warm-up excluded, each point the median "
                "of the repeats. TTFT = time to first token; TPOT = time per output token after the first. The sweep "
                "runs on the engines loaded above.")
    if cpu:  # the same words as the Playground's headline: what a CPU sweep's FP8 speeds are
        gr.Markdown(views.CPU_WHAT_THE_SPEEDS_ARE, elem_id="bench-cpu-note")
    with gr.Row():
        conc = gr.Textbox(value="1,4" if cpu else "1,8,64,256", label="Concurrency levels", elem_id="bench-concurrency",
                          info="requests in flight at once, comma-separated")
        in_len = gr.Number(value=32 if cpu else 512, precision=0, label="Prompt tokens (input_len)")
        out_len = gr.Number(value=16 if cpu else 256, precision=0, label="Output tokens (output_len)")
        repeats = gr.Number(value=3, precision=0, label="Repeats", elem_id="bench-repeats")
        precisions = gr.CheckboxGroup(playground.available_precisions(), value=playground.available_precisions(),
                                      label="Precisions", info="only the engines that are loaded")
    with gr.Row():
        bench_button = gr.Button("Run sweep", variant="primary", elem_id="bench")
        cancel_button = gr.Button("Cancel")
    status = gr.Markdown(elem_id="bench-status")
    with gr.Row():
        tput, speedup = gr.Plot(label="Throughput", show_label=False), gr.Plot(label="FP8 speed-up", show_label=False)
    with gr.Row():
        # GPU memory is sampled through NVML: no chart where there is no GPU
        latency, memory = gr.Plot(label="Latency", show_label=False), gr.Plot(label="GPU memory", visible=not cpu, show_label=False)
    bench_table = gr.Markdown(elem_id="bench-table")
    with gr.Accordion("History", open=False):
        with gr.Row():
            run_pick = gr.Dropdown(run_choices(playground), label="Run", elem_id="history-run")
            other_pick = gr.Dropdown(run_choices(playground), label="Compare with (optional)")
            show = gr.Button("Show")
        files = gr.File(label="Export (CSV, JSON)", file_count="multiple")
    charts_out = [tput, speedup, latency, memory, bench_table]

    async def on_bench(conc_v, in_v, out_v, repeats_v, precisions_v, progress=gr.Progress()):
        try:
            levels = tuple(int(x) for x in str(conc_v).split(",") if x.strip())
            spec = SweepSpec(concurrency=levels, input_len=int(in_v), output_len=int(out_v), repeats=int(repeats_v),
                             precisions=tuple(precisions_v))
            run_id, points, state = await playground.benchmark(spec, lambda d, t, m: progress(d / t, desc=m))
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e
        rows = [p.as_row() for p in points]
        choices = run_choices(playground)
        return (*outputs_for(rows, playground.backend), sweep_status(state, run_id), gr.update(choices=choices), gr.update(choices=choices))

    # the progress once, by the status line (not over each chart panel)
    bench_button.click(on_bench, [conc, in_len, out_len, repeats, precisions],
                       [*charts_out, status, run_pick, other_pick], concurrency_limit=1, api_visibility="private",
                       show_progress_on=[status])
    cancel_button.click(lambda: (playground.bench.cancel_event.set(), "Cancelling after the current repeat…")[1], None,
                        status, api_visibility="private")

    def on_show(choice, other):
        if not choice:
            raise gr.Error("run: pick a saved run")
        meta, rows = playground.run_rows(int(choice.split()[0][1:]), int(other.split()[0][1:]) if other else None)
        out = Path(tempfile.mkdtemp()) / f"run-{meta['id']}"
        out.with_suffix(".csv").write_text(store.to_csv(rows))
        out.with_suffix(".json").write_text(store.to_json(meta, rows))
        return (*outputs_for(rows, meta["backend"]), [str(out.with_suffix(".csv")), str(out.with_suffix(".json"))])

    show.click(on_show, [run_pick, other_pick], [*charts_out, files], api_visibility="private")
    return {}
