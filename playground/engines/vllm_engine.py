"""The only module that imports vLLM: one AsyncLLM per engine, streamed with DELTA outputs.

Several users share an engine through vLLM's continuous batching; a cancelled stream aborts its
request in the engine. The engine is described by one planner.EngineConfig.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from playground.engines.base import EngineInfo, GenerationRequest, RequestError, StreamChunk


def vllm_version() -> str:
    import vllm

    return vllm.__version__


def planner_advice(config: EngineConfig, gpu) -> str:
    """The planner's verdict for this engine on this GPU as it is now (free memory included)."""
    from planner import plan

    try:
        p = plan(config, gpu.to_spec())
    except PlannerError as e:
        return f"The planner cannot say more: {e}"
    return f"Planner: {p.reason}." + "".join(f" Try {s.change} ({s.config.command('serve')})." for s in p.advice)


def kv_usage_logger(engine: "VllmEngine"):
    """A vLLM stat logger class that keeps only the scheduler's KV-cache usage on ``engine``, for the app's
    /metrics. A custom logger turns vLLM's stats on without its default loggers (no periodic log lines, no
    second Prometheus registry in this process); the scheduler's stats are what ``vllm serve`` computes anyway."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class KvCacheUsage(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0):
            pass

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            if scheduler_stats is not None:
                engine.kv_cache_usage = scheduler_stats.kv_cache_usage

        def log_engine_initialized(self):
            pass

    return KvCacheUsage


def text_only(config: EngineConfig) -> tuple[EngineConfig, tuple[str, ...]]:
    """A multimodal model's engine as the planner sized it (its language model alone: the page sends text);
    a model the planner cannot read is started as given."""
    from planner import model_spec

    try:
        spec = model_spec(config.model)
    except Exception:  # noqa: BLE001 - a model the planner cannot read still gets its engine
        return config, ()
    return config.for_model(spec)


class VllmEngine:
    def __init__(self, config: EngineConfig, label: str, resolve: Callable[[], EngineConfig] | None = None):
        """``config`` describes the engine until it starts; ``resolve`` (optional) gives the final one at
        start (the planner's share of a GPU two engines split), off the web server's start-up."""
        self.config = config
        self._resolve = resolve
        self._engine = None
        self._tokenizer = None
        self.kv_cache_usage: float | None = None  # 0-1, from vLLM's scheduler after each step (kv_usage_logger)
        self.info = EngineInfo(
            backend="vllm", label=label, model=config.model, dtype=config.dtype,
            quantization=config.quantization, kv_cache_dtype=config.kv_cache_dtype,
            max_model_len=config.max_model_len or 0,
            speed_note="GPU speeds measured by this engine" + (
                " (random weights: load_format=dummy)" if config.load_format == "dummy" else ""),
        )

    async def start(self) -> None:
        import torch
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from planner.nvml import read_gpus, visible_gpu_index

        if self._resolve is not None:
            self.config = self._resolve()
        # NVML, not torch.cuda: a CUDA context in this process would take memory from the engines.
        index = (self.config.gpu_ids or (visible_gpu_index(),))[0]
        gpu = read_gpus(index)[0]
        try:
            config, notes = self.config.for_gpu(is_hopper=gpu.compute_capability[0] == 9)
        except PlannerError as e:
            raise RequestError(e.argument, str(e)) from e
        config, model_notes = text_only(config)
        notes += model_notes
        if config.gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, config.gpu_ids))
        args = AsyncEngineArgs(**config.engine_kwargs(), disable_log_stats=True)
        try:
            self._engine = AsyncLLM.from_engine_args(args, stat_loggers=[kv_usage_logger(self)])
        except (torch.cuda.OutOfMemoryError, RuntimeError, ValueError) as e:
            # vLLM reports an out-of-memory start from its engine-core process as a RuntimeError or
            # a ValueError ("Free memory ... is less than desired"); say what would fit instead.
            raise RequestError("gpu_memory_utilization", f"{self.info.label} engine failed to start: {e}. "
                               f"{planner_advice(config, gpu)}") from e
        vllm_config = self._engine.vllm_config
        cache = vllm_config.cache_config
        self._tokenizer = self._engine.get_tokenizer() if not args.skip_tokenizer_init else None
        if config.load_format == "dummy":
            notes += ("load_format=dummy: random weights of the real shape; speed and memory are real, text is not",)
        self.info = replace(
            # the method vLLM runs: the column's quantization=, else the checkpoint's quantization_config
            self.info, quantization=vllm_config.model_config.quantization,
            dtype=str(vllm_config.model_config.dtype).replace("torch.", ""),
            max_model_len=vllm_config.model_config.max_model_len,
            kv_tokens=(cache.num_gpu_blocks or 0) * cache.block_size,
            gpu_name=gpu.name, gpu_memory_utilization=config.gpu_memory_utilization, notes=notes,
            chat_template=bool(getattr(self._tokenizer, "chat_template", None)),
        )
        self.config = config
        # the plan beside what vLLM logged ("planned 108,240 KV tokens, vLLM 108,784: +0.5%"), kept in the data folder
        from planner.calibrate import record_engine_start

        self.info = replace(self.info, planner_note=record_engine_start(
            config, replace(gpu.to_spec(), free_bytes=None), self.info.kv_tokens))

    def _prompt_ids(self, prompt: str, chat: bool) -> list[int]:
        if chat and self.info.chat_template:
            ids = self._tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                      add_generation_prompt=True, tokenize=True)
            return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return list(self._tokenizer.encode(prompt))

    def count_prompt_tokens(self, prompt: str, chat: bool = False) -> int:
        return len(self._prompt_ids(prompt, chat))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        s = request.sampling.validate(self.info.max_model_len)
        ids = list(request.prompt_token_ids) if request.prompt_token_ids is not None else \
            self._prompt_ids(request.prompt, request.chat)
        if len(ids) + s.max_tokens > self.info.max_model_len:
            raise RequestError(
                "max_tokens" if len(ids) < self.info.max_model_len else "prompt",
                f"{len(ids):,} prompt tokens + {s.max_tokens:,} new tokens exceed max_model_len={self.info.max_model_len:,}",
            )
        params = SamplingParams(
            temperature=s.temperature, top_p=s.top_p, top_k=max(s.top_k, 0),
            max_tokens=s.max_tokens, seed=s.seed, repetition_penalty=s.repetition_penalty,
            presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
            stop=list(s.stop) or None, ignore_eos=s.ignore_eos, output_kind=RequestOutputKind.DELTA,
        )
        produced, finished = 0, False
        try:
            async for out in self._engine.generate(TokensPrompt(prompt_token_ids=ids), params, request.request_id):
                completion = out.outputs[0]
                produced += len(completion.token_ids)
                finished = out.finished
                yield StreamChunk(
                    text=completion.text, num_output_tokens=produced, token_ids=tuple(completion.token_ids),
                    t_s=time.perf_counter(), num_prompt_tokens=len(ids), finished=out.finished,
                    finish_reason=completion.finish_reason,
                )
        finally:
            if not finished:  # the client went away or the UI pressed Stop
                await self._engine.abort(request.request_id)

    async def score(self, prompt: str, chat: bool, continuation: tuple[int, ...], top_k: int = 20) -> list[dict[int, float]]:
        """vLLM's prompt_logprobs over prompt + continuation: teacher-forced next-token logprobs."""
        import uuid

        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = self._prompt_ids(prompt, chat)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=top_k)
        final = None
        async for final in self._engine.generate(TokensPrompt(prompt_token_ids=ids + list(continuation)), params,
                                                 f"score-{uuid.uuid4().hex[:8]}"):
            pass
        rows = final.prompt_logprobs[len(ids):]
        return [{int(t): float(lp.logprob) for t, lp in row.items()} for row in rows]

    @property
    def num_running(self) -> int:
        """Requests vLLM holds unfinished (running or waiting in its scheduler)."""
        return self._engine.output_processor.get_num_unfinished_requests() if self._engine is not None else 0

    async def abort(self, request_id: str) -> None:
        await self._engine.abort(request_id)

    @property
    def errored(self) -> bool:
        return self._engine is not None and self._engine.errored

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
