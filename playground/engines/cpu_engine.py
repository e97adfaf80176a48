"""The embedded default: a small Llama-architecture model run by transformers on the CPU.

Two instances make the CPU comparison: a bfloat16 baseline and an FP8 twin whose decoder Linear
weights are stored as float8_e4m3fn (per-tensor scale amax / 448) and dequantized at use. The
weights come from a seeded generator (assets/cpu_model.json says why), so the text is gibberish;
the FP8 numerics and this machine's measured speed are real. It never claims GPU numbers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import torch

from planner.assets import ASSETS_DIR, load_json
from playground.engines.base import EngineInfo, GenerationRequest, RequestError, SamplingSettings, StreamChunk
from playground.engines.fp8 import quantize_linears


@cache
def load_tokenizer():
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(ASSETS_DIR / "tokenizer.model"))


def build_model(fp8: bool) -> torch.nn.Module:
    """The CPU model, identical weights every time (seeded), optionally with FP8 Linear weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = load_json("cpu_model.json")
    config = AutoConfig.for_model(**spec["config"])
    with torch.random.fork_rng():  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(spec["seed"])
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    if fp8:
        quantize_linears(model)
    return model


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


@dataclass
class _Running:
    cancel: threading.Event


class CpuEngine:
    """One CPU model behind the Engine interface; requests run in worker threads."""

    def __init__(self, label: str, fp8: bool, max_workers: int = 2):
        self.fp8 = fp8
        self._model = None
        self._running: dict[str, _Running] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"cpu-{label}")
        spec = load_json("cpu_model.json")
        self.info = EngineInfo(
            backend="cpu", label=label, model=spec["name"], dtype="bfloat16",
            quantization="fp8 (float8_e4m3fn weights, per-tensor amax/448)" if fp8 else None,
            kv_cache_dtype="bfloat16", max_model_len=spec["config"]["max_position_embeddings"],
            notes=("random weights (seeded): the text is gibberish; speed is this CPU's, not a GPU's",),
        )

    async def start(self) -> None:
        self._model = await asyncio.to_thread(build_model, self.fp8)
        load_tokenizer()

    def count_prompt_tokens(self, prompt: str) -> int:
        return len(load_tokenizer().encode(prompt)) + 1  # + BOS

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        s = request.sampling.validate(self.info.max_model_len)
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
        else:
            ids = [load_tokenizer().bos_id(), *load_tokenizer().encode(request.prompt)]
        if len(ids) + s.max_tokens > self.info.max_model_len:
            raise RequestError(
                "max_tokens" if len(ids) < self.info.max_model_len else "prompt",
                f"{len(ids):,} prompt tokens + {s.max_tokens:,} new tokens exceed max_model_len={self.info.max_model_len:,}",
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        running = _Running(cancel=threading.Event())
        self._running[request.request_id] = running

        def emit(item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        future = loop.run_in_executor(self._pool, self._generate, ids, s, running.cancel, emit)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finished:
                    break
        finally:
            running.cancel.set()
            self._running.pop(request.request_id, None)
            if not future.done():  # let the worker thread see the cancel flag and finish
                await asyncio.wrap_future(future)

    @torch.inference_mode()
    def _generate(self, prompt_ids: list[int], s: SamplingSettings, cancel: threading.Event, emit) -> None:
        try:
            tokenizer = load_tokenizer()
            generator = torch.Generator().manual_seed(s.seed if s.seed is not None else int(time.time_ns() % 2**31))
            processors = _logits_processors(s, len(prompt_ids))
            all_ids = torch.tensor([prompt_ids])
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
                out_ids.append(token)
                all_ids = torch.cat([all_ids, torch.tensor([[token]])], dim=1)
                step_input = all_ids[:, -1:]
                new_text = tokenizer.decode(out_ids)
                reason = None
                if token == tokenizer.eos_id() and not s.ignore_eos:
                    reason = "stop"
                hit = next((stop for stop in s.stop if stop in new_text), None)
                if hit is not None:
                    new_text, reason = new_text[: new_text.index(hit)], "stop"
                if reason is None and len(out_ids) == s.max_tokens:
                    reason = "length"
                emit(StreamChunk(
                    text=new_text[len(text):], num_output_tokens=len(out_ids), t_s=time.perf_counter(),
                    num_prompt_tokens=len(prompt_ids), finished=reason is not None, finish_reason=reason,
                ))
                text = new_text
                if reason is not None:
                    return
        except BaseException as e:  # hand any failure to the awaiting stream instead of losing it in the thread
            emit(e)

    async def abort(self, request_id: str) -> None:
        running = self._running.get(request_id)
        if running:
            running.cancel.set()

    async def stop(self) -> None:
        for running in self._running.values():
            running.cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
