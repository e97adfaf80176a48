"""The public API: the documented endpoints, with named, typed parameters and the UI's validation.

    /compare /generate /plan /plan_precisions /plan_need /engines /benchmark /history
"""

from __future__ import annotations

import time
from dataclasses import asdict

import gradio as gr

from planner import PlannerError, compare_precisions, min_utilization_for
from planner.fit import PRECISIONS, precision_args
from playground import views
from playground.bench.sweep import SweepSpec
from playground.engines.base import RequestError
from playground.service import ComparisonResult, Playground
from playground.ui.inputs import USER_ERRORS, sampling_from, text
from playground.ui.planner_tab import resolve_gpu, resolve_model

STREAM_INTERVAL_S = 0.5
ENDPOINTS = ("compare", "generate", "plan", "plan_precisions", "plan_need", "engines", "benchmark", "history")


def _result(final: ComparisonResult) -> dict:
    out = views.comparison_api_result(final.snapshots, None)
    out["mode"] = final.mode
    out["quality"] = [_diff(q) for q in final.quality]  # the second column against the first
    first = out["columns"][0]["decode_tok_s"]
    for column, diffs in zip(out["columns"][1:], final.quality_by_column):
        column["quality"] = [_diff(q) for q in diffs]  # against the first column, per prompt
    for column in out["columns"][1:]:
        column["decode_ratio"] = column["decode_tok_s"] / first if first and column["decode_tok_s"] else None
    if len(final.snapshots) == 2 and out["columns"][1]["decode_ratio"]:
        out["decode_ratio"] = out["columns"][1]["decode_ratio"]
    return out


def _diff(q) -> dict | None:
    return None if q is None else {k: v for k, v in asdict(q).items() if k != "token_kls"}


async def _streamed(items, every_s: float = STREAM_INTERVAL_S):
    """Partial API answers at most every ``every_s`` (formatting each costs the web server time that
    the engines' callers would wait for), then the final ComparisonResult. Being a generator lets
    Gradio stop it when the client disconnects; closing it aborts the engines' requests."""
    last = time.perf_counter()
    async for item in items:
        if isinstance(item, ComparisonResult):
            yield item
            return
        now = time.perf_counter()
        if now - last >= every_s:
            last = now
            yield views.comparison_api_result(item, None) | {"partial": True}
    raise gr.Error("the engines returned nothing")


async def compare_results(playground: Playground, prompts: str | None = None, temperature: float = 0.0, top_p: float = 1.0,
                          top_k: int = 0, max_tokens: int = 64, seed: int = 0, repetition_penalty: float = 1.0,
                          presence_penalty: float = 0.0, frequency_penalty: float = 0.0, stop: str = "",
                          mode: str = "fair", chat_template: bool = True):
    """/compare's answers: partial dicts while the engines stream, then the final one. Raises the
    USER_ERRORS (RequestError names the argument) before anything is streamed when the request is bad."""
    prompts = text("prompts", prompts)
    sampling = sampling_from(temperature, top_p, top_k, max_tokens, seed, repetition_penalty,
                             presence_penalty, frequency_penalty, stop)
    async for partial in _streamed(playground.compare(prompts, sampling, mode=mode, chat=chat_template)):
        yield partial if not isinstance(partial, ComparisonResult) else _result(partial)


async def generate_results(playground: Playground, prompt: str | None = None, engine: str = "FP8", temperature: float = 0.0,
                           max_tokens: int = 64, seed: int = 0, chat_template: bool = True):
    """/generate's answers: one engine's column while it streams, then its final text and metrics."""
    if not text("prompt", prompt).strip():
        raise RequestError("prompt", "is empty: type a prompt")
    chosen = playground.find(engine)
    sampling = sampling_from(temperature, 1.0, 0, max_tokens, seed, 1.0, 0.0, 0.0, "")
    async for partial in _streamed(playground.compare(prompt, sampling, mode="race", chat=chat_template,
                                                      quality=False, engines=[chosen])):
        if isinstance(partial, ComparisonResult):
            yield _result(partial)["columns"][0]
        else:
            yield partial["columns"][0] | {"partial": True}


