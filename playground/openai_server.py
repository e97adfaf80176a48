"""A small OpenAI-compatible server around one of our engines (the CPU engine, no GPU needed).

It speaks the part of vLLM's server protocol the playground's `--backend openai` uses, with vLLM's
field names: `/v1/models` (with max_model_len), `/tokenize` (text or chat messages),
`/v1/completions` (streamed SSE or not; token-id prompts; `return_token_ids`; vLLM's sampling
extras; `prompt_logprobs`), `/v1/chat/completions` (the model's chat template), `usage` with prompt,
completion and total tokens (also as the last chunk with `stream_options.include_usage`), `/metrics`
(`vllm:cache_config_info`, `vllm:num_requests_running`, through prometheus_client) and `/health`. A
request is checked as the app's /v1 checks it (playground/openai_protocol.py: a 400 in OpenAI's shape
with `param` naming the field, a 429 when full). A client that goes away aborts its request in the
engine, as vLLM's server does.

`python -m playground.serve --backend cpu` runs it; the tests run it as a real server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from playground.engines.base import GenerationRequest, RequestError
from playground.openai_protocol import (
    MAX_LOGPROBS, ApiError, chat_messages, chat_prompt_ids, choose_model, field, from_request_error, parse_request,
    read_body, sampling_for,
)
from playground.prom import CONTENT_TYPE
from playground.service import MAX_IN_FLIGHT, check_room


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class _EngineGauges:
    """vLLM's gauges that `--backend openai` reads, at scrape time: the cache's dtype as
    ``vllm:cache_config_info`` labels (a CPU engine has no paged KV cache, so no block count) and the
    requests running."""

    def __init__(self, engine, model_name: str, running: set[str]):
        self.engine, self.model_name, self.running = engine, model_name, running

    def collect(self):
        cache = GaugeMetricFamily("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                                  labels=["cache_dtype", "engine"])
        cache.add_metric([self.engine.info.kv_cache_dtype, "0"], 1.0)
        running = GaugeMetricFamily("vllm:num_requests_running", "Requests generating in the engine now.",
                                    labels=["engine", "model_name"])
        running.add_metric(["0", self.model_name], float(len(self.running)))
        yield from (cache, running)


class _ReleasingStream(StreamingResponse):
    """A stream that gives its request's slot back however it ends: a client that hangs up before the first byte
    never starts the body's generator, so that generator's own clean-up would never run."""

    def __init__(self, content, release, **kwargs):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()


def build_app(engine, model_name: str, api_key: str | None = None, *, drop_after_tokens: int | None = None,
              max_in_flight: int = MAX_IN_FLIGHT) -> Starlette:
    """``engine`` is started by the app's lifespan. Requests are checked as the app's /v1 checks them
    (playground/openai_protocol.py); past ``max_in_flight`` at once a caller gets a 429. ``drop_after_tokens``
    (tests only) closes every stream after that many tokens without finishing it, as a server that dies
    mid-answer would."""
    running: set[str] = set()  # requests generating now (/metrics)
    admitted: set[str] = set()  # requests between their admission and their answer's end (back-pressure)
    registry = CollectorRegistry()
    registry.register(_EngineGauges(engine, model_name, running))

    def authorized(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization") == f"Bearer {api_key}"

    def unauthorized() -> Response:
        return ApiError(401, "not authenticated: send Authorization: Bearer <the --api-key-env key>", None,
                        "authentication_error").response()

    async def models(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "owned_by": "playground", "max_model_len": engine.info.max_model_len}]})

    async def tokenize(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        from playground.engines.cpu_engine import prompt_ids

        try:
            body = await read_body(request)
            chat = "messages" in body
            text = "\n".join(m["content"] for m in chat_messages(body)) if chat else str(body.get("prompt", ""))
        except ApiError as e:
            return e.response()
        ids = await asyncio.to_thread(prompt_ids, text, chat)
        return JSONResponse({"count": len(ids), "max_model_len": engine.info.max_model_len, "tokens": ids})

    async def prepare(request: Request, chat: bool):
        """The request checked before anything runs, as the app's /v1 checks it; then admitted or a 429."""
        body = await read_body(request)
        choose_model(body.get("model"), [model_name], default=model_name)  # one model: `model` may be left out
        parsed = parse_request(body, chat)
        if parsed.top_logprobs is not None:
            raise ApiError(400, f"{'top_logprobs' if chat else 'logprobs'}: not served by this server; "
                                "ask for prompt_logprobs (vLLM's) on a token-id prompt", "logprobs")
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        if chat:
            ids = tuple(await chat_prompt_ids(engine, parsed.messages))
            req = GenerationRequest(rid, sampling_for(parsed, engine, len(ids)), prompt_token_ids=ids)
        elif isinstance(parsed.prompt, tuple):
            req = GenerationRequest(rid, sampling_for(parsed, engine, len(parsed.prompt)), prompt_token_ids=parsed.prompt)
        else:
            n_prompt = await asyncio.to_thread(engine.count_prompt_tokens, parsed.prompt)
            req = GenerationRequest(rid, sampling_for(parsed, engine, n_prompt), prompt=parsed.prompt)
        # vLLM's extras that `--backend openai` sends: each answer's token ids, the prompt's logprobs
        with_ids = not chat and field(body, "return_token_ids", "boolean", False)
        prompt_logprobs = None if chat else field(body, "prompt_logprobs", "integer", None)
        if prompt_logprobs is not None and not 0 <= prompt_logprobs <= MAX_LOGPROBS:
            raise ApiError(400, f"prompt_logprobs: {prompt_logprobs} is outside [0, {MAX_LOGPROBS}]", "prompt_logprobs")
        try:
            check_room(len(admitted), max_in_flight)
        except RequestError as e:
            raise from_request_error(e) from None
        return parsed, req, with_ids, prompt_logprobs

    def endpoint(chat: bool):
        async def handle(request: Request) -> Response:
            if not authorized(request):
                return unauthorized()
            try:
                parsed, req, with_ids, prompt_logprobs = await prepare(request, chat)
            except ApiError as e:
                return e.response()
            admitted.add(req.request_id)
            streaming = False  # once streaming, the stream releases the admission when it ends
            try:
                if prompt_logprobs is not None:
                    return await _prompt_logprobs(req, prompt_logprobs)
                if not parsed.stream:
                    return await _whole(req, chat)
                stream = engine.stream(req)
                try:  # the first chunk decides between a 400 and a stream
                    first = await anext(stream)
                except RequestError as e:
                    return from_request_error(e).response()
                streaming = True

                async def release():  # however the stream ends: done, dropped, or a client that went away
                    running.discard(req.request_id)
                    admitted.discard(req.request_id)
                    await stream.aclose()  # a client that went away: the engine's request is aborted here

                return _ReleasingStream(_sse(req, stream, first, with_ids, bool(parsed.usage), chat), release,
                                        media_type="text/event-stream")
            finally:
                if not streaming:
                    admitted.discard(req.request_id)

        return handle

    async def _sse(req, stream, first, with_ids: bool, include_usage: bool = False, chat: bool = False):
        running.add(req.request_id)
        kind = "chat.completion.chunk" if chat else "text_completion"
        sent, n_prompt = 0, 0

        def event(choices, **extra) -> str:
            return f"data: {json.dumps({'id': req.request_id, 'object': kind, 'created': int(time.time()), 'model': model_name, 'choices': choices, **extra})}\n\n"

        if chat:  # OpenAI's first chunk carries the role
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        chunk = first
        while True:
            sent, n_prompt = chunk.num_output_tokens, chunk.num_prompt_tokens
            reason = chunk.finish_reason if chunk.finished else None
            if chat:
                choice = {"index": 0, "delta": {"content": chunk.text} if chunk.text else {}, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": chunk.text, "finish_reason": reason}
            if with_ids:
                choice["token_ids"] = list(chunk.token_ids)
            yield event([choice])
            if chunk.finished:
                break
            if drop_after_tokens is not None and sent >= drop_after_tokens:
                return  # the connection ends without [DONE] or a finish_reason
            chunk = await anext(stream)
        if include_usage:
            yield event([], usage=_usage(n_prompt, sent))
        yield "data: [DONE]\n\n"

    async def _whole(req, chat: bool = False) -> Response:
        text, ids, reason, n_prompt = "", [], None, 0
        try:
            async for chunk in engine.stream(req):
                text += chunk.text
                ids += chunk.token_ids
                reason, n_prompt = chunk.finish_reason, chunk.num_prompt_tokens
        except RequestError as e:
            return from_request_error(e).response()
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text, "token_ids": ids, "finish_reason": reason}
        return JSONResponse({"id": req.request_id, "object": "chat.completion" if chat else "text_completion",
                             "created": int(time.time()), "model": model_name, "choices": [choice],
                             "usage": _usage(n_prompt, len(ids))})

    async def _prompt_logprobs(req, top_k: int) -> Response:
        ids = list(req.prompt_token_ids or ())
        if len(ids) < 2:
            return ApiError(400, "prompt_logprobs: needs a token-id prompt of two or more tokens", "prompt_logprobs").response()
        # score(prompt=ids[:1], continuation=ids[1:]) is the engine's teacher-forced pass over the prompt
        rows = await engine.score_ids(ids[:1], tuple(ids[1:]), top_k)
        out = [None] + [{str(t): {"logprob": lp} for t, lp in row.items()} for row in rows]
        return JSONResponse({"id": req.request_id, "object": "text_completion", "model": model_name,
                             "choices": [{"index": 0, "text": "", "prompt_logprobs": out, "finish_reason": "length"}]})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await engine.start()
        yield
        await engine.stop()

    return Starlette(routes=[
        Route("/v1/models", models), Route("/tokenize", tokenize, methods=["POST"]),
        Route("/v1/completions", endpoint(chat=False), methods=["POST"]),
        Route("/v1/chat/completions", endpoint(chat=True), methods=["POST"]), Route("/metrics", metrics),
        Route("/health", health),
    ], lifespan=lifespan)
