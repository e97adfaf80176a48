"""The Playground tab: prompts in, every engine's answer side by side (2 to 4 columns), the headline ratios first."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import gradio as gr
from gradio.components.plot import PlotData

from playground import charts, views
from playground.service import ComparisonResult, Playground
from playground.ui.inputs import USER_ERRORS, sampling_from

UI_INTERVAL_S = 0.5
# The chart is redrawn less often than the text: plotly's redraw was most of the page's own work while a run
# streamed, and a page that falls behind the stream shows stale text and answers clicks late (a 200-token run
# on half a core: page busy 212 s of 243 s with the chart in every update, 122 s of 200 s so; page_work.py).
CHART_INTERVAL_S = 2.0
MODE_CHOICES = views.mode_choices("vllm")


async def until_stopped(items, stop: asyncio.Event):
    """``items`` until they end or ``stop`` is set; then the pending step is cancelled, which closes the
    comparison (its engines abort the requests), without waiting long for it."""
    it = items.__aiter__()
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while True:
            step = asyncio.ensure_future(it.__anext__())
            await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                await asyncio.wait({step}, timeout=1.0)
                return
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
            if stop.is_set():
                return
    finally:
        waiter.cancel()
        with contextlib.suppress(Exception):
            await it.aclose()


def chart_lines(snapshots) -> int:
    """The lines the tokens-over-time chart has for these snapshots: a request's line starts at its first token."""
    return sum(1 for column in snapshots for t in column.timings if t.chunk_times_s)


def chart_due(now: float, last_drawn: float | None, lines_drawn: int, lines: int) -> bool:
    """Whether a streamed update carries the chart: every CHART_INTERVAL_S, and at once when a new line
    starts (the next engine's first token shows in the chart as soon as in its column)."""
    return last_drawn is None or lines != lines_drawn or now - last_drawn >= CHART_INTERVAL_S


def chart_update(snapshots, mode: str) -> dict:
    """The tokens-over-time chart for gr.Plot: plotly JSON built cheaply (charts.timeline_json), sent as an
    update because that is what a deep link records. A gr.skip() puts a fresh copy of the Plot, with a new _id
    and no value, in the session; a plain value after it is recorded under the copy's _id, not the chart's
    (gradio 6.31, blocks.py postprocess_data), so the link's state.json had no chart. An update's value is
    recorded under the chart's own _id."""
    return gr.update(value=PlotData(type="plotly", plot=charts.timeline_json(snapshots, mode)))


