"""The embedded default: SmolLM2-135M-Instruct run by transformers on the CPU.

Two instances make the CPU comparison: the 16-bit model (bfloat16) and an FP8 twin whose decoder
Linear weights are stored as float8_e4m3fn (per-tensor scale amax / 448) and dequantized at use.
Both start from the same pretrained weights (playground/engines/smollm2.py), so the text is real
and the difference between the columns is FP8's. A CPU has no FP8 matmul: the twin is slower here,
and the engine says so.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import torch

from planner.assets import load_json
from playground.engines.base import EngineInfo, GenerationRequest, RequestError, SamplingSettings, StreamChunk
from playground.engines.fp8 import quantize_linears
from playground.engines.smollm2 import load_base_model, load_tokenizer

CPU_SPEED_NOTE = ("CPU speeds: a CPU has no FP8 matrix units, so the FP8 twin dequantizes its weights at every use "
                  "and runs slower than 16-bit here. This is not FP8's speed on a GPU.")


def build_model(fp8: bool) -> torch.nn.Module:
    """The 16-bit model, or a copy with FP8 Linear weights (the LM head stays 16-bit, as in vLLM)."""
    base = load_base_model()
    if not fp8:
        return base
    twin = copy.deepcopy(base)
    quantize_linears(twin)
    return twin


class _PenaltyProcessor:
    """vLLM's presence/frequency penalties: subtract from the logits of tokens already generated."""

    def __init__(self, presence: float, frequency: float, prompt_len: int):
        self.presence, self.frequency, self.prompt_len = presence, frequency, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_len:]
        if generated.numel() == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


def _logits_processors(s: SamplingSettings, prompt_len: int):
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
    )

    processors = LogitsProcessorList()
    if s.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
    if s.presence_penalty or s.frequency_penalty:
        processors.append(_PenaltyProcessor(s.presence_penalty, s.frequency_penalty, prompt_len))
    if s.temperature > 0:
        processors.append(TemperatureLogitsWarper(s.temperature))
        if s.top_k > 0:
            processors.append(TopKLogitsWarper(s.top_k))
        if s.top_p < 1.0:
            processors.append(TopPLogitsWarper(s.top_p))
    return processors


def prompt_ids(prompt: str, chat: bool, tokenizer=None) -> list[int]:
    tokenizer = tokenizer or load_tokenizer()
    if chat:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return tokenizer.encode(prompt)


