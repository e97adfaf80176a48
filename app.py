"""FP8 LLM playground: FP8 and 16-bit engines side by side, a memory planner and a throughput benchmark.

    python app.py                                     # SmolLM2-135M-Instruct on the CPU, 16-bit vs FP8
    python app.py --backend vllm --model DIR          # two vLLM engines on the GPU
    python app.py --backend vllm --engine BF16=DIR --engine FP8=DIR,quantization=fp8 --engine "FP8 checkpoint"=FP8DIR
                                                      # 2 to 4 columns, each a folder with its own settings
    python app.py --engine BF16=smollm2-135m --engine FP8=smollm2-135m,quantization=fp8 --engine "FP8 checkpoint"=FP8DIR
                                                      # the same on the CPU (smollm2-135m: the embedded model)
    python app.py --backend openai --engine FP16=http://host:8000/v1 --engine FP8=http://host:8001/v1
                                                      # engines that are running servers (vllm serve)
    python app.py --share --auth user:secret          # a public link, behind a login

This module only wires the web: it parses arguments, builds the engines from one EngineConfig,
lays out the tabs (playground/ui/) and launches. The page is up before the engines finish loading.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import gradio as gr

from planner import EngineConfig, PlannerError, gpu_presets, model_spec, read_gpus
from planner.nvml import visible_gpu_index
from playground import views
from playground.columns import EMBEDDED, ColumnSpec
from playground.columns import parse_columns as columns_from
from playground.runtime import EngineRuntime, SupervisedEngine
from playground.service import Playground
from playground.ui import api, bench_tab, http_api, openai_api, planner_tab, playground_tab, sessions, style

EXAMPLES = json.loads((Path(__file__).parent / "assets" / "prompts.json").read_text())["prompts"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["cpu", "vllm", "openai"], default="cpu",
                   help="cpu: embedded, no GPU needed (default); vllm: two engines in this process; "
                        "openai: running OpenAI-compatible servers given with --engine")
    p.add_argument("--engine", action="append", default=[], metavar="LABEL=FOLDER[,quantization=fp8][,kv-cache-dtype=fp8]",
                   help="one column per flag, 2 to 4 of them. vllm and cpu: a model folder with its own settings "
                        "(cpu: smollm2-135m is the embedded model; a compressed-tensors checkpoint is decompressed); "
                        "openai: LABEL=URL[#MODEL], a running server, e.g. FP8=http://host:8001/v1 (a label "
                        "containing 'fp8' marks FP8 weights; #MODEL picks a model on a server serving several)")
    p.add_argument("--remote-gpu", default="h100-sxm", choices=list(gpu_presets()), help="openai: the GPU preset the planner assumes for the "
                                                              "servers (their NVML is not reachable from here)")
    p.add_argument("--api-key-env", default=None, metavar="NAME",
                   help="the environment variable holding an API key: the app's /v1 and /metrics accept it as "
                        "'Authorization: Bearer KEY'; with --backend openai it is also the servers' key")
    p.add_argument("--model", default="", help="vLLM: model folder or HF id (python -m playground.model_dirs writes one)")
    EngineConfig.add_arguments(p)
    p.add_argument("--fp8-kv-cache", action="store_true", help="the FP8 engine also stores its KV cache in FP8")
    p.add_argument("--gpus", default=None, help="vLLM: 'A,B' puts the 16-bit engine on GPU A and FP8 on GPU B "
                                               "(each the whole GPU); default: both share GPU 0")
    p.add_argument("--batch-size", type=int, default=16, help="shared GPU: the split gives each engine KV for this many sequences")
    p.add_argument("--context-len", type=int, default=1024, help="... of this many tokens")
    p.add_argument("--host", default=None, help="default: $GRADIO_SERVER_NAME or 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT or 7860")
    p.add_argument("--root-path", default=None, help="the URL prefix when served behind a reverse proxy")
    p.add_argument("--share", action="store_true", help="create a public Gradio share link (needs --auth)")
    p.add_argument("--auth", default=None, help="user:password required to open the app")
    p.add_argument("--insecure-share", action="store_true", help="allow --share without --auth")
    p.add_argument("--data-dir", default="data", help="benchmark history folder")
    p.add_argument("--models-dir", default=None, help="the only folder whose config.json files web visitors may plan")
    p.add_argument("--concurrency-limit", type=int, default=256,
                   help="requests served at once per endpoint (vLLM batches them); more wait in the queue")
    p.add_argument("--max-queue", type=int, default=512,
                   help="requests allowed to wait; beyond it a caller is told the queue is full")
    p.add_argument("--load-test", action="store_true",
                   help="publish /direct_load for benchmarks/web_load.py (runs bursts on the engines: not for public links)")
    return p


def check_launch_args(args: argparse.Namespace) -> tuple[str, str] | None:
    """Refuse a public link without a login unless asked explicitly; parse --auth."""
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise SystemExit("error: --auth must be user:password")
        auth = (user, password)
    if args.load_test and args.share:
        raise SystemExit("error: --load-test lets any caller run bursts on the engines; do not combine it with --share")
    if args.share and auth is None and not args.insecure_share:
        raise SystemExit("error: --share makes the app public; add --auth user:password (or --insecure-share to accept the risk)")
    if args.backend == "openai" and not args.engine:
        raise SystemExit("error: --backend openai needs 2 to 4 --engine LABEL=URL (e.g. FP16=http://localhost:8000/v1)")
    if args.engine:
        from playground.columns import check_count

        try:
            check_count(len(args.engine))
        except ValueError as e:
            raise SystemExit(f"error: {e}") from e
    if args.engine and args.backend != "openai" and (args.model or args.fp8_kv_cache):
        raise SystemExit("error: --engine names each column's folder and settings; drop --model and --fp8-kv-cache "
                         "(or drop --engine for the default two columns of --model: 16-bit and online FP8)")
    if args.api_key_env and not os.environ.get(args.api_key_env):
        raise SystemExit(f"error: --api-key-env {args.api_key_env}: that environment variable is empty")
    if args.backend == "vllm" and not args.model and not args.engine:
        raise SystemExit("error: --backend vllm needs --model (a folder with config.json, or an HF id), or 2 to 4 "
                         "--engine LABEL=FOLDER columns")
    if args.dtype and "fp8" in args.dtype.lower():
        raise SystemExit("error: --dtype fp8 is not a vLLM dtype (vLLM rejects it); the FP8 engine uses quantization='fp8', "
                         "and --fp8-kv-cache adds kv_cache_dtype='fp8'")
    return auth


def parse_columns(args: argparse.Namespace) -> list[ColumnSpec]:
    """The vLLM and CPU backends' columns: --engine's, or the default pair (16-bit and its online FP8 twin)."""
    if args.engine:
        try:
            return columns_from(args.engine)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from e
    if args.backend == "cpu":
        return [ColumnSpec("16-bit", EMBEDDED), ColumnSpec("FP8", EMBEDDED, "fp8")]
    return [ColumnSpec("16-bit", args.model), ColumnSpec("FP8", args.model, "fp8", "fp8" if args.fp8_kv_cache else "auto")]


def build_engines(args: argparse.Namespace) -> tuple[list[SupervisedEngine], EngineConfig | None]:
    if args.backend == "cpu":
        from playground.engines.cpu_engine import CpuEngine

        return [SupervisedEngine(lambda c=c: CpuEngine(c.label, fp8=c.quantization == "fp8",
                                                       folder=None if c.embedded else c.folder,
                                                       kv_cache_dtype=c.kv_cache_dtype))
                for c in parse_columns(args)], None
    if args.backend == "openai":
        from playground.engines.base import RequestError
        from playground.engines.openai_engine import OpenAIEngine, RemoteEngineSpec

        key = os.environ.get(args.api_key_env) if args.api_key_env else None
        try:
            specs = [RemoteEngineSpec.parse(text) for text in args.engine]
        except RequestError as e:
            raise SystemExit(f"error: {e}") from e
        if len({s.label.lower() for s in specs}) != len(specs):
            raise SystemExit("error: --engine labels must differ")
        return [SupervisedEngine(lambda s=s: OpenAIEngine(s, key, gpu_preset=args.remote_gpu),
                                 retry_failed_start=True) for s in specs], None
    from playground.engines.vllm_engine import VllmEngine

    columns = parse_columns(args)
    if not args.engine:  # the default pair: the 16-bit column named after the checkpoint's dtype
        label = {"float16": "FP16", "bfloat16": "BF16"}.get(_checkpoint_dtype(args.model, args.dtype), "16-bit")
        columns[0] = replace(columns[0], label=label)
    try:
        configs = [c.engine_config(args) for c in columns]
    except (PlannerError, ValueError) as e:
        raise SystemExit(f"error: {e}") from e
    if args.gpus:  # each column on its own GPU, the whole of it
        ids = [int(x) for x in args.gpus.split(",")]
        if len(ids) != len(configs):
            raise SystemExit(f"error: --gpus gives {len(ids)} GPUs for {len(configs)} columns; give one per column")
        configs = [replace(c, gpu_ids=(i,)) for c, i in zip(configs, ids)]
        resolved = lambda: tuple(configs)  # noqa: E731
    else:
        resolved = _shared_gpu_split(args, columns, configs, checked=bool(args.engine))

    def column_config(i: int) -> EngineConfig:
        config = resolved()[i]
        if isinstance(config, Exception):  # this column's own error (its folder); the others go on
            raise config
        return config

    return ([SupervisedEngine(lambda i=i, c=c, config=config: VllmEngine(config, c.label, resolve=lambda: column_config(i)))
             for i, (c, config) in enumerate(zip(columns, configs))], lambda: column_config(0))


def _checkpoint_dtype(model: str, dtype: str) -> str:
    """The 16-bit engine's label without loading anything: the dtype asked for, else config.json's."""
    if dtype != "auto":
        return dtype
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return "auto"
    return str(config.get("torch_dtype") or config.get("dtype") or "auto")


def _shared_gpu_split(args: argparse.Namespace, columns: list[ColumnSpec], configs: list[EngineConfig], *,
                      checked: bool):
    """Every column on one GPU: the planner's split, computed once, on the engine-start thread (sizing
    the models imports torch and transformers: seconds the page should not wait for). A column whose
    folder is wrong gets its own error and no share; the others are split between them. When they do
    not fit together, every engine fails with the planner's message before any of them loads."""
    import threading

    from planner import resident_split
    from playground.columns import check_column
    from playground.engines.base import RequestError

    lock, done = threading.Lock(), []

    def resolve() -> tuple:
        with lock:
            if not done:
                result: list = list(configs)
                placed = []
                for i, (column, config) in enumerate(zip(columns, configs)):
                    try:
                        if checked:
                            check_column(column)
                        placed.append((i, model_spec(config.model)))
                    except (PlannerError, RequestError, ValueError) as e:
                        result[i] = e if isinstance(e, RequestError) else RequestError("engine", f"{column.label}: {e}")
                try:
                    gpu = read_gpus(visible_gpu_index())[0].to_spec()
                    split = resident_split([(columns[i].label, spec, configs[i]) for i, spec in placed], gpu,
                                           batch_size=args.batch_size, context_len=args.context_len)
                except (PlannerError, ValueError) as e:
                    error = RequestError("model", str(e))
                    done.append(tuple(error if not isinstance(r, Exception) else r for r in result))
                    return done[0]
                print(views.resident_split_text(split), flush=True)
                for (i, _), p in zip(placed, split.plans):
                    result[i] = (RequestError("gpu_memory_utilization", f"the {len(placed)} engines do not fit on "
                                                                        f"{gpu.name}: {split.reason}")
                                 if not split.fits else replace(p.config, model=configs[i].model,
                                                                load_format=args.load_format))
                done.append(tuple(result))
            return done[0]

    return resolve


