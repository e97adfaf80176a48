"""The Playground tab: prompts in, every engine's answer side by side (2 to 4 columns), the headline ratios first."""

from __future__ import annotations

import re
import time

import gradio as gr

from playground import charts, views
from playground.service import ComparisonResult, Playground
from playground.ui.inputs import USER_ERRORS, sampling_from

UI_INTERVAL_S = 0.5
MODE_CHOICES = views.mode_choices("vllm")


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
    timeline = gr.Plot(label="Tokens over time", elem_id="speed-chart")
    quality = gr.Markdown(elem_id="quality")
    sampling_inputs = [temperature, top_p, top_k, max_tokens, seed, repetition, presence, frequency, stop]
    column_outputs = [component for column in columns for component in column]
    outputs = [headline, *column_outputs, timeline, quality, error]

    def column_values(snapshots):
        return [v for s in snapshots for v in (views.column_text(s), views.column_metrics(s))]

    async def on_run(prompts_text, mode_value, chat_value, *sampling_values):
        """Stream both columns; keeps the last good results when the request is refused. The page is
        updated at most every UI_INTERVAL_S: formatting and diffing each snapshot is web-server work
        that would otherwise compete with the engines."""
        try:
            sampling = sampling_from(*sampling_values)
            final, last = None, 0.0
            async for item in playground.compare(prompts_text, sampling, mode=mode_value, chat=chat_value):
                if isinstance(item, ComparisonResult):
                    final = item
                    break
                if time.perf_counter() - last < UI_INTERVAL_S:
                    continue
                last = time.perf_counter()
                yield (headline_text(item, mode_value), *column_values(item), gr.skip(), gr.skip(), "")
        except USER_ERRORS as e:
            yield (gr.skip(),) * (len(outputs) - 1) + (f"⚠️ {e}",)  # the previous results stay; the error sits by Run
            return
        yield (headline_text(final.snapshots, final.mode, final.quality_by_column), *column_values(final.snapshots),
               charts.timeline(final.snapshots, final.mode),
               views.quality_text(final.quality_by_column, [s.label for s in final.snapshots]), "")

    # undocumented, not private: a headless client can stream exactly what the page receives (the test that
    # the page's own streaming work does not slow the engines uses it); the documented API is /compare
    event = run.click(on_run, [prompts, mode, chat, *sampling_inputs], outputs, api_name="ui_run",
                      api_visibility="undocumented")

    def on_stop():
        return ("_Stopped._",) + ("Stopped: idle.",) * len(columns)

    stop_button.click(on_stop, None, [error, *(metrics for _, metrics in columns)], cancels=[event],
                      api_visibility="private")
    return {"speed_note": speed_note}