class CpuEngine:
    """One CPU model behind the Engine interface; requests run in worker threads.

    ``folder``: a Hugging Face model folder instead of the embedded model (a column of
    ``--engine LABEL=FOLDER``); a compressed-tensors checkpoint is decompressed to bfloat16 at load."""

    def __init__(self, label: str, fp8: bool, max_workers: int = 2, *, folder: str | None = None,
                 kv_cache_dtype: str = "auto"):
        self.fp8, self.folder, self.requested_kv = fp8, folder, kv_cache_dtype
        self._model = None
        self._tokenizer = None
        self._running: dict[str, threading.Event] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"cpu-{label}")
        spec = load_json("cpu_model.json")
        self.info = EngineInfo(
            backend="cpu", label=label, model=spec["name"], dtype="bfloat16",
            quantization="fp8 (float8_e4m3fn weights, per-tensor amax/448)" if fp8 else None,
            kv_cache_dtype="bfloat16", max_model_len=2048, notes=(spec["description"],),
            chat_template=True, speed_note=CPU_SPEED_NOTE,
        )
        if folder is not None:
            self.info = replace(self.info, model=folder, notes=())

    async def start(self) -> None:
        if self.requested_kv.startswith("fp8"):
            raise RequestError("engine", f"{self.info.label}: kv-cache-dtype={self.requested_kv} needs the vLLM "
                                         "backend; the CPU engine keeps its KV cache in bfloat16")
        if self.folder is None:
            self._model = await asyncio.to_thread(build_model, self.fp8)
            self._tokenizer = await asyncio.to_thread(load_tokenizer)
            return
        from playground.engines.hf_folder import load_folder

        loaded = await asyncio.to_thread(load_folder, self.info.label, self.folder, self.fp8)
        self._model, self._tokenizer = loaded.model, loaded.tokenizer
        self.info = replace(self.info, quantization=loaded.quantization, max_model_len=loaded.max_model_len,
                            chat_template=loaded.chat_template, notes=loaded.notes)

    def count_prompt_tokens(self, prompt: str, chat: bool = False) -> int:
        return len(prompt_ids(prompt, chat, self._tokenizer))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        s = request.sampling.validate(self.info.max_model_len)
        ids = list(request.prompt_token_ids) if request.prompt_token_ids is not None else \
            prompt_ids(request.prompt, request.chat, self._tokenizer)
        if len(ids) + s.max_tokens > self.info.max_model_len:
            raise RequestError(
                "max_tokens" if len(ids) < self.info.max_model_len else "prompt",
                f"{len(ids):,} prompt tokens + {s.max_tokens:,} new tokens exceed max_model_len={self.info.max_model_len:,}",
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        self._running[request.request_id] = cancel

        def emit(item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        future = loop.run_in_executor(self._pool, self._generate, ids, s, cancel, emit)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finished:
                    break
        finally:
            cancel.set()
            self._running.pop(request.request_id, None)
            if not future.done():  # let the worker thread see the cancel flag and finish
                await asyncio.wrap_future(future)

    @torch.inference_mode()
    def _generate(self, ids: list[int], s: SamplingSettings, cancel: threading.Event, emit) -> None:
        try:
            tokenizer = self._tokenizer or load_tokenizer()
            eos = tokenizer.eos_token_id
            generator = torch.Generator().manual_seed(s.seed if s.seed is not None else int(time.time_ns() % 2**31))
            processors = _logits_processors(s, len(ids))
            all_ids = torch.tensor([ids])
            step_input, past = all_ids, None
            out_ids: list[int] = []
            text = ""
            for _ in range(s.max_tokens):
                if cancel.is_set():
                    return
                out = self._model(input_ids=step_input, past_key_values=past, use_cache=True)
                past = out.past_key_values
                scores = processors(all_ids, out.logits[:, -1, :].float())
                if s.temperature == 0:
                    token = int(scores.argmax(-1))
                else:
                    token = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=generator))
                reason = "stop" if token == eos and not s.ignore_eos else None
                out_ids.append(token)
                all_ids = torch.cat([all_ids, torch.tensor([[token]])], dim=1)
                step_input = all_ids[:, -1:]
                new_text = tokenizer.decode(out_ids, skip_special_tokens=True)
                hit = next((stop for stop in s.stop if stop in new_text), None)
                if hit is not None:
                    new_text, reason = new_text[: new_text.index(hit)], "stop"
                if reason is None and len(out_ids) == s.max_tokens:
                    reason = "length"
                emit(StreamChunk(text=new_text[len(text):], num_output_tokens=len(out_ids), token_ids=(token,),
                                 t_s=time.perf_counter(), num_prompt_tokens=len(ids), finished=reason is not None,
                                 finish_reason=reason))
                text = new_text
                if reason is not None:
                    return
        except BaseException as e:  # hand any failure to the awaiting stream instead of losing it in the thread
            emit(e)

    @property
    def num_running(self) -> int:
        """Requests generating now (a cancelled one leaves as soon as its worker sees the flag)."""
        return len(self._running)

    async def score(self, prompt: str, chat: bool, continuation: tuple[int, ...], top_k: int = 20) -> list[dict[int, float]]:
        return await self.score_ids(prompt_ids(prompt, chat, self._tokenizer), continuation, top_k)

    async def score_ids(self, ids: list[int], continuation: tuple[int, ...], top_k: int = 20) -> list[dict[int, float]]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._score, list(ids), tuple(continuation), top_k)

    @torch.inference_mode()
    def _score(self, ids: list[int], continuation: tuple[int, ...], top_k: int) -> list[dict[int, float]]:
        if not continuation:
            return []
        full = torch.tensor([ids + list(continuation)])
        logits = self._model(input_ids=full).logits[0, len(ids) - 1:-1].float()
        logprobs = torch.log_softmax(logits, -1)
        top = logprobs.topk(top_k, -1)
        rows = []
        for i, token in enumerate(continuation):
            row = {int(t): float(v) for t, v in zip(top.indices[i], top.values[i])}
            row.setdefault(int(token), float(logprobs[i, token]))
            rows.append(row)
        return rows

    async def abort(self, request_id: str) -> None:
        cancel = self._running.get(request_id)
        if cancel:
            cancel.set()

    async def stop(self) -> None:
        for cancel in self._running.values():
            cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
