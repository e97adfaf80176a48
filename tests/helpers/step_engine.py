"""A test and benchmark engine as fast as a batching GPU one: every active request gets one token per
step of one shared clock (``step_s``, 3 ms by default), so the app's own per-request and per-chunk
work is what shows. Nothing is computed: the tokens are word numbers.

Used by benchmarks/v1_burst.py (the /v1 and /api/v1 bursts against their direct baseline) and by
tests that need many concurrent requests to stream at once.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import threading
import time

from playground.engines.base import EngineInfo, GenerationRequest, RequestError, StreamChunk


class TokenizerPool:
    """A tokenizer shared the way vLLM's renderer shares its own (vllm/tokenizers/hf.py
    maybe_make_thread_pool, with renderer_num_workers + 1 = 2 copies): each call borrows a copy; a
    caller that finds every copy borrowed deep-copies the whole tokenizer, and that copy joins the pool.
    ``copies_made`` counts those copies (a Llama-3 tokenizer's takes tens of ms, holding the GIL)."""

    def __init__(self, tokenizer, copies: int = 2):
        self._original = tokenizer
        self._pool: queue.Queue = queue.Queue()
        for _ in range(copies):
            self._pool.put(copy.deepcopy(tokenizer))
        self.copies_made = 0
        self.borrowed = self.max_borrowed = 0
        self._lock = threading.Lock()

    def encode(self, *args, **kwargs):
        try:
            tok = self._pool.get_nowait()
        except queue.Empty:
            tok = copy.deepcopy(self._original)
            with self._lock:
                self.copies_made += 1
        with self._lock:
            self.borrowed += 1
            self.max_borrowed = max(self.max_borrowed, self.borrowed)
        try:
            return tok.encode(*args, **kwargs)
        finally:
            with self._lock:
                self.borrowed -= 1
            self._pool.put(tok)


class StepClockEngine:
    def __init__(self, label: str, step_s: float = 0.003, max_model_len: int = 4096, chat_template: bool = False,
                 tokenizer=None):
        self.info = EngineInfo(backend="test", label=label, model="step-clock", dtype="bf16", quantization=None,
                               kv_cache_dtype="auto", max_model_len=max_model_len, chat_template=chat_template,
                               speed_note="a fake engine: one token per request every step")
        self.step_s = step_s
        self.errored = False
        self.num_running = 0
        self.max_running = 0  # the most requests that were streaming at once (tests read it)
        self.started_s: list[float] = []  # perf_counter() when each request reached the engine
        # a TokenizerPool over a real tokenizer (the prompt is tokenized as vLLM's engine does: in count_prompt_tokens
        # and again in stream), else words are tokens
        self._tokenizer = tokenizer
        self._active: dict[str, asyncio.Queue] = {}
        self._clock: asyncio.Task | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()

    def count_prompt_tokens(self, prompt: str, chat: bool = False) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(prompt))
        return len(prompt.split()) + (4 if chat else 0)

    async def _tick(self) -> None:
        """The batch's steps: all active requests advance together, as a GPU engine's batch does."""
        while self._active:
            await asyncio.sleep(self.step_s)
            now = time.perf_counter()
            for queue in list(self._active.values()):
                queue.put_nowait(now)
        self._clock = None

    async def stream(self, request: GenerationRequest):
        n_prompt = len(request.prompt_token_ids) if request.prompt_token_ids is not None else \
            self.count_prompt_tokens(request.prompt, request.chat)
        if n_prompt + request.sampling.max_tokens > self.info.max_model_len:
            raise RequestError("max_tokens", f"prompt + max_tokens is over max_model_len={self.info.max_model_len}")
        self.started_s.append(time.perf_counter())
        steps: asyncio.Queue = asyncio.Queue()
        self._active[request.request_id] = steps
        self.num_running += 1
        self.max_running = max(self.max_running, self.num_running)
        if self._clock is None:
            self._clock = asyncio.get_running_loop().create_task(self._tick())
        try:
            n = request.sampling.max_tokens
            for i in range(1, n + 1):
                t = await steps.get()
                yield StreamChunk(text=f" w{i}", num_output_tokens=i, token_ids=(i,), t_s=t, num_prompt_tokens=n_prompt,
                                  finished=i == n, finish_reason="length" if i == n else None)
        finally:
            self._active.pop(request.request_id, None)
            self.num_running -= 1

    async def abort(self, request_id: str) -> None:
        self._active.pop(request_id, None)

    async def score(self, prompt, chat, continuation, top_k):
        raise RequestError("logprobs", "the step-clock engine does not score")
