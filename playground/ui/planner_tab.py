"""The Planner tab: FP16, FP8 and FP8 + FP8 KV side by side for a model and a GPU, the inverse
question (what utilization a workload needs), and suggestions that apply with one click."""

from __future__ import annotations

import gradio as gr

from planner import (
    EngineConfig, PlannerError, compare_precisions, gpu_preset, max_batch_size, min_utilization_for, model_spec, plan,
    read_gpus,
)
from planner.models import catalog_names
from playground import charts, views

CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


def gpu_choices() -> list[str]:
    try:
        local = [f"local:{r.index} {r.name}" for r in read_gpus()]
    except PlannerError:
        local = []
    from planner import gpu_presets

    return local + list(gpu_presets())


def resolve_gpu(choice: str):
    if str(choice).startswith("local:"):
        return read_gpus(int(choice.split(":")[1].split(" ")[0]))[0].to_spec()
    return gpu_preset(choice)


def resolve_model(name: str, pasted: str, models_dir: str | None):
    """A pasted config.json wins; a name is a catalog entry or a path under --models-dir."""
    if pasted and pasted.strip():
        return model_spec(pasted.strip(), name="pasted config.json", allow_paths=False)
    return model_spec(name, allow_paths=False, models_dir=models_dir)


def engine_args(util, max_model_len, tp, eager) -> dict:
    return dict(gpu_memory_utilization=float(util), max_model_len=int(max_model_len) if max_model_len else None,
                tensor_parallel_size=int(tp), enforce_eager=bool(eager))


def curves(spec, gpu, args) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    from planner.fit import checkpoint_precisions

    for precision, fields in checkpoint_precisions(spec).items():
        points = []
        for context in CONTEXTS:
            if context > spec.max_position_embeddings:
                break
            try:
                points.append((context, max_batch_size(spec, gpu, context_len=context,
                                                       **{**args, **fields, "max_model_len": context})))
            except PlannerError:
                continue
        out[precision] = points
    return out


