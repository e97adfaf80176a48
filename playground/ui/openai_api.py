"""OpenAI-compatible endpoints on the app's own server, one column per model, and GET /metrics.

    GET  /v1/models             the columns (the labels the page shows) with their engine settings
    POST /v1/completions        model = a column's label; streamed (SSE, ``data: [DONE]``) or not
    POST /v1/chat/completions   the same, through the model's chat template
    GET  /metrics               Prometheus text (playground/prom.py)
    GET  /health                200 once an engine is ready (vLLM's; guidellm asks it first)

    from openai import OpenAI
    print(OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="-").completions.create(model="FP8", prompt="FP8 is").choices[0].text)

The request fields are those vLLM's server accepts (temperature, top_p, top_k, max_tokens, seed,
stop, presence/frequency/repetition penalties, ignore_eos, logprobs), and ``usage`` counts prompt,
completion and total tokens (in the last chunk too with ``stream_options.include_usage``). One
request runs on one engine and takes that engine's turn in the fair queue (Playground.generate).
The login is the page's (http_api: Gradio's cookie, HTTP Basic) and ``Authorization: Bearer`` with
the key in ``--api-key-env``, or ``user:password`` of ``--auth``. A bad request is a 400 in OpenAI's
shape, ``{"error": {"message", "type", "param", "code"}}``, before anything runs; a full server
429; a client that hangs up stops its request in the engine.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid

from playground.engines.base import GenerationRequest, RequestError
from playground.metrics import RequestTiming
from playground.openai_protocol import (
    ApiError, chat_prompt_ids, choose_model, from_request_error, parse_request, read_body, sampling_for, tokenizer_of,
)
from playground.ui.http_api import _authorized


def _token_text(tokenizer, token: int) -> str:
    return tokenizer.decode([token]) if tokenizer is not None else f"token_id:{token}"


async def score_logprobs(runtime, engine, prompt_ids: list[int] | None, prompt_text: str | None, chat: bool,
                         output_ids: tuple[int, ...], top: int) -> list[tuple[int, float, dict[int, float]]]:
    """Each output token's logprob and the ``top`` most likely, from the engine's teacher-forced pass
    over prompt + output: the model's own distribution, as vLLM's default (raw) logprobs are."""
    if not output_ids:
        return []
    if prompt_ids is not None and hasattr(engine, "score_ids"):
        rows = await runtime.acall(engine.score_ids(prompt_ids, output_ids, max(top, 1)))
    elif prompt_text is not None:
        rows = await runtime.acall(engine.score(prompt_text, chat, output_ids, max(top, 1)))
    else:
        raise ApiError(400, f"logprobs: {engine.info.label} cannot score a token-id or multi-turn prompt", "logprobs")
    out = []
    for token, row in zip(output_ids, rows):
        best = dict(sorted(row.items(), key=lambda kv: -kv[1])[:top])
        out.append((token, row[token], best))
    return out


# ---- running one request
class _Run:
    """One request on one column: the chunks' timings for the metrics, the answer so far."""

    def __init__(self, playground, supervised, request: GenerationRequest, metrics, n_prompt: int | None):
        self.playground, self.supervised, self.request, self.metrics = playground, supervised, request, metrics
        self.label = supervised.info.label
        self.start_s = time.perf_counter()
        self.times: list[float] = []
        self.ids: list[int] = []
        self.text = ""
        self.output_tokens = 0
        self.prompt_tokens = n_prompt or 0
        self.finish_reason: str | None = None

    async def chunks(self):
        stream = self.playground.generate(self.supervised, self.request)
        try:
            async for chunk in stream:
                self.times.append(chunk.t_s)
                self.ids.extend(chunk.token_ids)
                self.text += chunk.text
                self.output_tokens = chunk.num_output_tokens
                self.prompt_tokens = chunk.num_prompt_tokens or self.prompt_tokens
                if chunk.finished:
                    self.finish_reason = chunk.finish_reason or "stop"
                yield chunk
                if chunk.finished:
                    break
        finally:
            await stream.aclose()  # a disconnect lands here: the engine's request is aborted
            if self.metrics is not None:
                timing = RequestTiming(self.start_s, tuple(self.times), self.output_tokens, self.prompt_tokens)
                self.metrics.observe(self.label, timing, self.finish_reason or "abort")

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.output_tokens,
                "total_tokens": self.prompt_tokens + self.output_tokens}


