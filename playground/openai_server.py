"""A small OpenAI-compatible server around one of our engines (the CPU engine, no GPU needed).

It speaks the part of vLLM's server protocol the playground's `--backend openai` uses, with vLLM's
field names: `/v1/models` (with max_model_len), `/tokenize` (text or chat messages),
`/v1/completions` (streamed SSE or not; token-id prompts; `return_token_ids`; vLLM's sampling
extras; `prompt_logprobs`), `/v1/chat/completions` (the model's chat template), `usage` with prompt,
completion and total tokens (also as the last chunk with `stream_options.include_usage`), `/metrics`
(`vllm:cache_config_info`, `vllm:num_requests_running`) and `/health`. A client that goes away aborts its request in the engine, as vLLM's server does.

`python -m playground.serve --backend cpu` runs it; the tests run it as a real server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from playground.engines.base import GenerationRequest, RequestError, SamplingSettings


def _error(status: int, message: str, kind: str = "BadRequestError", param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status_code=status)


def sampling_from_body(body: dict) -> SamplingSettings:
    top_k = int(body.get("top_k") or 0)
    stop = body.get("stop") or ()
    return SamplingSettings(
        temperature=float(body.get("temperature", 1.0)), top_p=float(body.get("top_p", 1.0)),
        top_k=0 if top_k < 0 else top_k, max_tokens=int(body.get("max_tokens") or 16),
        seed=body.get("seed"), repetition_penalty=float(body.get("repetition_penalty", 1.0)),
        presence_penalty=float(body.get("presence_penalty", 0.0)),
        frequency_penalty=float(body.get("frequency_penalty", 0.0)),
        stop=(stop,) if isinstance(stop, str) else tuple(stop), ignore_eos=bool(body.get("ignore_eos", False)),
    ).validate()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def build_app(engine, model_name: str, api_key: str | None = None, *, drop_after_tokens: int | None = None) -> Starlette:
    """``engine`` is started by the app's lifespan. ``drop_after_tokens`` (tests only) closes every
    stream after that many tokens without finishing it, as a server that dies mid-answer would."""
    running: set[str] = set()

    def authorized(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization") == f"Bearer {api_key}"

    async def models(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "Unauthorized", "AuthenticationError")
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "owned_by": "playground", "max_model_len": engine.info.max_model_len}]})

    async def tokenize(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "Unauthorized", "AuthenticationError")
        body = await request.json()
        from playground.engines.cpu_engine import prompt_ids

        if "messages" in body:
            text = "\n".join(m.get("content", "") for m in body["messages"])
            ids = await asyncio.to_thread(prompt_ids, text, True)
        else:
            ids = await asyncio.to_thread(prompt_ids, str(body.get("prompt", "")), False)
        return JSONResponse({"count": len(ids), "max_model_len": engine.info.max_model_len, "tokens": ids})

    async def completions(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "Unauthorized", "AuthenticationError")
        body = await request.json()
        if body.get("model") not in (None, model_name):
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        prompt = body.get("prompt")
        try:
            sampling = sampling_from_body(body)
            if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
                req = GenerationRequest(f"cmpl-{uuid.uuid4().hex}", sampling, prompt_token_ids=tuple(prompt))
            else:
                req = GenerationRequest(f"cmpl-{uuid.uuid4().hex}", sampling, prompt=str(prompt or ""))
        except (RequestError, ValueError, TypeError) as e:
            return _error(400, str(e))
        if body.get("prompt_logprobs") is not None:
            return await _prompt_logprobs(req, int(body["prompt_logprobs"]))
        if not body.get("stream"):
            return await _whole(req)
        stream = engine.stream(req)
        try:  # the first chunk decides between a 400 and a stream
            first = await anext(stream)
        except RequestError as e:
            return _error(400, str(e))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_sse(req, stream, first, bool(body.get("return_token_ids")), include_usage),
                                 media_type="text/event-stream")

    async def chat_completions(request: Request) -> Response:
        """The conversation through the model's chat template (the app's own /v1 parses it the same way)."""
        from playground.ui.openai_api import ApiError, chat_messages, chat_prompt_ids, field, sampling_of

        if not authorized(request):
            return _error(401, "Unauthorized", "AuthenticationError")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body must be a JSON object", param="body")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object", param="body")
        if body.get("model") not in (None, model_name):
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        try:
            ids = await chat_prompt_ids(engine, chat_messages(body))
            limit = engine.info.max_model_len
            sampling = sampling_of(body, max(limit - len(ids), 1), "max_completion_tokens")
            req = GenerationRequest(f"chatcmpl-{uuid.uuid4().hex}", sampling, prompt_token_ids=tuple(ids))
            stream = field(body, "stream", "boolean", False)
            include_usage = bool((field(body, "stream_options", "object", {}) or {}).get("include_usage"))
        except ApiError as e:
            return _error(e.status, e.message, param=e.param)
        if not stream:
            return await _whole(req, chat=True)
        chunks = engine.stream(req)
        try:
            first = await anext(chunks)
        except RequestError as e:
            return _error(400, str(e), param=e.argument)
        return StreamingResponse(_sse(req, chunks, first, False, include_usage, chat=True), media_type="text/event-stream")

    async def _sse(req, stream, first, with_ids: bool, include_usage: bool = False, chat: bool = False):
        running.add(req.request_id)
        kind = "chat.completion.chunk" if chat else "text_completion"
        sent, n_prompt = 0, 0

        def event(choices, **extra) -> str:
            return f"data: {json.dumps({'id': req.request_id, 'object': kind, 'created': int(time.time()), 'model': model_name, 'choices': choices, **extra})}\n\n"

        try:
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
        finally:
            running.discard(req.request_id)
            await stream.aclose()  # a client that went away: the engine's request is aborted here

    async def _whole(req, chat: bool = False) -> Response:
        text, ids, reason, n_prompt = "", [], None, 0
        try:
            async for chunk in engine.stream(req):
                text += chunk.text
                ids += chunk.token_ids
                reason, n_prompt = chunk.finish_reason, chunk.num_prompt_tokens
        except RequestError as e:
            return _error(400, str(e), param=e.argument)
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
            return _error(400, "prompt_logprobs needs a token-id prompt of two or more tokens")
        # score(prompt=ids[:1], continuation=ids[1:]) is the engine's teacher-forced pass over the prompt
        rows = await engine.score_ids(ids[:1], tuple(ids[1:]), top_k)
        out = [None] + [{str(t): {"logprob": lp} for t, lp in row.items()} for row in rows]
        return JSONResponse({"id": req.request_id, "object": "text_completion", "model": model_name,
                             "choices": [{"index": 0, "text": "", "prompt_logprobs": out, "finish_reason": "length"}]})

    async def metrics(request: Request) -> Response:
        # vLLM's CacheConfig labels; a CPU engine has no paged KV cache, so no block count
        lines = [
            "# TYPE vllm:cache_config_info gauge",
            f'vllm:cache_config_info{{cache_dtype="{engine.info.kv_cache_dtype}",engine="0"}} 1.0',
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{engine="0",model_name="{model_name}"}} {float(len(running))}',
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await engine.start()
        yield
        await engine.stop()

    return Starlette(routes=[
        Route("/v1/models", models), Route("/tokenize", tokenize, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]), Route("/metrics", metrics),
        Route("/health", health),
    ], lifespan=lifespan)
