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
