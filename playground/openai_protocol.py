"""An OpenAI request body checked field by field, and the OpenAI error a client reads.

One implementation for both OpenAI servers of this project: the app's /v1 (playground/ui/openai_api.py)
and the one-engine server (playground/openai_server.py, ``python -m playground.serve --backend cpu``).
Every refusal is a 400 in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with
``param`` naming the field; a full server is a 429. The fields are vLLM's (its OpenAI protocol.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from playground.engines.base import MAX_PROMPT_CHARS, RequestError, SamplingSettings

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


def tokenizer_of(engine):
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
    tokenizer = tokenizer_of(engine)
    if tokenizer is not None:
        ids = await tokenize(tokenizer.apply_chat_template, messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    # a remote vLLM server: its /tokenize applies its chat template to the messages (on the engines' loop,
    # where its HTTP client lives)
    answer = await runtime.acall(engine._post(engine.spec.root_url + "/tokenize", {
        "model": engine.spec.model, "messages": messages, "add_generation_prompt": True}))
    return list(answer["tokens"])


def check_length(engine, n_prompt: int | None, sampling: SamplingSettings, prompt_field: str,
                 max_tokens_field: str = "max_tokens") -> None:
    limit = engine.info.max_model_len or None
    if n_prompt is None or not limit:
        return  # a remote server checks it itself
    if n_prompt + sampling.max_tokens > limit:
        name = prompt_field if n_prompt >= limit else max_tokens_field
        raise ApiError(400, f"{name}: the prompt has {n_prompt:,} tokens; with {max_tokens_field}="
                            f"{sampling.max_tokens:,} it exceeds {engine.info.label}'s max_model_len={limit:,}", name)


# ---- the whole request: what both servers check before anything runs
async def read_body(request) -> dict:
    """The request's JSON object (a Starlette request)."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body must be a JSON object (OpenAI's request fields)", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (OpenAI's request fields)", "body")
    return body


def choose_model(name, models: list[str], default: str | None = None) -> int:
    """The index of the model ``name`` asks for (case aside); ``default`` where ``model`` may be left out."""
    name = default if name is None else name
    if name is None:
        raise ApiError(400, f"model: required; one of {', '.join(models)} (GET /v1/models)", "model")
    if not isinstance(name, str):
        raise ApiError(400, f"model: {name!r} is not a string", "model")
    for i, model in enumerate(models):
        if model.lower() == name.lower():
            return i
    raise ApiError(400, f"model: {name!r} is not served here; one of {', '.join(models)} (GET /v1/models)", "model",
                   code="model_not_found")


@dataclass(frozen=True)
class OpenAiRequest:
    """A /v1/completions or /v1/chat/completions body whose fields passed their checks."""

    body: dict
    chat: bool
    stream: bool
    usage: bool | str  # stream_options: include_usage (True), vLLM's continuous_usage_stats ("every")
    top_logprobs: int | None  # logprobs asked for (chat: top_logprobs), None when not
    messages: list[dict] | None = None  # chat
    prompt: str | tuple[int, ...] | None = None  # completions

    @property
    def prompt_field(self) -> str:
        return "messages" if self.chat else "prompt"


def parse_request(body: dict, chat: bool) -> OpenAiRequest:
    """Every field that does not need the engine, checked for its type and range."""
    stream = field(body, "stream", "boolean", False)
    options = field(body, "stream_options", "object", {}) or {}
    messages = prompt = None
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
    usage = "every" if options.get("continuous_usage_stats") else bool(options.get("include_usage"))
    return OpenAiRequest(body, chat, stream, usage, top, messages, prompt)


def sampling_for(request: OpenAiRequest, engine, n_prompt: int | None) -> SamplingSettings:
    """The sampling fields, with max_tokens checked against the engine's max_model_len and the prompt's
    length (``n_prompt`` tokens; None where a remote server counts them itself)."""
    limit = engine.info.max_model_len
    if request.chat:
        sampling = sampling_of(request.body, max(limit - n_prompt, 1) if limit else 16, "max_completion_tokens")
    else:
        sampling = sampling_of(request.body, 16)
    name = "max_completion_tokens" if request.chat and "max_completion_tokens" in request.body else "max_tokens"
    if limit and sampling.max_tokens >= limit:
        raise ApiError(400, f"{name}: {sampling.max_tokens:,} is outside [1, {limit - 1:,}] "
                            f"(max_model_len is {limit:,})", name)
    if isinstance(request.prompt, tuple):
        check_token_ids(engine, request.prompt)
    check_length(engine, n_prompt, sampling, request.prompt_field, name)
    return sampling


def check_token_ids(engine, ids: tuple[int, ...]) -> None:
    """A token-id prompt's ids within the engine's vocabulary (a remote server checks its own)."""
    tokenizer = tokenizer_of(engine)
    if tokenizer is not None and ids and max(ids) >= len(tokenizer):
        raise ApiError(400, f"prompt: token id {max(ids):,} is outside [0, {len(tokenizer) - 1:,}] "
                            f"({engine.info.label}'s vocabulary)", "prompt")
