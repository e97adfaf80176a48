"""FP8 LLM playground: FP8 and 16-bit engines side by side, a memory planner and a throughput benchmark.

    python app.py                                     # embedded CPU engines, no GPU needed
    python app.py --backend vllm --model DIR --load-format dummy
    python app.py --share --auth user:secret          # a public link, behind a login

This module is the Gradio adapter: it builds the Blocks, wires thin callbacks to the library
(playground/, planner/), and launches.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import gradio as gr

from planner import (
    PlannerError, gpu_preset, gpu_presets, largest_model, model_spec, plan, read_gpus, side_by_side_split,
)
from planner.models import catalog_names
from playground import charts, views
from playground.bench import store
from playground.bench.runner import BenchConfig, BenchmarkService, resident_source
from playground.bench.sweep import PRECISIONS, SweepSpec
from playground.compare import check_request, compare, divergence_note, parse_prompts
from playground.engines.base import RequestError, SamplingSettings
from playground.runtime import EngineRuntime, SupervisedEngine

EXAMPLES = json.loads((Path(__file__).parent / "assets" / "prompts.json").read_text())["prompts"]


# ---------------------------------------------------------------- engines
def build_engines(args: argparse.Namespace) -> list[SupervisedEngine]:
    if args.backend == "cpu":
        from playground.engines.cpu_engine import CpuEngine

        return [SupervisedEngine(lambda: CpuEngine("16-bit", fp8=False)),
                SupervisedEngine(lambda: CpuEngine("FP8", fp8=True))]
    from playground.engines.vllm_engine import VllmEngine, VllmEngineConfig

    spec = model_spec(args.model)
    gpu = read_gpus(0)[0].to_spec()
    dtype = "bfloat16" if args.fp8_kv_cache else args.dtype
    split = side_by_side_split(spec, gpu, batch_size=args.batch_size, context_len=args.context_len,
                               fp8_kv_cache=args.fp8_kv_cache, dtype=dtype, max_model_len=args.max_model_len,
                               tensor_parallel_size=args.tensor_parallel_size)
    print(views.split_text(split), flush=True)
    if not split.fits:
        raise SystemExit(f"error: the two engines do not fit on {gpu.name}: {split.reason}")
    common = dict(model=args.model, load_format=args.load_format, dtype=dtype, max_model_len=split.baseline.max_model_len,
                  tensor_parallel_size=args.tensor_parallel_size, enforce_eager=args.enforce_eager,
                  max_num_seqs=split.baseline.max_num_seqs, max_num_batched_tokens=split.baseline.max_num_batched_tokens)
    base_label = {"float16": "FP16", "bfloat16": "BF16"}.get(split.baseline.dtype, "16-bit")
    base = VllmEngineConfig(label=base_label, gpu_memory_utilization=split.baseline_utilization, **common)
    fp8 = VllmEngineConfig(label="FP8", quantization="fp8", kv_cache_dtype="fp8" if args.fp8_kv_cache else "auto",
                           gpu_memory_utilization=split.fp8_utilization, **common)
    return [SupervisedEngine(lambda: VllmEngine(base)), SupervisedEngine(lambda: VllmEngine(fp8))]


def status_markdown(engines: list[SupervisedEngine]) -> str:
    lines = [f"- {e.info.status_line()}" + (f" · restarted {e.restarts}x" if e.restarts else "") for e in engines]
    notes = sorted({n for e in engines for n in e.info.notes})
    return "**Engines**\n" + "\n".join(lines) + "".join(f"\n- _{n}_" for n in notes)


# ---------------------------------------------------------------- callbacks
def sampling_from(temperature, top_p, top_k, max_tokens, seed, repetition_penalty, presence_penalty,
                  frequency_penalty, stop) -> SamplingSettings:
    def number(name, value, kind):
        if value is None or value == "":
            raise RequestError(name, "is empty")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise RequestError(name, f"{value!r} is not a number") from None

    stops = tuple(s for s in (stop or "").split("|") if s)
    return SamplingSettings(
        temperature=number("temperature", temperature, float), top_p=number("top_p", top_p, float),
        top_k=number("top_k", top_k, int), max_tokens=number("max_tokens", max_tokens, int),
        seed=None if seed in (None, "", -1) else number("seed", seed, int),
        repetition_penalty=number("repetition_penalty", repetition_penalty, float),
        presence_penalty=number("presence_penalty", presence_penalty, float),
        frequency_penalty=number("frequency_penalty", frequency_penalty, float), stop=stops,
    ).validate()


class App:
    """The callbacks, bound to the engines and services that app.main() created."""

    def __init__(self, engines: list[SupervisedEngine], runtime: EngineRuntime, bench: BenchmarkService,
                 backend: str, gpu_choices: list[str]):
        self.engines, self.runtime, self.bench, self.backend = engines, runtime, bench, backend
        self.gpu_choices = gpu_choices

    async def _revive(self) -> None:
        for engine in self.engines:
            if await self.runtime.acall(engine.ensure_running()):
                gr.Warning(f"{engine.info.label} engine had died and was restarted")

    async def _comparison(self, prompts_text, sampling: SamplingSettings):
        live = [e.engine for e in self.engines]
        try:
            prompts = parse_prompts(prompts_text)
            check_request(live, prompts, sampling)
        except RequestError as e:
            raise gr.Error(str(e)) from e
        await self._revive()
        live = [e.engine for e in self.engines]  # a revived engine is a new object
        async for snapshots in self.runtime.stream(lambda: compare(live, prompts, sampling)):
            yield snapshots

    async def compare_ui(self, prompts_text, *sampling_inputs):
        """Stream both columns; the final yield adds the divergence note."""
        try:
            sampling = sampling_from(*sampling_inputs)
        except RequestError as e:
            raise gr.Error(str(e)) from e
        snapshots = None
        async for snapshots in self._comparison(prompts_text, sampling):
            a, b = snapshots
            ma, mb = a.metrics(), b.metrics()
            yield (views.column_text(a), views.column_metrics(a), views.column_text(b), views.column_metrics(b),
                   charts.speed_bars([a.label, b.label], [a.decode_tok_s, b.decode_tok_s],
                                     [ma.output_tok_s if ma else None, mb.output_tok_s if mb else None]),
                   gr.skip(), status_markdown(self.engines))
        if snapshots:
            note = divergence_note(*snapshots) if sampling.temperature == 0 else "(divergence is shown for temperature 0)"
            yield (gr.skip(),) * 5 + (note, status_markdown(self.engines))

    async def compare_api(self, prompts: str, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                          max_tokens: int = 64, seed: int = 0, repetition_penalty: float = 1.0,
                          presence_penalty: float = 0.0, frequency_penalty: float = 0.0, stop: str = "") -> dict:
        """Run prompts (separated by a line '---') through both engines; texts and metrics per engine."""
        try:
            sampling = sampling_from(temperature, top_p, top_k, max_tokens, seed, repetition_penalty,
                                     presence_penalty, frequency_penalty, stop)
        except RequestError as e:
            raise gr.Error(str(e)) from e
        final = None
        async for final in self._comparison(prompts, sampling):
            pass
        return views.comparison_api_result(final, divergence_note(*final) if sampling.temperature == 0 else None)

    async def generate_api(self, prompt: str, engine: str = "FP8", temperature: float = 0.0, max_tokens: int = 64,
                           seed: int = 0) -> dict:
        """One engine, one prompt: the text and its metrics."""
        chosen = next((e for e in self.engines if e.info.label.lower() == str(engine).lower()), None)
        if chosen is None:
            raise gr.Error(f"engine: {engine!r} is not running; choose one of {[e.info.label for e in self.engines]}")
        try:
            sampling = sampling_from(temperature, 1.0, 0, max_tokens, seed, 1.0, 0.0, 0.0, "")
            check_request([chosen.engine], [prompt], sampling)
        except RequestError as e:
            raise gr.Error(str(e)) from e
        final = None
        async for final in self.runtime.stream(lambda: compare([chosen.engine], [prompt], sampling)):
            pass
        return views.comparison_api_result(final, None)["columns"][0]

    def engines_api(self) -> list[dict]:
        """The engines running now: backend, model, dtype, quantization, KV tokens, GPU."""
        return [asdict(e.info) | {"restarts": e.restarts} for e in self.engines]

    # ---- planner
    @staticmethod
    def _engine_args(quantization, kv_cache_dtype, dtype, util, max_model_len, tp) -> dict:
        """The planner's keyword arguments from the form's (or the API's) values."""
        return dict(quantization=None if quantization in ("none", None, "") else quantization,
                    kv_cache_dtype=kv_cache_dtype, dtype=dtype, gpu_memory_utilization=float(util),
                    max_model_len=int(max_model_len) if max_model_len else None, tensor_parallel_size=int(tp))

    def _gpu(self, gpu_choice: str):
        if gpu_choice.startswith("local:"):
            return read_gpus(int(gpu_choice.split(":")[1].split(" ")[0]))[0].to_spec()
        return gpu_preset(gpu_choice)

    def plan_api(self, model: str = "llama-2-7b", gpu: str = "h100-sxm", quantization: str = "none",
                 kv_cache_dtype: str = "auto", dtype: str = "auto", gpu_memory_utilization: float = 0.9,
                 max_model_len: int = 2048, tensor_parallel_size: int = 1) -> dict:
        """planner.plan() over the Gradio API: the full breakdown in bytes, KV tokens and the verdict."""
        try:
            p = plan(model_spec(model), self._gpu(gpu), **self._engine_args(
                quantization, kv_cache_dtype, dtype, gpu_memory_utilization, max_model_len, tensor_parallel_size))
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e
        return asdict(p) | {"kv_tokens": p.kv_tokens, "max_concurrent_seqs": p.max_concurrent_seqs,
                            "kv_concurrency": p.kv_concurrency}

    def plan_ui(self, model, gpu, quantization, kv_cache_dtype, dtype, util, max_model_len, tp, batch, context):
        try:
            spec, gpu_spec = model_spec(model), self._gpu(gpu)
            args = self._engine_args(quantization, kv_cache_dtype, dtype, util, max_model_len, tp)
            p = plan(spec, gpu_spec, **args)
            split = side_by_side_split(spec, gpu_spec, batch_size=int(batch), context_len=int(context), dtype=dtype,
                                       tensor_parallel_size=args["tensor_parallel_size"])
            fitting = largest_model(gpu_spec, **args)
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e
        largest = ", ".join(f"{f.model} ({f.kv_tokens:,} KV tokens)" for f in fitting) or "none"
        return (views.plan_table(p), charts.memory_breakdown(p.breakdown_gib(), f"{p.model} on {p.gpu}"),
                views.split_text(split), f"**Catalog models that fit, biggest first:** {largest}", live_readings())

    # ---- benchmark
    async def bench_ui(self, concurrency, input_len, output_len, num_prompts, repeats, precisions, progress=gr.Progress()):
        try:
            levels = tuple(int(x) for x in str(concurrency).split(",") if x.strip())
            spec = SweepSpec(concurrency=levels, input_len=int(input_len), output_len=int(output_len),
                             num_prompts=int(num_prompts) if num_prompts else None, repeats=int(repeats),
                             precisions=tuple(precisions))
        except ValueError as e:
            raise gr.Error(f"concurrency: {concurrency!r} must be comma-separated whole numbers ({e})") from e
        resident = {"fp16" if not e.info.quantization else ("fp8-kv8" if e.info.kv_cache_dtype.startswith("fp8") else "fp8"): e.engine
                    for e in self.engines}
        max_len = min(e.info.max_model_len for e in self.engines)
        from planner.assets import load_json

        # Prompt ids stay inside the tokenizer's vocabulary: the CPU model's, or the 32,000-token
        # tokenizer that model folders written by playground.model_dirs carry.
        vocab = load_json("cpu_model.json")["config"]["vocab_size"] if self.backend == "cpu" else 32000
        def report(done: int, total: int, message: str) -> None:
            progress(done / total, desc=message)

        first = self.engines[0].info
        config = BenchConfig(backend=self.backend, model=first.model, dtype=first.dtype, max_model_len=first.max_model_len,
                             gpu_memory_utilization=first.gpu_memory_utilization or 0.9, data_dir=str(self.bench.data_dir))
        try:
            run_id, points = await self.runtime.acall(
                self.bench.run(config, spec, resident_source(resident), vocab, max_len, progress=report))
        except RequestError as e:
            raise gr.Error(str(e)) from e
        rows = [p.as_row() for p in points]
        return (*self._bench_outputs(rows), f"Saved as run #{run_id}.", gr.update(choices=self._run_choices()))

    def bench_cancel(self):
        self.bench.cancel_event.set()
        return "Cancelling after the current repeat…"

    def _bench_outputs(self, rows):
        table = "| precision | conc | output tok/s | TTFT p50 ms | TPOT p50 ms | % roofline |\n|---|---|---|---|---|---|\n" + "\n".join(
            f"| {r['precision']} | {r['concurrency']} | {r['output_tok_s']:.1f} | {(r['ttft_p50_s'] or 0) * 1000:.0f} | "
            f"{(r['tpot_p50_s'] or 0) * 1000:.1f} | "
            f"{format(r['percent_of_roofline'], '.0f') + '%' if r['percent_of_roofline'] else '– (no GPU roofline)'} |" for r in rows)
        return charts.throughput(rows), charts.speedup(rows), charts.latency(rows), charts.memory(rows), table

    def _run_choices(self) -> list[str]:
        conn = store.connect(self.bench.data_dir)
        try:
            return [f"#{r['id']} {r['created_at']} {r['model']} ({r['status']})" for r in store.list_runs(conn)]
        finally:
            conn.close()

    def history_ui(self, choice, other):
        if not choice:
            raise gr.Error("run: pick a saved run")
        conn = store.connect(self.bench.data_dir)
        try:
            meta, rows = store.load_run(conn, int(choice.split()[0][1:]))
            if other:
                _, other_rows = store.load_run(conn, int(other.split()[0][1:]))
                rows = rows + [dict(r, precision=f"{r['precision']} (#{other.split()[0][1:]})") for r in other_rows]
        finally:
            conn.close()
        out = Path(tempfile.mkdtemp()) / f"run-{meta['id']}"
        out.with_suffix(".csv").write_text(store.to_csv(rows))
        out.with_suffix(".json").write_text(store.to_json(meta, rows))
        return (*self._bench_outputs(rows), [str(out.with_suffix(".csv")), str(out.with_suffix(".json"))])


# ---------------------------------------------------------------- layout
def engine_column(label: str):
    """One column of the comparison; called once per engine."""
    with gr.Column():
        gr.Markdown(f"### {label}")
        text = gr.Textbox(label=f"{label} output", lines=12, max_lines=30, interactive=False, elem_id=f"out-{label}")
        metrics = gr.Markdown("–", elem_id=f"metrics-{label}")
    return text, metrics


def build_ui(app: App) -> gr.Blocks:
    labels = [e.info.label for e in app.engines]
    with gr.Blocks(title="FP8 LLM playground") as demo:
        gr.Markdown("# FP8 LLM playground\nFP8 and 16-bit engines answer side by side; the planner says what fits; "
                    "the benchmark measures the speedup against the hardware's limit.")
        status = gr.Markdown(status_markdown(app.engines), elem_id="engine-status")
        with gr.Tab("Playground"):
            prompts = gr.Textbox(label="Prompts (separate several with a line holding only ---)", lines=4,
                                 value=EXAMPLES[0], elem_id="prompts")
            gr.Examples(EXAMPLES, inputs=prompts)
            with gr.Accordion("Sampling", open=False):
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="temperature (0 = greedy)")
                    top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="top_p")
                    top_k = gr.Number(value=0, precision=0, label="top_k (0 = off)")
                    max_tokens = gr.Number(value=64, precision=0, label="max_tokens")
                    seed = gr.Number(value=0, precision=0, label="seed (-1 = random)")
                with gr.Row():
                    repetition = gr.Slider(0.5, 2, value=1.0, step=0.05, label="repetition_penalty")
                    presence = gr.Slider(-2, 2, value=0.0, step=0.1, label="presence_penalty")
                    frequency = gr.Slider(-2, 2, value=0.0, step=0.1, label="frequency_penalty")
                    stop = gr.Textbox(label="stop strings (separate with |)", value="")
            with gr.Row():
                run = gr.Button("Run", variant="primary", elem_id="run")
                stop_button = gr.Button("Stop", elem_id="stop")
                gr.DeepLinkButton()
            with gr.Row():
                text_a, metrics_a = engine_column(labels[0])
                text_b, metrics_b = engine_column(labels[1])
            speed = gr.Plot(label="speeds", elem_id="speed-chart")
            divergence = gr.Markdown(elem_id="divergence")
            sampling_inputs = [temperature, top_p, top_k, max_tokens, seed, repetition, presence, frequency, stop]
            event = run.click(app.compare_ui, [prompts, *sampling_inputs],
                              [text_a, metrics_a, text_b, metrics_b, speed, divergence, status], api_name="compare_stream")
            stop_button.click(None, cancels=[event])
        with gr.Tab("Planner"):
            with gr.Row():
                model = gr.Dropdown(catalog_names(), value="llama-2-7b", allow_custom_value=True,
                                    label="model (catalog name or a config.json path)")
                gpu = gr.Dropdown(app.gpu_choices, value=app.gpu_choices[0], label="GPU")
                quant = gr.Radio(["none", "fp8"], value="fp8", label="quantization")
                kv = gr.Radio(["auto", "fp8"], value="auto", label="kv_cache_dtype")
                dtype = gr.Dropdown(["auto", "float16", "bfloat16"], value="auto", label="dtype")
            with gr.Row():
                util = gr.Slider(0.05, 1.0, value=0.9, step=0.01, label="gpu_memory_utilization")
                mml = gr.Number(value=2048, precision=0, label="max_model_len")
                tp = gr.Number(value=1, precision=0, label="tensor_parallel_size")
                batch = gr.Number(value=32, precision=0, label="side-by-side: batch")
                context = gr.Number(value=1024, precision=0, label="side-by-side: context tokens")
            readings_md = gr.Markdown(live_readings(), elem_id="gpu-readings")
            plan_button = gr.Button("Plan", variant="primary", elem_id="plan")
            with gr.Row():
                plan_md = gr.Markdown(elem_id="plan-table")
                plan_chart = gr.Plot(label="GPU memory")
            split_md = gr.Markdown()
            largest_md = gr.Markdown()
            plan_button.click(app.plan_ui, [model, gpu, quant, kv, dtype, util, mml, tp, batch, context],
                              [plan_md, plan_chart, split_md, largest_md, readings_md], api_name="plan_ui")
        with gr.Tab("Benchmark"):
            gr.Markdown("Random token prompts of exact length (seeded), `ignore_eos`, warm-up excluded, each point the "
                        "median of the repeats. TPOT = (end-to-end − TTFT) / (output tokens − 1), as `vllm bench serve` "
                        "defines it. The sweep runs on the engines loaded above; `python -m playground.bench` starts a "
                        "fresh engine per precision.")
            with gr.Row():
                conc = gr.Textbox(value="1,4" if app.backend == "cpu" else "1,8,64,256", label="concurrency levels",
                                  elem_id="bench-concurrency")
                in_len = gr.Number(value=32 if app.backend == "cpu" else 512, precision=0, label="input_len")
                out_len = gr.Number(value=16 if app.backend == "cpu" else 256, precision=0, label="output_len")
                n_prompts = gr.Number(value=0, precision=0, label="num_prompts per point (0: max(conc, 4))")
                repeats = gr.Number(value=3, precision=0, label="repeats", elem_id="bench-repeats")
                precisions = gr.CheckboxGroup(list(PRECISIONS), value=["fp16", "fp8"], label="precisions")
            with gr.Row():
                bench_button = gr.Button("Run sweep", variant="primary", elem_id="bench")
                cancel_button = gr.Button("Cancel")
            bench_status = gr.Markdown(elem_id="bench-status")
            with gr.Row():
                tput_chart, speedup_chart = gr.Plot(), gr.Plot()
            with gr.Row():
                latency_chart, memory_chart = gr.Plot(), gr.Plot()
            bench_table = gr.Markdown()
            with gr.Accordion("History", open=False):
                with gr.Row():
                    run_pick = gr.Dropdown(app._run_choices(), label="run")
                    other_pick = gr.Dropdown(app._run_choices(), label="compare with (optional)")
                    show = gr.Button("Show")
                files = gr.File(label="export (CSV, JSON)", file_count="multiple")
            bench_outputs = [tput_chart, speedup_chart, latency_chart, memory_chart, bench_table]
            bench_button.click(app.bench_ui, [conc, in_len, out_len, n_prompts, repeats, precisions],
                               [*bench_outputs, bench_status, run_pick], api_name="benchmark", concurrency_limit=1)
            cancel_button.click(app.bench_cancel, None, bench_status, api_name="benchmark_cancel")
            show.click(app.history_ui, [run_pick, other_pick], [*bench_outputs, files], api_name="history")
        gr.api(app.compare_api, api_name="compare")
        gr.api(app.generate_api, api_name="generate")
        gr.api(app.plan_api, api_name="plan")
        gr.api(app.engines_api, api_name="engines")
    return demo


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["cpu", "vllm"], default="cpu", help="cpu: embedded, no GPU needed (default)")
    p.add_argument("--model", default="", help="vLLM: model folder or HF id (python -m playground.model_dirs writes one)")
    p.add_argument("--load-format", default="auto", choices=["auto", "dummy"], help="dummy: random weights, real shapes")
    p.add_argument("--dtype", default="auto", help="vLLM dtype: auto, float16 or bfloat16 (there is no 'fp8' dtype)")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--fp8-kv-cache", action="store_true", help="FP8 engine also stores its KV cache in FP8 (bfloat16 on Hopper)")
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("--batch-size", type=int, default=16, help="the split gives each engine KV for this many sequences")
    p.add_argument("--context-len", type=int, default=1024, help="... of this many tokens")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="create a public Gradio share link (needs --auth)")
    p.add_argument("--auth", default=None, help="user:password required to open the app")
    p.add_argument("--insecure-share", action="store_true", help="allow --share without --auth")
    p.add_argument("--data-dir", default="data", help="benchmark history folder")
    p.add_argument("--concurrency-limit", type=int, default=64, help="requests served at once per event")
    return p