def element_id(label: str) -> str:
    """A column's label as an HTML id (a label may hold spaces: "FP8 checkpoint" → "FP8-checkpoint")."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "column"


def engine_column(label: str):
    """One column of the comparison; called once per engine (2 to 4)."""
    with gr.Column(min_width=280):
        gr.Markdown(f"### {label}")
        text = gr.Textbox(label=f"{label} answer", lines=10, max_lines=30, interactive=False,
                          elem_id=f"out-{element_id(label)}")
        metrics = gr.Markdown("–", elem_id=f"metrics-{element_id(label)}")
    return text, metrics


def build(playground: Playground, examples: list[str]) -> dict:
    labels = [e.info.label for e in playground.engines]
    headline = gr.Markdown(views.headline_placeholder(playground.backend), elem_id="headline")
    headline_text = views.headline_for(playground.backend)
    prompts = gr.Textbox(label="Prompts (separate several with a line holding only ---)", lines=3,
                         value=examples[0], elem_id="prompts")
    gr.Examples(examples, inputs=prompts)
    with gr.Row():
        mode = gr.Radio(views.mode_choices(playground.backend), value="fair", label="Timing",
                        info="Fair mode gives the true speed ratio; race mode shows both live, sharing the hardware.")
        chat = gr.Checkbox(value=True, label="Chat template",
                           info="Wrap the prompt in the instruct model's chat format and stop at its end-of-turn token.")
    with gr.Accordion("Sampling", open=False):
        with gr.Row():
            temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature",
                                    info="0 = greedy (and the quality diff is computed)")
            top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="Top-p", info="keep the smallest set of tokens with this probability")
            top_k = gr.Number(value=0, precision=0, label="Top-k", info="keep the k most likely tokens (0 = off)")
            max_tokens = gr.Number(value=64, precision=0, label="Max new tokens", elem_id="max-tokens",
                                   info="the answer stops here at the latest (prompt + answer must fit the context)")
            seed = gr.Number(value=0, precision=0, label="Seed", info="-1 = random")
        with gr.Row():
            repetition = gr.Slider(0.5, 2, value=1.0, step=0.05, label="Repetition penalty",
                                   info="above 1 makes tokens already in the prompt or answer less likely")
            presence = gr.Slider(-2, 2, value=0.0, step=0.1, label="Presence penalty",
                                 info="subtracted once from every token already generated")
            frequency = gr.Slider(-2, 2, value=0.0, step=0.1, label="Frequency penalty",
                                  info="subtracted per repetition of a generated token")
            stop = gr.Textbox(label="Stop strings", info="separate with |", value="")
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id="run")
        stop_button = gr.Button("Stop", elem_id="stop")
        gr.DeepLinkButton()
    error = gr.Markdown(elem_id="run-error")
    with gr.Row(equal_height=False):
        columns = [engine_column(label) for label in labels]
    speed_note = gr.Markdown(playground.engines[0].info.speed_note, elem_id="speed-note")
    gr.Markdown("_TTFT: time to first token (queueing + prompt). decode tok/s: output tokens per second after the "
                "first (1 / TPOT, time per output token). end-to-end: from sending to the last token._",
                elem_id="metrics-legend")
    timeline = gr.Plot(label="Tokens over time", elem_id="speed-chart", show_label=False)
    quality = gr.Markdown(elem_id="quality")
    last_run = gr.State(None)  # the latest snapshots and mode (what the page last showed)
    sampling_inputs = [temperature, top_p, top_k, max_tokens, seed, repetition, presence, frequency, stop]
    column_outputs = [component for column in columns for component in column]
    outputs = [headline, *column_outputs, timeline, quality, error, last_run]

    def column_values(snapshots):
        return [v for s in snapshots for v in (views.column_text(s), views.column_metrics(s))]

    async def on_run(prompts_text, mode_value, chat_value, temperature_value, top_p_value, top_k_value, max_tokens_value,
                     seed_value, repetition_value, presence_value, frequency_value, stop_value, request: gr.Request):
        """Stream both columns and the tokens-over-time chart; keeps the last good results when the request
        is refused. The page is updated at most every UI_INTERVAL_S: formatting and diffing each snapshot is
        web-server work that would otherwise compete with the engines; the chart comes with some of those
        updates only (chart_due), the final and the stopped ones always carry it. Stop ends the run from inside (see
        on_stop): the run's own last update is the stopped view, so no cancelled-event status can land after it."""
        key = getattr(request, "session_hash", None) or "no-session"
        stop = runs[key] = asyncio.Event()
        latest = None
        try:
            sampling = sampling_from(temperature_value, top_p_value, top_k_value, max_tokens_value, seed_value,
                                     repetition_value, presence_value, frequency_value, stop_value)
            final, last, chart_drawn, lines_drawn = None, 0.0, None, 0
            async for item in until_stopped(playground.compare(prompts_text, sampling, mode=mode_value,
                                                               chat=chat_value), stop):
                if isinstance(item, ComparisonResult):
                    final = item
                    break
                latest = item
                if time.perf_counter() - last < UI_INTERVAL_S:
                    continue
                last = time.perf_counter()
                chart, lines = gr.skip(), chart_lines(item)
                if chart_due(last, chart_drawn, lines_drawn, lines):
                    chart, chart_drawn, lines_drawn = chart_update(item, mode_value), last, lines
                yield (headline_text(item, mode_value), *column_values(item), chart,
                       "_The quality diff comes when both answers are complete._", "", (item, mode_value))
        except USER_ERRORS as e:
            # the previous results stay; the error sits by Run
            yield (gr.skip(),) * (len(outputs) - 2) + (f"**Error:** {e}", gr.skip())
            return
        finally:
            if runs.get(key) is stop:
                del runs[key]
        if final is None:  # stopped
            yield stopped_view(latest, mode_value)
            return
        yield (headline_text(final.snapshots, final.mode, final.quality_by_column), *column_values(final.snapshots),
               chart_update(final.snapshots, final.mode),
               views.quality_text(final.quality_by_column, [s.label for s in final.snapshots]), "",
               (final.snapshots, final.mode))

    # undocumented, not private: a headless client can stream exactly what the page receives (the test that
    # the page's own streaming work does not slow the engines uses it); the documented API is /compare
    event = run.click(on_run, [prompts, mode, chat, *sampling_inputs], outputs, api_name="ui_run",
                      api_visibility="undocumented")

    runs: dict[str, asyncio.Event] = {}  # a page session's running comparison, for Stop

    def stopped_view(snapshots, mode_value):
        """The run's last update after Stop: a column that finished keeps its answer and metrics, the chart
        keeps its points, and a partial run leaves no ratio behind as the headline."""
        if not snapshots:
            return (gr.skip(),) * (len(outputs) - 2) + ("_Stopped._", gr.skip())
        texts = [views.column_text(s) for s in snapshots]
        if all(s.finished for s in snapshots):  # the answers were complete: only the quality diff was cut short
            metrics = [views.column_metrics(s) for s in snapshots]
            head, quality_note, note = (headline_text(snapshots, mode_value), "_Stopped before the quality diff was "
                                        "computed._", "_Stopped before the quality diff._")
        else:
            metrics = [views.stopped_metrics(s) for s in snapshots]
            head, quality_note, note = (views.stopped_headline(snapshots, mode_value, playground.backend),
                                        "_Stopped: no quality diff for a partial answer._", "_Stopped._")
        return (head, *(v for pair in zip(texts, metrics) for v in pair), chart_update(snapshots, mode_value),
                quality_note, note, (snapshots, mode_value))

    async def on_stop(request: gr.Request):  # async: on the loop the run's Event belongs to
        """Ask this page's running comparison to stop; it writes the stopped view itself. Cancelling the
        event from outside instead (Gradio's ``cancels``) marks the outputs with an error status that can
        arrive after the stopped view on a slow machine."""
        stop = runs.get(getattr(request, "session_hash", None) or "no-session")
        if stop is None:
            return "_Nothing is running._"
        stop.set()
        return gr.skip()

    stop_button.click(on_stop, None, error, api_visibility="private", show_progress="hidden")
    return {"speed_note": speed_note}
