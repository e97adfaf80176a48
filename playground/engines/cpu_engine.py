"""The embedded default: SmolLM2-135M-Instruct run by transformers on the CPU.

Two instances make the CPU comparison: the 16-bit model and an FP8 twin that computes vLLM's FP8
numbers (playground/engines/fp8.py: E4M3 weights rounded once at load with one scale per merged
layer, activations rounded per token at each call). Both start from the same pretrained weights
(playground/engines/smollm2.py), so the text is real and the difference between the columns is
FP8's rounding. Both compute in the CPU's faster dtype (bfloat16 or float32, measured at start):
a CPU has no FP8 matrix units, so the two columns run at about the same speed here.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from planner.assets import load_json
from playground.engines.base import EngineInfo, GenerationRequest, RequestError, SamplingSettings, StreamChunk
from playground.engines.fp8_scheme import ONLINE
from playground.engines.smollm2 import load_base_model, load_tokenizer

CPU_SPEED_NOTE = ("CPU speeds, not FP8's: a CPU has no FP8 matrix units. The FP8 column computes vLLM's FP8 "
                  "numbers (" + ONLINE.describe() + "), so its text and the quality diff are FP8's, and its "
                  "speed is about the 16-bit column's. On a GPU FP8's speed differs: see the recorded GPU figures.")
DTYPE_ENV = "PLAYGROUND_CPU_DTYPE"  # bfloat16 or float32: skip the start-up measurement


def _decode_shaped_work(dtype, layers: int = 6):
    """One token through ``layers`` SmolLM2-135M-shaped blocks of Linears (hidden 576, MLP 1536): the
    matrix-vector work that decides decode speed, larger than a CPU cache."""
    import torch

    gen = torch.Generator().manual_seed(0)
    shapes = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
    weights = [torch.randn(o, i, generator=gen).to(dtype) for _ in range(layers) for o, i in shapes]
    x = {576: torch.randn(1, 576).to(dtype), 1536: torch.randn(1, 1536).to(dtype)}

    def step() -> float:
        t = time.perf_counter()
        for w in weights:
            torch.nn.functional.linear(x[w.shape[1]], w)
        return time.perf_counter() - t

    return step


def measure_compute_dtypes(repeats: int = 15) -> dict[torch.dtype, float]:
    """The fastest of ``repeats`` interleaved steps per dtype, in seconds: the minimum, because the
    other processes of a shared machine only ever add time."""
    import torch

    steps = {dtype: _decode_shaped_work(dtype) for dtype in (torch.bfloat16, torch.float32)}
    best = dict.fromkeys(steps, float("inf"))
    with torch.inference_mode():
        for step in steps.values():
            step()  # the first call picks kernels: not timed
        for _ in range(repeats):
            for dtype, step in steps.items():
                best[dtype] = min(best[dtype], step())
    return best


_DTYPE: dict[str, torch.dtype] = {}


def compute_dtype() -> torch.dtype:
    """The faster of bfloat16 and float32 for decode on this CPU, measured once per process (a
    fraction of a second, on the engine-start thread): bfloat16 halves the bytes read per token, but
    a CPU without native bf16 arithmetic pays for converting it. $PLAYGROUND_CPU_DTYPE overrides."""
    import torch

    if "dtype" not in _DTYPE:
        forced = os.environ.get(DTYPE_ENV)
        if forced:
            if forced not in ("bfloat16", "float32"):
                raise RequestError(DTYPE_ENV, f"{forced!r} is not bfloat16 or float32")
            _DTYPE["dtype"] = getattr(torch, forced)
        else:
            times = measure_compute_dtypes()
            _DTYPE["dtype"] = min(times, key=times.get)
    return _DTYPE["dtype"]


def build_model(fp8: bool, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The 16-bit model in ``dtype``, or a copy with vLLM's FP8 Linears (the LM head stays 16-bit, as in vLLM)."""
    from playground.engines.fp8 import quantize_linears

    dtype = dtype or compute_dtype()
    base = load_base_model()  # bfloat16, shared: copied before any change
    if not fp8:
        return base if dtype == base.dtype else copy.deepcopy(base).to(dtype)
    twin = copy.deepcopy(base).to(dtype)  # bf16 values, exact in float32 too
    quantize_linears(twin, ONLINE, compute_dtype=dtype)  # after .to(): .to() would convert the fp8 buffers
    return twin


def _inference_mode(fn):
    """torch.inference_mode() entered at call time: importing this module must not import torch (the
    page starts before the engines, and importing torch takes seconds on two cores)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper


class _PenaltyProcessor:
    """vLLM's presence/frequency penalties: subtract from the logits of tokens already generated."""

    def __init__(self, presence: float, frequency: float, prompt_len: int):
        self.presence, self.frequency, self.prompt_len = presence, frequency, prompt_len

    def __call__(self, input_ids, scores):
        import torch

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
    ``--engine LABEL=FOLDER``); a compressed-tensors checkpoint is decompressed at load."""

    def __init__(self, label: str, fp8: bool, max_workers: int = 2, *, folder: str | None = None,
                 kv_cache_dtype: str = "auto"):
        self.fp8, self.info_label = fp8, label
        self.folder, self.requested_kv = folder, kv_cache_dtype
        self._model = None
        self._tokenizer = None
        self._running: dict[str, threading.Event] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"cpu-{label}")
        spec = load_json("cpu_model.json")
        self._spec = spec
        self.info = self._info("bfloat16 weights; compute dtype measured at start")

    def _info(self, dtype: str) -> EngineInfo:
        return EngineInfo(
            backend="cpu", label=self.info_label, model=self._spec["name"], dtype=dtype,
            quantization="fp8 emulated: " + ONLINE.describe() if self.fp8 else None,
            kv_cache_dtype=dtype.split(" ")[0], max_model_len=2048, notes=(self._spec["description"],),
            chat_template=True, speed_note=CPU_SPEED_NOTE,
        )

    async def start(self) -> None:
        if self.requested_kv.startswith("fp8"):
            raise RequestError("engine", f"kv-cache-dtype={self.requested_kv} needs the vLLM backend; the CPU "
                                         "engine keeps its KV cache in its compute dtype")
        dtype = await asyncio.to_thread(compute_dtype)
        name = str(dtype).removeprefix("torch.")
        dtype_text = f"{name} (the faster on this CPU)" if not os.environ.get(DTYPE_ENV) else f"{name} (${DTYPE_ENV})"
        if self.folder is not None:
            from dataclasses import replace

            from playground.engines.hf_folder import load_folder

            loaded = await asyncio.to_thread(load_folder, self.folder, self.fp8, dtype)
            self._model, self._tokenizer = loaded.model, loaded.tokenizer
            self.info = replace(self._info(dtype_text), model=self.folder, quantization=loaded.quantization,
                                max_model_len=loaded.max_model_len, chat_template=loaded.chat_template, notes=loaded.notes)
            return
        self._model = await asyncio.to_thread(build_model, self.fp8, dtype)
        self._tokenizer = await asyncio.to_thread(load_tokenizer)
        self.info = self._info(dtype_text)

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

    @_inference_mode
    def _generate(self, ids: list[int], s: SamplingSettings, cancel: threading.Event, emit) -> None:
        import torch

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

    @_inference_mode
    def _score(self, ids: list[int], continuation: tuple[int, ...], top_k: int) -> list[dict[int, float]]:
        import torch

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