def build(models_dir: str | None) -> dict:
    gpus = gpu_choices()
    gr.Markdown("What fits, before anything is loaded: vLLM's own memory arithmetic (docs/planner.md), for the "
                "three precisions side by side.")
    readings = gr.Markdown(elem_id="gpu-readings")
    with gr.Row():
        model = gr.Dropdown(catalog_names(), value="llama-3.1-8b", label="Model", info="a catalog shape; or paste a config.json below",
                            elem_id="plan-model")
        gpu = gr.Dropdown(gpus, value=gpus[0] if gpus[0].startswith("local:") else "h100-sxm", label="GPU",
                          info="local GPUs are read through NVML; the rest are presets", elem_id="plan-gpu")
    pasted = gr.Textbox(label="…or paste any model's config.json", lines=2, placeholder='{"model_type": "llama", ...}',
                        elem_id="pasted-config")
    with gr.Row():
        util = gr.Slider(0.05, 0.99, value=0.9, step=0.01, label="GPU memory share",
                         info="gpu_memory_utilization: the part of the GPU vLLM may use (weights, activations, KV cache)")
        mml = gr.Number(value=8192, precision=0, label="Longest request (tokens)",
                        info="max_model_len: prompt + answer; vLLM refuses to start if one such request cannot fit the KV cache")
        tp = gr.Dropdown([1, 2, 4, 8], value=1, label="GPUs per engine",
                         info="tensor_parallel_size: the weights and KV cache are split across this many GPUs")
        eager = gr.Checkbox(value=False, label="Eager mode", info="enforce_eager: no CUDA graphs, less memory, slower decode")
    with gr.Row():
        batch = gr.Number(value=32, precision=0, label="Batch (for the longest context)",
                          info="requests served at once")
        context = gr.Number(value=4096, precision=0, label="Context (for the largest batch)",
                            info="tokens per request (prompt + answer)")
    plan_button = gr.Button("Plan", variant="primary", elem_id="plan")
    precisions_md = gr.Markdown(elem_id="plan-precisions")
    with gr.Row():
        curve_plot = gr.Plot(label="Largest batch vs context", show_label=False, elem_id="plan-curve")
        memory_plot = gr.Plot(label="GPU memory of the FP8 engine", show_label=False, elem_id="plan-memory")
    detail = gr.Markdown(elem_id="plan-table")
    suggestion = gr.Dropdown([], label="Apply a configuration that fits", elem_id="suggestions", interactive=True)
    with gr.Accordion("What do I need for my workload? (the inverse plan)", open=False):
        with gr.Row():
            need_seqs = gr.Number(value=32, precision=0, label="Concurrent requests")
            need_len = gr.Number(value=8192, precision=0, label="Tokens per request")
            need_precision = gr.Radio(["fp16", "fp8", "fp8-kv8"], value="fp8", label="Precision",
                                      info="fp8: FP8 weights; fp8-kv8: also an FP8 KV cache (half the bytes per token)")
        need_button = gr.Button("Find the smallest gpu_memory_utilization")
        need_md = gr.Markdown(elem_id="need")
    state = gr.State([])

    def on_plan(model_name, pasted_text, gpu_choice, util_v, mml_v, tp_v, eager_v, batch_v, context_v):
        try:
            spec, gpu_spec = resolve_model(model_name, pasted_text, models_dir), resolve_gpu(gpu_choice)
            args = engine_args(util_v, min(int(mml_v or spec.max_position_embeddings), spec.max_position_embeddings), tp_v, eager_v)
            rows = compare_precisions(spec, gpu_spec, context_len=int(context_v), batch_size=int(batch_v), **args)
            shown = rows[1].plan
            advice = [s for r in rows for s in r.plan.advice]
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e
        choices = [f"{i + 1}. {s.change} → {s.config.precision_label}" for i, s in enumerate(advice)]
        return (views.gpu_readings_text(_readings()), views.precision_table(rows),
                charts.batch_vs_context(curves(spec, gpu_spec, args)), charts.plan_overflow(shown),
                "\n\n".join(f"**{r.precision}** · weights: {r.plan.weights_scheme}\n\n" + views.plan_table(r.plan) for r in rows),
                gr.update(choices=choices, value=None), [s.config for s in advice])

    inputs = [model, pasted, gpu, util, mml, tp, eager, batch, context]
    outputs = [readings, precisions_md, curve_plot, memory_plot, detail, suggestion, state]
    plan_button.click(on_plan, inputs, outputs, api_visibility="private")
    on_speed, speed_inputs, speed_outputs = speed_section(models_dir, [model, pasted, gpu, util, mml, tp, eager])
    plan_button.click(on_speed, speed_inputs, speed_outputs, api_visibility="private")

    def on_apply(choice, configs):
        if not choice:
            return (gr.skip(),) * 4
        config: EngineConfig = configs[int(choice.split(".")[0]) - 1]
        return config.gpu_memory_utilization, config.max_model_len, config.tensor_parallel_size, config.enforce_eager

    suggestion.change(on_apply, [suggestion, state], [util, mml, tp, eager], api_visibility="private").then(
        on_plan, inputs, outputs, api_visibility="private").then(on_speed, speed_inputs, speed_outputs,
                                                                  api_visibility="private")

    def on_need(model_name, pasted_text, gpu_choice, tp_v, eager_v, seqs, length, precision):
        from planner.fit import precision_args

        try:
            spec, gpu_spec = resolve_model(model_name, pasted_text, models_dir), resolve_gpu(gpu_choice)
            answer = min_utilization_for(spec, gpu_spec, concurrency=int(seqs), context_len=int(length),
                                         tensor_parallel_size=int(tp_v), enforce_eager=bool(eager_v), **precision_args(spec, precision))
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e
        return views.need_text(answer)

    need_button.click(on_need, [model, pasted, gpu, tp, eager, need_seqs, need_len, need_precision], need_md,
                      api_visibility="private")
    def on_load(*values):
        return (*on_plan(*values[:len(inputs)]), *on_speed(*values[len(inputs):]))

    return {"on_load": (on_load, inputs + speed_inputs, outputs + speed_outputs)}


# ------------------------------------------------------------------------------------------- predicted speed
SPEED_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TABLE_BATCHES = (1, 8, 64)