def check_launch_args(args: argparse.Namespace) -> tuple[str, str] | None:
    """Refuse a public link without a login unless asked explicitly; parse --auth."""
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise SystemExit("error: --auth must be user:password")
        auth = (user, password)
    if args.share and auth is None and not args.insecure_share:
        raise SystemExit("error: --share makes the app public; add --auth user:password (or --insecure-share to accept the risk)")
    if args.backend == "vllm" and not args.model:
        raise SystemExit("error: --backend vllm needs --model (a folder with config.json, or an HF id)")
    if args.dtype and "fp8" in args.dtype.lower():
        raise SystemExit("error: --dtype fp8 is not a vLLM dtype (vLLM rejects it); the FP8 engine uses quantization='fp8', "
                         "and --fp8-kv-cache adds kv_cache_dtype='fp8'")
    return auth


def live_readings() -> str:
    try:
        return views.gpu_readings_text(read_gpus())
    except PlannerError:
        return views.gpu_readings_text([])


def gpu_choices() -> list[str]:
    try:
        local = [f"local:{r.index} {r.name}" for r in read_gpus()]
    except PlannerError:
        local = []
    return local + list(gpu_presets())


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    auth = check_launch_args(args)
    runtime = EngineRuntime()
    engines = build_engines(args)
    for engine in engines:  # one after the other, so each profiles memory without the other's load in flight
        print(f"starting {engine.info.label} engine…", flush=True)
        try:
            runtime.call(engine.start())
        except RequestError as e:  # e.g. out of memory: the message carries the planner's advice
            raise SystemExit(f"error: {e}") from e
    app = App(engines, runtime, BenchmarkService(args.data_dir), args.backend, gpu_choices())
    demo = build_ui(app)
    demo.queue(default_concurrency_limit=args.concurrency_limit)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                theme=gr.themes.Soft(), show_error=True)


if __name__ == "__main__":
    main(sys.argv[1:])
