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

from playground.engines.base import MAX_PROMPT_CHARS, GenerationRequest, RequestError, SamplingSettings
from playground.metrics import RequestTiming
from playground.ui.http_api import _authorized

MAX_LOGPROBS = 20  # OpenAI's limit for top_logprobs, and the rows the engines' score() returns
ROLES = ("system", "user", "assistant", "tool", "developer")


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def response(self):
        from starlette.responses import JSONResponse

        headers = {"WWW-Authenticate": 'Basic realm="fp8-playground"'} if self.status == 401 else None
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": self.param,
                                       "code": self.code or self.status}}, status_code=self.status, headers=headers)


def from_request_error(e: Exception) -> ApiError:
    """A library error (RequestError names its argument) as the OpenAI error a client reads."""
    argument = getattr(e, "argument", None)
    if argument == "server":
        return ApiError(429, str(e), None, "rate_limit_error", "rate_limit_exceeded")
    if argument == "engine":
        return ApiError(503, str(e), "model", "service_unavailable")
    return ApiError(400, str(e), argument)


# ---- the request body: every field checked for its type, named in the error
_TYPES = {"number": ((int, float), "a number"), "integer": ((int,), "an integer"), "string": ((str,), "a string"),
          "boolean": ((bool,), "true or false"), "object": ((dict,), "an object")}


def field(body: dict, name: str, kind: str, default=None):
    value = body.get(name)
    if value is None:
        return default
    types, words = _TYPES[kind]
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, types) or (kind in ("number", "integer") and isinstance(value, bool)):
        raise ApiError(400, f"{name}: {value!r} is not {words}", name)
    return float(value) if kind == "number" else value


def sampling_of(body: dict, max_tokens_default: int, max_tokens_field: str = "max_tokens") -> SamplingSettings:
    """vLLM's sampling fields (vllm/entrypoints/openai/protocol.py), with its defaults."""
    n = field(body, "n", "integer", 1)
    if n != 1:
        raise ApiError(400, f"n: {n} is not supported; one request gives one answer (send {n} requests)", "n")
    if field(body, "best_of", "integer", 1) != 1:
        raise ApiError(400, "best_of: only 1 is supported", "best_of")
    if body.get("logit_bias"):
        raise ApiError(400, "logit_bias: not supported by these engines", "logit_bias")
    if field(body, "min_tokens", "integer", 0):
        raise ApiError(400, "min_tokens: not supported by these engines", "min_tokens")
    stop = body.get("stop")
    if stop is None:
        stop = ()
    elif isinstance(stop, str):
        stop = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stop = tuple(s for s in stop if s)
    else:
        raise ApiError(400, f"stop: {stop!r} is not a string or a list of strings", "stop")
    max_tokens = field(body, max_tokens_field, "integer", None)
    if max_tokens is None and max_tokens_field != "max_tokens":
        max_tokens = field(body, "max_tokens", "integer", None)  # chat: the older name is still sent
    top_k = field(body, "top_k", "integer", 0)
    seed = field(body, "seed", "integer", None)
    try:
        return SamplingSettings(
            temperature=field(body, "temperature", "number", 1.0), top_p=field(body, "top_p", "number", 1.0),
            top_k=0 if top_k == -1 else top_k, max_tokens=max_tokens_default if max_tokens is None else max_tokens,
            seed=seed, repetition_penalty=field(body, "repetition_penalty", "number", 1.0),
            presence_penalty=field(body, "presence_penalty", "number", 0.0),
            frequency_penalty=field(body, "frequency_penalty", "number", 0.0),
            stop=stop, ignore_eos=field(body, "ignore_eos", "boolean", False),
        ).validate()
    except RequestError as e:
        raise ApiError(400, str(e), max_tokens_field if e.argument == "max_tokens" else e.argument) from None