def compare_doc(backend: str) -> str:
    """/compare's documentation, naming what the engines share on this backend (no GPU on a CPU run)."""
    device = views.device_words(backend)
    return (f"Run prompts (separate several with a line '---') through both engines. mode 'fair' times each "
            f"engine with {device} to itself; 'race' runs both at once, sharing {device}. Streams partial results "
            "(texts so far), then the final one: texts, metrics per engine, decode_ratio (second / first) and, at "
            "temperature 0, the quality diff per prompt. A client that goes away stops the request in the engines.")


def register(playground: Playground, models_dir: str | None, *, load_test: bool = False) -> None:
    async def compare(prompts: str, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                      max_tokens: int = 64, seed: int = 0, repetition_penalty: float = 1.0,
                      presence_penalty: float = 0.0, frequency_penalty: float = 0.0, stop: str = "",
                      mode: str = "fair", chat_template: bool = True) -> dict:  # Gradio reads the hint per yield
        try:
            async for answer in compare_results(playground, prompts, temperature, top_p, top_k, max_tokens, seed,
                                                repetition_penalty, presence_penalty, frequency_penalty, stop,
                                                mode, chat_template):
                yield answer
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e

    async def generate(prompt: str, engine: str = "FP8", temperature: float = 0.0, max_tokens: int = 64,
                       seed: int = 0, chat_template: bool = True) -> dict:  # Gradio reads the hint per yield
        """One engine, one prompt: the text so far while it streams, then the text and its metrics.
        A client that goes away stops the request in the engine."""
        try:
            async for answer in generate_results(playground, prompt, engine, temperature, max_tokens, seed,
                                                 chat_template):
                yield answer
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e

    def plan(model: str = "llama-3.1-8b", gpu: str = "h100-sxm", quantization: str = "fp8",
             kv_cache_dtype: str = "auto", dtype: str = "auto", gpu_memory_utilization: float = 0.9,
             max_model_len: int = 8192, tensor_parallel_size: int = 1, enforce_eager: bool = False) -> dict:
        """planner.plan(): model is a catalog name or the text of a config.json; gpu a preset or 'local:N'.
        Returns every memory term in bytes, KV tokens with their ±, the verdict and configurations that fit."""
        from planner import plan as plan_fn

        try:
            return plan_fn(resolve_model(model, "", models_dir), resolve_gpu(gpu), quantization=quantization,
                           kv_cache_dtype=kv_cache_dtype, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                           max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
                           enforce_eager=enforce_eager).as_dict()
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e

    def plan_precisions(model: str = "llama-3.1-8b", gpu: str = "h100-sxm", gpu_memory_utilization: float = 0.9,
                        max_model_len: int = 8192, context_len: int = 4096, batch_size: int = 32,
                        tensor_parallel_size: int = 1, prompt_len: int = 512, output_len: int = 256) -> list[dict]:
        """FP16, FP8 and FP8 + FP8 KV side by side: plan, largest batch at context_len, longest context at batch_size,
        and the predicted speed (decode tok/s at batch 1, 8, 64 and the largest batch, TTFT of a prompt_len
        prompt, each with its ±; planner/speed.py)."""
        from planner.calibrate import calibration_for
        from planner.speed import compare_speeds

        try:
            spec, gpu_spec = resolve_model(model, "", models_dir), resolve_gpu(gpu)
            rows = compare_precisions(spec, gpu_spec, context_len=context_len,
                                      batch_size=batch_size, gpu_memory_utilization=gpu_memory_utilization,
                                      max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size)
            speeds = compare_speeds(spec, gpu_spec, prompt_len=prompt_len, output_len=output_len,
                                    calibration=calibration_for(gpu_spec)[0], gpu_memory_utilization=gpu_memory_utilization,
                                    max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size)
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e
        return [{"precision": r.precision, "largest_batch": r.largest_batch, "longest_context": r.longest_context,
                 "plan": r.plan.as_dict(), "speed": s.as_dict()} for r, s in zip(rows, speeds)]

    def plan_need(model: str = "llama-3.1-8b", gpu: str = "h100-sxm", concurrency: int = 32, context_len: int = 8192,
                  precision: str = "fp8", tensor_parallel_size: int = 1) -> dict:
        """The inverse of plan: the smallest gpu_memory_utilization that runs `concurrency` requests of
        `context_len` tokens at once, the KV tokens it buys and the `vllm serve` line to launch with; also the
        line with the KV cache pinned to what the workload needs (--kv-cache-memory-bytes)."""
        if precision not in PRECISIONS:
            raise gr.Error(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
        try:
            spec = resolve_model(model, "", models_dir)
            # a pre-quantized checkpoint keeps its own scheme: 'fp8' must not ask vLLM for online FP8 on top
            answer = min_utilization_for(spec, resolve_gpu(gpu), concurrency=concurrency, context_len=context_len,
                                         tensor_parallel_size=tensor_parallel_size, **precision_args(spec, precision))
        except (PlannerError, ValueError) as e:
            raise gr.Error(str(e)) from e
        return {"fits": answer.fits, "gpu_memory_utilization": answer.plan.gpu_memory_utilization,
                "kv_tokens": answer.plan.kv_tokens, "kv_tokens_spread": answer.plan.kv_tokens_spread,
                "reason": answer.reason, "vllm_serve_command": answer.serve_command,
                "kv_cache_memory_bytes": answer.kv_cache_memory_bytes,
                "vllm_serve_command_pinned": answer.pinned_serve_command}

    def engines() -> list[dict]:
        """The engines: backend, model, dtype, quantization, KV tokens, the GPU where there is one, start-up stage."""
        return playground.engine_facts()

    async def benchmark(concurrency: str = "1,8", input_len: int = 512, output_len: int = 128, repeats: int = 3,
                        precisions: str = "fp16,fp8") -> dict:
        """A paired sweep on the loaded engines; saved to the history. Returns the run id and its points."""
        try:
            spec = SweepSpec(concurrency=tuple(int(x) for x in concurrency.split(",") if x.strip()),
                             input_len=input_len, output_len=output_len, repeats=repeats,
                             precisions=tuple(p.strip() for p in precisions.split(",") if p.strip()))
            run_id, points, status = await playground.benchmark(spec, lambda *_: None)
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e
        return {"run_id": run_id, "status": status, "points": [p.as_row() for p in points]}

    def history(run_id: int = 0) -> dict:
        """The saved runs (run_id 0), or one run's points."""
        if not run_id:
            return {"runs": playground.runs()}
        try:
            meta, rows = playground.run_rows(int(run_id))
        except KeyError as e:
            raise gr.Error(f"run_id: {e.args[0]}") from e
        return {"run": meta, "points": rows}

    for fn in (compare, generate, plan, plan_precisions, plan_need, engines, benchmark, history):
        gr.api(fn, api_name=fn.__name__, api_description=compare_doc(playground.backend) if fn is compare else None)

    if load_test:  # only with --load-test: a burst of engine work on request is not for public links
        async def direct_load(api: str = "generate", users: int = 1, prompt: str = "Hello", max_tokens: int = 128,
                              engine: str = "FP8") -> dict:
            """The web-load workload run in this process without the web (benchmarks/web_load.py)."""
            from playground.load import direct_load as run_direct

            try:
                return (await run_direct(playground, api, int(users), prompt, int(max_tokens), engine)).as_dict()
            except USER_ERRORS as e:
                raise gr.Error(str(e)) from e

        gr.api(direct_load, api_name="direct_load")
