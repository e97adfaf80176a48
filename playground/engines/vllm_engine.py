"""The only module that imports vLLM: one AsyncLLM per engine, streamed with DELTA outputs.

Several users share an engine through vLLM's continuous batching; a cancelled stream aborts its
request in the engine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from playground.engines.base import EngineInfo, GenerationRequest, RequestError, StreamChunk

FP8_DTYPE_MESSAGE = (
    "vLLM has no dtype='fp8' (it rejects it). FP8 weights are quantization='fp8' "
    "(online dynamic W8A8, per-tensor weight scales = amax / 448); an FP8 KV cache is kv_cache_dtype='fp8'."
)


@dataclass(frozen=True)
class VllmEngineConfig:
    """vLLM engine arguments, with vLLM's names."""

    label: str
    model: str
    load_format: str = "auto"  # "dummy": random weights of the real shape (speed and memory only)
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.42
    enforce_eager: bool = False
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    seed: int = 0

    def checked(self, hopper: bool) -> tuple[VllmEngineConfig, tuple[str, ...]]:
        """Reject what vLLM rejects with a message that teaches; choose what vLLM 0.25 needs."""
        if "fp8" in str(self.dtype).lower():
            raise RequestError("dtype", FP8_DTYPE_MESSAGE)
        if self.quantization not in (None, "fp8"):
            raise RequestError("quantization", f"{self.quantization!r}: the playground runs None (16-bit) or 'fp8'")
        if self.load_format not in ("auto", "dummy", "safetensors", "pt"):
            raise RequestError("load_format", f"{self.load_format!r} is not one of auto, dummy, safetensors, pt")
        notes = []
        config = self
        if self.kv_cache_dtype.startswith("fp8") and hopper and self.dtype in ("float16", "half", "auto"):
            # FlashAttention-3's FP8 KV path needs bfloat16 activations on Hopper in vLLM 0.25.
            config = replace(self, dtype="bfloat16")
            notes.append("FP8 KV cache on Hopper needs dtype bfloat16 (FlashAttention-3): dtype set to bfloat16")
        if self.load_format == "dummy":
            notes.append("load_format=dummy: random weights of the real shape; speed and memory are real, text is not")
        return config, tuple(notes)


def planner_advice(config: VllmEngineConfig, gpu) -> str:
    """The planner's verdict for this engine on this GPU as it is now (free memory included)."""
    from planner import PlannerError, model_spec, plan

    try:
        p = plan(model_spec(config.model), gpu.to_spec(), quantization=config.quantization,
                 kv_cache_dtype=config.kv_cache_dtype, dtype=config.dtype,
                 gpu_memory_utilization=config.gpu_memory_utilization, max_model_len=config.max_model_len,
                 tensor_parallel_size=config.tensor_parallel_size)
    except PlannerError as e:
        return f"The planner cannot say more: {e}"
    return f"Planner: {p.reason}." + "".join(f" Try {a}." for a in p.advice)


class VllmEngine:
    def __init__(self, config: VllmEngineConfig):
        self.config = config
        self._engine = None
        self.info = EngineInfo(
            backend="vllm", label=config.label, model=config.model, dtype=config.dtype,
            quantization=config.quantization, kv_cache_dtype=config.kv_cache_dtype,
            max_model_len=config.max_model_len or 0,
        )

    async def start(self) -> None:
        import torch
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from planner.nvml import read_gpus

        # NVML, not torch.cuda: a CUDA context in this process would take memory from the engines.
        gpu = read_gpus(0)[0]
        config, notes = self.config.checked(hopper=gpu.compute_capability[0] == 9)
        args = AsyncEngineArgs(
            model=config.model, load_format=config.load_format, dtype=config.dtype,
            quantization=config.quantization, kv_cache_dtype=config.kv_cache_dtype,
            max_model_len=config.max_model_len, tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization, enforce_eager=config.enforce_eager,
            max_num_seqs=config.max_num_seqs, max_num_batched_tokens=config.max_num_batched_tokens,
            seed=config.seed, disable_log_stats=True,
        )
        try:
            self._engine = AsyncLLM.from_engine_args(args)
        except (torch.cuda.OutOfMemoryError, RuntimeError, ValueError) as e:
            # vLLM reports an out-of-memory start from its engine-core process as a RuntimeError or
            # a ValueError ("Free memory ... is less than desired"); say what would fit instead.
            raise RequestError("gpu_memory_utilization", f"{config.label} engine failed to start: {e}. "
                               f"{planner_advice(config, gpu)}") from e
        vllm_config = self._engine.vllm_config
        cache = vllm_config.cache_config
        self.info = replace(
            self.info, dtype=str(vllm_config.model_config.dtype).replace("torch.", ""),
            max_model_len=vllm_config.model_config.max_model_len,
            kv_tokens=(cache.num_gpu_blocks or 0) * cache.block_size,
            gpu_name=gpu.name, gpu_memory_utilization=config.gpu_memory_utilization, notes=notes,
        )
        self.config = config

    def count_prompt_tokens(self, prompt: str) -> int:
        return len(self._engine.get_tokenizer().encode(prompt))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        s = request.sampling.validate(self.info.max_model_len)
        if request.prompt_token_ids is not None:
            prompt, n_prompt = TokensPrompt(prompt_token_ids=list(request.prompt_token_ids)), len(request.prompt_token_ids)
        else:
            prompt, n_prompt = request.prompt, self.count_prompt_tokens(request.prompt)
        if n_prompt + s.max_tokens > self.info.max_model_len:
            raise RequestError(
                "max_tokens" if n_prompt < self.info.max_model_len else "prompt",
                f"{n_prompt:,} prompt tokens + {s.max_tokens:,} new tokens exceed max_model_len={self.info.max_model_len:,}",
            )
        params = SamplingParams(
            temperature=s.temperature, top_p=s.top_p, top_k=max(s.top_k, 0),
            max_tokens=s.max_tokens, seed=s.seed, repetition_penalty=s.repetition_penalty,
            presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
            stop=list(s.stop) or None, ignore_eos=s.ignore_eos, output_kind=RequestOutputKind.DELTA,
        )
        produced, finished = 0, False
        try:
            async for out in self._engine.generate(prompt, params, request.request_id):
                completion = out.outputs[0]
                produced += len(completion.token_ids)
                finished = out.finished
                yield StreamChunk(
                    text=completion.text, num_output_tokens=produced, t_s=time.perf_counter(),
                    num_prompt_tokens=n_prompt, finished=out.finished, finish_reason=completion.finish_reason,
                )
        finally:
            if not finished:  # the client went away or the UI pressed Stop
                await self._engine.abort(request.request_id)

    async def abort(self, request_id: str) -> None:
        await self._engine.abort(request_id)

    @property
    def errored(self) -> bool:
        return self._engine is not None and self._engine.errored

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
