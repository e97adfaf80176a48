"""The engine interface every backend implements, and the request values it takes.

Names follow vLLM's SamplingParams so that the vLLM adapter passes them straight through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

MAX_PROMPT_CHARS = 200_000  # a bigger paste is refused before tokenizing (1 MB of text must not stall the app)


class RequestError(ValueError):
    """A request an engine will not run, naming the field and the allowed range."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0 = off (vLLM also accepts -1)
    max_tokens: int = 128
    seed: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    def validate(self, max_model_len: int | None = None) -> SamplingSettings:
        def bad(name, allowed):
            raise RequestError(name, f"{getattr(self, name)!r} is outside {allowed}")

        if not 0 <= self.temperature <= 10:
            bad("temperature", "[0, 10]")
        if not 0 < self.top_p <= 1:
            bad("top_p", "(0, 1]")
        if self.top_k < -1:
            bad("top_k", "-1, 0 (off) or a positive integer")
        if self.max_tokens < 1:
            bad("max_tokens", "[1, max_model_len - prompt tokens]")
        if max_model_len is not None and self.max_tokens >= max_model_len:
            bad("max_tokens", f"[1, {max_model_len - 1}] (max_model_len is {max_model_len})")
        if not 0 < self.repetition_penalty <= 2:
            bad("repetition_penalty", "(0, 2]")
        if not -2 <= self.presence_penalty <= 2:
            bad("presence_penalty", "[-2, 2]")
        if not -2 <= self.frequency_penalty <= 2:
            bad("frequency_penalty", "[-2, 2]")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            bad("seed", "[0, 2**63)")
        return self


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    sampling: SamplingSettings
    prompt: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None  # the benchmark sends exact-length token prompts
    chat: bool = False  # wrap the prompt in the model's chat template (instruct models)

    def __post_init__(self):
        if self.prompt_token_ids is None:
            if not isinstance(self.prompt, str) or not self.prompt.strip():
                raise RequestError("prompt", "is empty: type a prompt")
            if len(self.prompt) > MAX_PROMPT_CHARS:
                raise RequestError("prompt", f"{len(self.prompt):,} characters is over the {MAX_PROMPT_CHARS:,} accepted")
        elif not self.prompt_token_ids:
            raise RequestError("prompt_token_ids", "is empty")


@dataclass(frozen=True)
class StreamChunk:
    """One step of a streamed answer. Times are time.perf_counter() readings taken on arrival."""

    text: str  # the new text since the previous chunk
    num_output_tokens: int  # cumulative
    token_ids: tuple[int, ...] = ()  # the new token ids since the previous chunk
    t_s: float = 0.0
    num_prompt_tokens: int = 0
    finished: bool = False
    finish_reason: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    backend: str  # "vllm" or "cpu"
    label: str  # what the column is called: "FP16", "FP8", ...
    model: str
    dtype: str
    quantization: str | None
    kv_cache_dtype: str
    max_model_len: int
    kv_tokens: int | None = None
    gpu_name: str | None = None
    gpu_memory_utilization: float | None = None
    notes: tuple[str, ...] = field(default=())
    chat_template: bool = False  # the model has one (instruct model)
    speed_note: str = ""  # what the speeds mean on this backend
    planner_note: str = ""  # a remote engine: the planner's prediction beside what the server reports

    def status_line(self) -> str:
        quant = self.quantization or "none"
        kv = f", {self.kv_tokens:,} KV tokens" if self.kv_tokens else ""
        where = self.gpu_name or "CPU"
        line = f"{self.label}: {self.backend} · {self.model} · dtype {self.dtype} · quantization {quant} · kv {self.kv_cache_dtype}{kv} · {where}"
        return line + (f" · {self.planner_note}" if self.planner_note else "")


class Engine(Protocol):
    info: EngineInfo

    async def start(self) -> None: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]: ...

    async def abort(self, request_id: str) -> None: ...

    async def stop(self) -> None: ...

    def count_prompt_tokens(self, prompt: str, chat: bool = False) -> int: ...

    async def score(self, prompt: str, chat: bool, continuation: tuple[int, ...], top_k: int) -> list[dict[int, float]]:
        """Teacher-forced: for each token of ``continuation`` after the prompt, the engine's top_k
        next-token logprobs (and the continuation token's own), as {token_id: logprob}."""
        ...