def completion_prompt(body: dict) -> str | tuple[int, ...]:
    """``prompt``: text, or token ids; a list of one of either is one prompt too."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        if not prompt:
            raise ApiError(400, "prompt: is empty", "prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ApiError(400, f"prompt: {len(prompt):,} characters is over the {MAX_PROMPT_CHARS:,} accepted", "prompt")
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
        return tuple(prompt)
    if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, (str, list)) for p in prompt):
        raise ApiError(400, f"prompt: a list of {len(prompt)} prompts; send one prompt per request", "prompt")
    if prompt is None:
        raise ApiError(400, "prompt: required (text, or a list of token ids)", "prompt")
    raise ApiError(400, f"prompt: {str(prompt)[:80]!r} is not text or a list of token ids", "prompt")


def chat_messages(body: dict) -> list[dict]:
    """``messages`` as the chat template takes them: role and text content (text parts are joined)."""
    messages = body.get("messages")
    if messages is None:
        raise ApiError(400, "messages: required (a list of {role, content})", "messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: must be a non-empty list of {role, content}", "messages")
    out, chars = [], 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(400, f"{where}: is not an object with role and content", where)
        if m.get("role") not in ROLES:
            raise ApiError(400, f"{where}.role: {m.get('role')!r} is not one of {', '.join(ROLES)}", f"{where}.role")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text reaches these text models
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
                raise ApiError(400, f"{where}.content: only text parts are accepted (these models read text)",
                               f"{where}.content")
            content = "".join(p["text"] for p in content)
        if content is None and m["role"] == "assistant":
            content = ""
        if not isinstance(content, str):
            raise ApiError(400, f"{where}.content: {content!r} is not text", f"{where}.content")
        chars += len(content)
        out.append({"role": m["role"], "content": content})
    if chars > MAX_PROMPT_CHARS:
        raise ApiError(400, f"messages: {chars:,} characters is over the {MAX_PROMPT_CHARS:,} accepted", "messages")
    return out


def _tokenizer_of(engine):
    """The engine's own tokenizer, where it runs in this process (None for a remote server)."""
    if engine.info.backend == "cpu":
        from playground.engines.smollm2 import load_tokenizer

        return load_tokenizer()
    return getattr(engine, "_tokenizer", None)


