"""playground/openai_server.py (the CPU engine behind the OpenAI protocol) as the `openai` SDK and
guidellm's defaults use it: chat completions and full usage, streamed and not."""

import openai
import pytest
from starlette.testclient import TestClient

from playground.engines.cpu_engine import CpuEngine
from playground.openai_server import build_app

NAME = "smollm2-135m-instruct-fp8"


@pytest.fixture(scope="module")
def sdk():
    with TestClient(build_app(CpuEngine("FP8", fp8=True), NAME)) as http:  # the lifespan starts the engine
        yield openai.OpenAI(base_url="http://testserver/v1", api_key="-", http_client=http, max_retries=0)


def test_chat_completions_answer_with_full_usage(sdk):
    r = sdk.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Say hi"}], max_tokens=5,
                                    temperature=0, extra_body={"ignore_eos": True})
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant" and r.usage.completion_tokens == 5
    assert r.usage.prompt_tokens > 5 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_chat_ends_with_usage_when_asked(sdk):
    chunks = list(sdk.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Say hi"}],
                                              max_tokens=5, temperature=0, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and 1 <= chunks[-1].usage.completion_tokens <= 5
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    whole = sdk.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Say hi"}], max_tokens=5,
                                        temperature=0)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content


def test_completions_usage_counts_the_prompt(sdk):
    r = sdk.completions.create(model=NAME, prompt="FP8 is", max_tokens=3, temperature=0)
    assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 3 and r.usage.total_tokens == 6


def test_a_chat_request_without_messages_is_a_400_naming_the_field(sdk):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(model=NAME, messages=None, max_tokens=3)
    assert e.value.body["param"] == "messages"


@pytest.mark.parametrize("fields, param, words", [
    ({"max_tokens": 2.5}, "max_tokens", "is not an integer"),
    ({"max_tokens": "many"}, "max_tokens", "is not an integer"),
    ({"max_tokens": 5000}, "max_tokens", "max_model_len is 2,048"),
    ({"temperature": "hot"}, "temperature", "is not a number"),
    ({"temperature": -1}, "temperature", "outside"),
])
def test_a_bad_sampling_field_is_a_400_naming_it_as_the_apps_v1_does(sdk, fields, param, words):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model=NAME, prompt="FP8 is", extra_body=fields)
    assert e.value.body["param"] == param and words in e.value.body["message"], e.value.body


def test_a_completion_without_a_prompt_is_a_400_naming_prompt(sdk):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model=NAME, prompt=None, max_tokens=3)
    assert e.value.body["param"] == "prompt" and "required" in e.value.body["message"]


def test_an_unknown_model_is_a_400_naming_model_and_the_one_served(sdk):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model="gpt-4", prompt="FP8 is", max_tokens=3)
    assert e.value.body["param"] == "model" and NAME in e.value.body["message"]
    assert sdk.completions.create(model=NAME, prompt="FP8 is", max_tokens=2, temperature=0).usage.completion_tokens == 2


class _Idle:
    """An engine that is never asked to answer: enough for a server that refuses every request."""

    info = CpuEngine("FP8", fp8=True).info

    async def start(self):
        pass

    async def stop(self):
        pass

    def count_prompt_tokens(self, prompt, chat=False):
        return len(prompt.split())


def test_a_full_server_answers_429_with_a_clear_message():
    with TestClient(build_app(_Idle(), NAME, max_in_flight=0)) as http:
        r = http.post("/v1/completions", json={"model": NAME, "prompt": "FP8 is", "max_tokens": 2})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    assert "busy" in r.json()["error"]["message"]


def test_metrics_are_prometheus_text_the_openai_backend_reads():
    from playground.engines.openai_engine import cache_facts, parse_metrics

    with TestClient(build_app(_Idle(), NAME)) as http:
        r = http.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain") and "# HELP vllm:num_requests_running" in r.text
    metrics = parse_metrics(r.text)
    assert metrics["vllm:num_requests_running"] == [({"engine": "0", "model_name": NAME}, 0.0)]
    assert cache_facts(metrics) == {"kv_cache_dtype": _Idle.info.kv_cache_dtype}


@pytest.mark.parametrize("fields, param, words", [
    ({"prompt": [1, 2, 10**7]}, "prompt", "outside [0, "),  # past the vocabulary: not an IndexError in the engine
    ({"prompt": [1, 2, 3], "prompt_logprobs": -1}, "prompt_logprobs", "outside [0, 20]"),
    ({"prompt": [1, 2, 3], "prompt_logprobs": 10**6}, "prompt_logprobs", "outside [0, 20]"),
])
def test_a_token_id_prompt_out_of_range_is_a_400_not_a_500(sdk, fields, param, words):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model=NAME, max_tokens=2, **{"prompt": fields.pop("prompt")}, extra_body=fields)
    assert e.value.body["param"] == param and words in e.value.body["message"], e.value.body


def test_tokenize_refuses_a_malformed_body_with_a_400():
    with TestClient(build_app(CpuEngine("FP8", fp8=True), NAME)) as http:
        assert http.post("/tokenize", content=b"{not json").status_code == 400
        bad = http.post("/tokenize", json={"messages": [{"content": 3}]})
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["param"]
        good = http.post("/tokenize", json={"prompt": "FP8 is"})
        assert good.status_code == 200 and good.json()["count"] == 3


class _OneChunkAtATime(_Idle):
    """An engine whose every answer streams forever until closed; it records the requests it was told to abort."""

    def __init__(self):
        self.closed = []

    def stream(self, req):
        from types import SimpleNamespace

        async def chunks():
            try:
                while True:
                    yield SimpleNamespace(text="x", token_ids=(1,), num_output_tokens=1, num_prompt_tokens=2,
                                          finished=False, finish_reason=None)
            finally:
                self.closed.append(req.request_id)

        return chunks()


def test_a_client_that_hangs_up_before_its_stream_starts_gives_its_slot_back():
    """One slot: a streamed request whose client is gone before the first byte (the send fails) must leave the
    slot free and abort the engine's request, or every later caller gets a 429."""
    import asyncio
    import json

    engine = _OneChunkAtATime()
    app = build_app(engine, NAME, max_in_flight=1)
    body = json.dumps({"model": NAME, "prompt": "FP8 is", "max_tokens": 4, "stream": True}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        raise OSError("the client went away")

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
             "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
             "server": ("testserver", 80), "client": ("client", 1)}
    with pytest.raises(Exception):
        asyncio.run(app(scope, receive, send))
    assert len(engine.closed) == 1  # the engine's request was aborted
    with TestClient(app) as http:  # and the one slot is free again: a stream, not a 429
        with http.stream("POST", "/v1/completions", json={"model": NAME, "prompt": "FP8 is", "max_tokens": 4,
                                                           "stream": True}) as r:
            assert r.status_code == 200
            assert next(r.iter_lines()).startswith("data: ")