def build_ui(playground: Playground, models_dir: str | None, load_test: bool = False) -> gr.Blocks:
    sessions.make_session_configs_lazy()  # an API call must not build the page's configuration (sessions.py)
    with gr.Blocks(title="FP8 LLM playground") as demo:
        gr.Markdown("# FP8 LLM playground\nIs FP8 worth it on my GPU, and what fits on it? FP8 and 16-bit engines "
                    "answer side by side; the planner sizes any model before it is loaded.")
        status = gr.Markdown(views.engine_lines(playground.engines), elem_id="engine-status")
        shown = gr.State("")

        def refresh(before):  # an unchanged line is not sent again: an opened <details> stays open
            now = views.engine_lines(playground.engines)
            return (gr.skip(), before) if now == before else (now, now)

        gr.Timer(2.0).tick(refresh, shown, [status, shown], api_visibility="private", show_progress="hidden")
        with gr.Tab("Playground"):
            playground_tab.build(playground, EXAMPLES)
        with gr.Tab("Planner"):
            planner = planner_tab.build(models_dir)
        with gr.Tab("Benchmark"):
            bench_tab.build(playground)
        on_plan, inputs, outputs = planner["on_load"]
        demo.load(on_plan, inputs, outputs, api_visibility="private")
        api.register(playground, models_dir, load_test=load_test)
    return demo


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    auth = check_launch_args(args)
    if args.backend == "vllm":
        # vLLM's torch.compile cache in the app's data folder: a restart with the same model and
        # arguments loads the compiled graphs instead of compiling again.
        os.environ.setdefault("VLLM_CACHE_ROOT", str(Path(args.data_dir).expanduser().resolve() / "vllm-cache"))
        os.environ.setdefault("PLAYGROUND_DATA_DIR", str(Path(args.data_dir).expanduser().resolve()))  # engine-start pairs
    engines, shared_config = build_engines(args)
    # The benchmark's random prompts draw token ids below the vocabulary size; a remote server's is not
    # published, and every tokenizer served today has at least 32,000 tokens.
    first_model = args.model or (columns_from(args.engine)[0].folder if args.engine else "")
    vocab = {"cpu": 49152, "openai": 32000}.get(args.backend) or (lambda: model_spec(first_model).vocab_size)
    playground = Playground(engines, EngineRuntime(), args.data_dir, args.backend, shared_config, vocab,
                            columns=bool(args.engine) and args.backend != "openai")
    playground.max_in_flight = 2 * args.concurrency_limit  # /compare and /generate at their limits at once
    if args.backend == "vllm":
        from playground.engines.vllm_stages import stage_of, watch_process_output

        def on_log_line(line: str) -> None:
            words = stage_of(line)
            starting = next((e for e in engines if e.stage.startswith("starting")), None)
            if words and starting is not None:
                starting.note_stage(words)

        watch_process_output(on_log_line)
    demo = build_ui(playground, args.models_dir, args.load_test)
    demo.queue(default_concurrency_limit=args.concurrency_limit, max_size=args.max_queue)
    demo.launch(server_name=args.host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=args.port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)), root_path=args.root_path,
                share=args.share, auth=auth, theme=gr.themes.Soft(), css=style.PAGE_CSS, show_error=True,
                # Gradio runs at most max_threads events at once across the app (default 40, whatever the
                # concurrency limits say): measured on the H200, 64 API users got a third of the engines' speed.
                max_threads=2 * args.concurrency_limit + 16, prevent_thread_lock=True)
    # the plain streaming API (one request per answer) on the same server, with the same login
    http_api.mount(demo.app, playground, auth)
    # the OpenAI-compatible /v1 (one column per model) and Prometheus /metrics, behind the same login
    openai_api.mount(demo.app, playground, auth, os.environ.get(args.api_key_env) if args.api_key_env else None)
    # The engines start once the page answers: loading them (torch, the model) on two cores while the
    # page is built would delay the page by their seconds, and the page says how far they are.
    playground.start_in_background()
    demo.block_thread()

if __name__ == "__main__":
    main(sys.argv[1:])