def speed_section(models_dir: str | None, plan_inputs: list):
    """How fast each precision will decode (planner/speed.py): a table per precision and tok/s against the batch,
    with the project's measured runs of this model on this GPU overlaid. Returns (callback, inputs, outputs)."""
    gr.Markdown("### Predicted speed\nThe roofline's bytes and FLOPs per step times efficiencies fitted to this "
                "project's measured vLLM runs (benchmarks/speed_accuracy.py checks them on runs never fitted); "
                "± from the fit's residuals.")
    with gr.Row():
        prompt_len = gr.Number(value=512, precision=0, label="Prompt tokens", info="per request; sets TTFT and the KV read")
        output_len = gr.Number(value=256, precision=0, label="Output tokens", info="per request")
    speed_md = gr.Markdown(elem_id="plan-speed")
    speed_plot = gr.Plot(label="Predicted tok/s vs batch", show_label=False, elem_id="plan-speed-chart")  # the figure has its own title

    def on_speed(model_name, pasted_text, gpu_choice, util_v, mml_v, tp_v, eager_v, prompt_v, output_v):
        from planner.calibrate import calibration_for, version_note
        from planner.speed import compare_speeds

        try:
            spec, gpu_spec = resolve_model(model_name, pasted_text, models_dir), resolve_gpu(gpu_choice)
            args = engine_args(util_v, min(int(mml_v or spec.max_position_embeddings), spec.max_position_embeddings),
                               tp_v, eager_v)
            calibration, _ = calibration_for(gpu_spec)
            predictions = compare_speeds(spec, gpu_spec, batches=SPEED_BATCHES, prompt_len=int(prompt_v or 512),
                                         output_len=int(output_v or 256), calibration=calibration, **args)
        except (PlannerError, ValueError) as e:
            return f"No speed prediction: {e}", None
        from planner.calibrate import pair_text, recent_engine_starts

        text = speed_table(predictions)
        note = version_note()
        starts = [f"- {p['model']} ({p['quantization'] or '16-bit'}) on {p['gpu']}: {pair_text(p)}" for p in recent_engine_starts()]
        text += (f"\n\n{note}" if note else "") + ("\n\n**Engine starts on this machine** (plan vs vLLM's log):\n"
                                                      + "\n".join(starts) if starts else "")
        return (text,
                charts.speed_vs_batch(predictions, measured_points(spec.name, gpu_spec.name)))

    return on_speed, [*plan_inputs, prompt_len, output_len], [speed_md, speed_plot]


def speed_table(predictions) -> str:
    """Markdown: per precision, decode tok/s per request and output tok/s at batch 1, 8, 64 and the largest
    batch, the ratio to 16-bit, and TTFT."""
    from planner.speed import ratio, speed_notes

    base = predictions[0]
    lines = [f"On **{base.gpu}**, {base.prompt_len}-token prompts and {base.output_len} output tokens "
             f"({base.calibration_source}):", "",
             "| precision | batch | decode tok/s per request | output tok/s | vs fp16 | TTFT |", "|---|---|---|---|---|---|"]
    for pred in predictions:
        shown = [p for p in pred.points if p.batch in TABLE_BATCHES or p.batch == pred.largest_batch]
        for i, p in enumerate(shown):
            r = ratio(pred, base, p.batch)
            label = f"{p.batch:,}" + (" (largest)" if p.batch == pred.largest_batch else "")
            ttft = f"{pred.ttft_s * 1000:,.1f} ± {pred.ttft_s * pred.ttft_spread * 1000:,.1f} ms" if i == 0 else ""
            lines.append(f"| {pred.precision if i == 0 else ''} | {label} | {p.decode_tok_s:,.0f} ± {p.decode_tok_s * p.spread:,.0f} | "
                         f"{p.output_tok_s:,.0f} ± {p.output_tok_s * p.spread:,.0f} | {f'{r:.2f}x' if r else '–'} | {ttft} |")
    notes = speed_notes(predictions)
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def measured_points(model: str, gpu_name: str) -> list[tuple[str, int, float]]:
    """This project's recorded runs of ``model`` on ``gpu_name`` (benchmarks/speed_runs.py), as (precision, batch,
    batch / TPOT); none where the checkout has no recorded runs (an installed app)."""
    try:
        from benchmarks.speed_runs import load_rows
        from planner import gpu_preset
    except ImportError:
        return []
    out = []
    for row in load_rows():
        try:
            same_gpu = gpu_preset(row.gpu).name == gpu_name
        except PlannerError:
            continue
        if row.model == model and same_gpu and row.engine.get("tensor_parallel_size", 1) == 1 and row.input_len:
            out.append((row.precision, row.concurrency, row.concurrency * row.decode_tok_s))
    return out


def _readings():
    try:
        return read_gpus()
    except PlannerError:
        return []


def plan_once(model: str, gpu: str, **engine_fields):
    """A plan for the API (catalog or pasted config only)."""
    spec = resolve_model(model if not str(model).strip().startswith("{") else "", model if str(model).strip().startswith("{") else "", None)
    return plan(spec, resolve_gpu(gpu), **engine_fields)