async def _until_disconnect(request, work):
    """Run ``work`` (a coroutine), cancelling it if the client hangs up first (a non-streamed answer)."""
    task = asyncio.ensure_future(work)

    async def hung_up():
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled():
        return None
    return task.result()


def mount(app, playground, auth: tuple[str, str] | None = None, api_key: str | None = None, metrics=None) -> None:
    """Add /v1/models, /v1/completions, /v1/chat/completions and /metrics to the app's server."""
    from starlette.responses import JSONResponse, Response, StreamingResponse

    from playground.prom import CONTENT_TYPE, ColumnMetrics

    metrics = metrics or ColumnMetrics(playground)

    def authorized(request) -> bool:
        if auth is None and api_key is None:
            return True
        if auth is not None and _authorized(request, app, auth):
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        accepted = [k for k in (api_key, f"{auth[0]}:{auth[1]}" if auth else None) if k]
        return any(secrets.compare_digest(token.strip(), k) for k in accepted)

    def login_required() -> ApiError:
        how = "Authorization: Bearer <the --api-key-env key>" if api_key else ""
        if auth:
            how = (how + " or " if how else "") + "HTTP Basic (the page's login), or Bearer user:password"
        return ApiError(401, f"not authenticated: send {how}", None, "authentication_error")

    def column(name):
        return playground.engines[choose_model(name, [e.info.label for e in playground.engines])]

    async def models(request):
        if not authorized(request):
            return login_required().response()
        data = []
        for e in playground.engines:
            info = e.info
            data.append({"id": info.label, "object": "model", "created": 0, "owned_by": "fp8-playground",
                         "root": info.model, "parent": None, "max_model_len": info.max_model_len,
                         "settings": {"backend": info.backend, "model": info.model, "dtype": info.dtype,
                                      "quantization": info.quantization, "kv_cache_dtype": info.kv_cache_dtype,
                                      "max_model_len": info.max_model_len, "kv_tokens": info.kv_tokens,
                                      "gpu_name": info.gpu_name, "gpu_memory_utilization": info.gpu_memory_utilization,
                                      "chat_template": info.chat_template, "ready": e.ready, "stage": e.stage}})
        return JSONResponse({"object": "list", "data": data})

    async def health(request):
        return Response(status_code=200 if any(e.ready for e in playground.engines) else 503)

    async def metrics_text(request):
        if not authorized(request):
            return login_required().response()
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    def endpoint(chat: bool):
        kind = "chat.completion" if chat else "text_completion"
        prefix = "chatcmpl" if chat else "cmpl"

        async def prepare(request):
            """Everything checked before anything runs: the body, the column, the prompt's length, the queue."""
            if not authorized(request):
                raise login_required()
            body = await read_body(request)
            supervised = column(body.get("model"))
            parsed = parse_request(body, chat)
            try:
                engine = await playground.ready_engine(supervised)
            except RequestError as e:
                raise from_request_error(e) from None
            rid = f"{prefix}-{uuid.uuid4().hex}"
            if chat:
                ids = await chat_prompt_ids(engine, parsed.messages, playground.runtime, playground.tokenize)
                n_prompt = len(ids)
                gen = GenerationRequest(rid, sampling_for(parsed, engine, n_prompt), prompt_token_ids=tuple(ids))
                messages = parsed.messages
                score_args = (ids, messages[0]["content"] if len(messages) == 1 and messages[0]["role"] == "user"
                              else None, True)
            elif isinstance(parsed.prompt, tuple):
                n_prompt = len(parsed.prompt)
                gen = GenerationRequest(rid, sampling_for(parsed, engine, n_prompt), prompt_token_ids=parsed.prompt)
                score_args = (list(parsed.prompt), None, False)
            else:
                n_prompt = await playground.tokenize(engine.count_prompt_tokens, parsed.prompt, False)
                gen = GenerationRequest(rid, sampling_for(parsed, engine, n_prompt), prompt=parsed.prompt)
                score_args = (None, parsed.prompt, False)
            try:
                playground.admit()
            except RequestError as e:
                raise from_request_error(e) from None
            run = _Run(playground, supervised, gen, metrics, n_prompt)
            return body, run, engine, parsed.stream, parsed.usage, parsed.top_logprobs, score_args

        def envelope(run: _Run, choices: list, chunk: bool = False, **extra) -> dict:
            return {"id": run.request.request_id, "object": kind + (".chunk" if chat and chunk else ""),
                    "created": int(time.time()), "model": run.label, "choices": choices, **extra}

        async def whole(run: _Run, engine, top, score_args) -> dict:
            async for _ in run.chunks():
                pass
            logprobs = None
            if top is not None:
                rows = await score_logprobs(playground.runtime, engine, score_args[0], score_args[1], score_args[2], tuple(run.ids), top)
                tokenizer = tokenizer_of(engine)
                if chat:
                    logprobs = {"content": [{"token": _token_text(tokenizer, t), "logprob": lp, "bytes": None,
                                             "top_logprobs": [{"token": _token_text(tokenizer, k), "logprob": v,
                                                               "bytes": None} for k, v in best.items()]}
                                            for t, lp, best in rows]}
                else:
                    tokens = [_token_text(tokenizer, t) for t, _, _ in rows]
                    offsets = [sum(len(x) for x in tokens[:i]) for i in range(len(tokens))]
                    logprobs = {"tokens": tokens, "token_logprobs": [lp for _, lp, _ in rows],
                                "top_logprobs": [{_token_text(tokenizer, k): v for k, v in best.items()}
                                                 for _, _, best in rows], "text_offset": offsets}
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": run.text}, "logprobs": logprobs,
                          "finish_reason": run.finish_reason}
            else:
                choice = {"index": 0, "text": run.text, "logprobs": logprobs, "finish_reason": run.finish_reason}
            return envelope(run, [choice], usage=run.usage())

        async def events(run: _Run, include_usage: bool | str):
            """``include_usage``: a last chunk with usage; "every" (vLLM's continuous_usage_stats): each chunk too."""
            def data(obj) -> str:
                return f"data: {json.dumps(obj)}\n\n"

            try:
                if chat:  # OpenAI's first chunk carries the role
                    yield data(envelope(run, [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "logprobs": None, "finish_reason": None}], chunk=True))
                async for chunk in run.chunks():
                    reason = (chunk.finish_reason or "stop") if chunk.finished else None
                    if chat:
                        choice = {"index": 0, "delta": {"content": chunk.text} if chunk.text else {},
                                  "logprobs": None, "finish_reason": reason}
                    else:
                        choice = {"index": 0, "text": chunk.text, "logprobs": None, "finish_reason": reason}
                    extra = {"usage": run.usage()} if include_usage == "every" else {}
                    yield data(envelope(run, [choice], chunk=True, **extra))
                if include_usage:
                    yield data(envelope(run, [], chunk=True, usage=run.usage()))
            except RequestError as e:  # refused once running (rare: checked before): said in the stream
                err = from_request_error(e)
                yield data({"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.status}})
            except Exception as e:  # noqa: BLE001 - an engine fault ends this answer with its message, not the server
                yield data({"error": {"message": f"{type(e).__name__}: {e}", "type": "server_error", "param": None,
                                      "code": 500}})
            yield "data: [DONE]\n\n"

        async def handle(request):
            label = ""
            try:
                body, run, engine, stream, include_usage, top, score_args = await prepare(request)
                label = run.label
                if stream:
                    return StreamingResponse(events(run, include_usage), media_type="text/event-stream",
                                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
                answer = await _until_disconnect(request, whole(run, engine, top, score_args))
                if answer is None:  # the client went away; the engine's request was aborted
                    return Response(status_code=499)
                return JSONResponse(answer)
            except ApiError as e:
                metrics.error(label, e.status)
                return e.response()
            except RequestError as e:
                err = from_request_error(e)
                metrics.error(label, err.status)
                return err.response()
            except Exception as e:  # noqa: BLE001 - an engine fault: this caller's 500, the server goes on
                metrics.error(label, 500)
                return ApiError(500, f"{type(e).__name__}: {e}", None, "server_error").response()

        return handle

    app.add_route("/v1/models", models, methods=["GET"])
    app.add_route("/v1/completions", endpoint(chat=False), methods=["POST"])
    app.add_route("/v1/chat/completions", endpoint(chat=True), methods=["POST"])
    app.add_route("/metrics", metrics_text, methods=["GET"])
    app.add_route("/health", health, methods=["GET"])  # vLLM's; guidellm checks it before a run