async def chat_prompt_ids(engine, messages: list[dict], runtime=None, tokenize=asyncio.to_thread) -> list[int]:
    """The conversation through the model's chat template, as token ids (as vLLM's chat endpoint does).
    ``tokenize`` runs the template off the loop (the app's: Playground.tokenize, one thread)."""
    if not engine.info.chat_template:
        raise ApiError(400, f"model: {engine.info.label} ({engine.info.model}) has no chat template; use "
                            f"/v1/completions", "model")
    tokenizer = _tokenizer_of(engine)
    if tokenizer is not None:
        ids = await tokenize(tokenizer.apply_chat_template, messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    # a remote vLLM server: its /tokenize applies its chat template to the messages (on the engines' loop,
    # where its HTTP client lives)
    answer = await runtime.acall(engine._post(engine.spec.root_url + "/tokenize", {
        "model": engine.spec.model, "messages": messages, "add_generation_prompt": True}))
    return list(answer["tokens"])


def check_length(engine, n_prompt: int | None, sampling: SamplingSettings, prompt_field: str) -> None:
    limit = engine.info.max_model_len or None
    if n_prompt is None or not limit:
        return  # a remote server checks it itself
    if n_prompt + sampling.max_tokens > limit:
        too_long = n_prompt >= limit
        raise ApiError(400, f"{prompt_field if too_long else 'max_tokens'}: the prompt has {n_prompt:,} tokens; with "
                            f"max_tokens={sampling.max_tokens:,} it exceeds {engine.info.label}'s "
                            f"max_model_len={limit:,}", prompt_field if too_long else "max_tokens")


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

    def column(name) -> object:
        labels = [e.info.label for e in playground.engines]
        if name is None:
            raise ApiError(400, f"model: required; one of {', '.join(labels)} (GET /v1/models)", "model")
        if not isinstance(name, str):
            raise ApiError(400, f"model: {name!r} is not a string", "model")
        chosen = next((e for e in playground.engines if e.info.label.lower() == name.lower()), None)
        if chosen is None:
            raise ApiError(400, f"model: {name!r} is not a column here; one of {', '.join(labels)}", "model",
                           code="model_not_found")
        return chosen

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
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ApiError(400, "the body must be a JSON object (OpenAI's request fields)", "body") from None
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object (OpenAI's request fields)", "body")
            supervised = column(body.get("model"))
            stream = field(body, "stream", "boolean", False)
            options = field(body, "stream_options", "object", {}) or {}
            if chat:
                messages = chat_messages(body)
                top = field(body, "top_logprobs", "integer", 0) if field(body, "logprobs", "boolean", False) else None
            else:
                prompt = completion_prompt(body)
                top = field(body, "logprobs", "integer", None)
                if field(body, "echo", "boolean", False):
                    raise ApiError(400, "echo: not supported; the prompt is yours already", "echo")
            if top is not None and not 0 <= top <= MAX_LOGPROBS:
                name = "top_logprobs" if chat else "logprobs"
                raise ApiError(400, f"{name}: {top} is outside [0, {MAX_LOGPROBS}]", name)
            if top is not None and stream:
                raise ApiError(400, "logprobs: returned only without stream (the engines score the answer once it "
                                    "is complete)", "logprobs")
            try:
                engine = await playground.ready_engine(supervised)
            except RequestError as e:
                raise from_request_error(e) from None
            limit = engine.info.max_model_len
            if chat:
                ids = await chat_prompt_ids(engine, messages, playground.runtime, playground.tokenize)
                n_prompt, prompt_field = len(ids), "messages"
                sampling = sampling_of(body, max(limit - n_prompt, 1) if limit else 16, "max_completion_tokens")
                gen = GenerationRequest(f"{prefix}-{uuid.uuid4().hex}", sampling, prompt_token_ids=tuple(ids))
                score_args = (ids, messages[0]["content"] if len(messages) == 1 and messages[0]["role"] == "user"
                              else None, True)
            else:
                sampling = sampling_of(body, 16)
                if isinstance(prompt, tuple):
                    n_prompt, ids = len(prompt), list(prompt)
                    gen = GenerationRequest(f"{prefix}-{uuid.uuid4().hex}", sampling, prompt_token_ids=prompt)
                else:
                    n_prompt, ids = await playground.tokenize(engine.count_prompt_tokens, prompt, False), None
                    gen = GenerationRequest(f"{prefix}-{uuid.uuid4().hex}", sampling, prompt=prompt)
                prompt_field = "prompt"
                score_args = (ids, prompt if ids is None else None, False)
            if limit and sampling.max_tokens >= limit:
                name = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
                raise ApiError(400, f"{name}: {sampling.max_tokens:,} is outside [1, {limit - 1:,}] "
                                    f"(max_model_len is {limit:,})", name)
            check_length(engine, n_prompt, sampling, prompt_field)
            try:
                playground.admit()
            except RequestError as e:
                raise from_request_error(e) from None
            run = _Run(playground, supervised, gen, metrics, n_prompt)
            usage = "every" if options.get("continuous_usage_stats") else bool(options.get("include_usage"))
            return body, run, engine, stream, usage, top, score_args

        def envelope(run: _Run, choices: list, chunk: bool = False, **extra) -> dict:
            return {"id": run.request.request_id, "object": kind + (".chunk" if chat and chunk else ""),
                    "created": int(time.time()), "model": run.label, "choices": choices, **extra}

        async def whole(run: _Run, engine, top, score_args) -> dict:
            async for _ in run.chunks():
                pass
            logprobs = None
            if top is not None:
                rows = await score_logprobs(playground.runtime, engine, score_args[0], score_args[1], score_args[2], tuple(run.ids), top)
                tokenizer = _tokenizer_of(engine)
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
