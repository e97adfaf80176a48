"""The plain streaming API's adapter on its own: a Starlette app, a stand-in service, no engines.
(The same routes on the real app, with real engines, are tested in tests/test_app.py.)"""

import json

import pytest

from starlette.applications import Starlette
from starlette.testclient import TestClient

from playground.engines.base import RequestError
from playground.ui import http_api


class FaultyService:
    """A service whose engine fails, at once or (``after_s``) after streaming one partial answer."""

    def __init__(self, after_s: float | None = None):
        self.after_s = after_s

    def find(self, label):
        if label != "FP8":
            raise RequestError("engine", f"{label!r} is not running")
        return object()

    async def compare(self, *args, **kwargs):
        import asyncio
        import time

        from playground.compare import ColumnSnapshot
        from playground.metrics import RequestTiming

        if self.after_s is not None:
            await asyncio.sleep(self.after_s)  # past the API's 0.5 s between partial answers
            now = time.perf_counter()
            yield (ColumnSnapshot("FP8", ("Hel",), ((1, 2),), (RequestTiming(now - 0.1, (now - 0.05, now), 2, 3),),
                                  False, "streaming"),)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def _client(service, auth=None):
    app = Starlette()
    http_api.mount(app, service, auth)
    return TestClient(app)


def test_an_engine_fault_is_that_callers_error_and_the_server_goes_on():
    client = _client(FaultyService())
    r = client.post("/api/v1/generate", json={"prompt": "hi", "engine": "FP8"})
    assert r.status_code == 500 and "illegal memory access" in r.json()["error"]
    r = client.post("/api/v1/generate", json={"prompt": "hi", "engine": "FP9"})
    assert r.status_code == 400 and r.json()["argument"] == "engine"  # the next request is served


def test_a_fault_mid_stream_ends_the_answer_with_an_error_event():
    client = _client(FaultyService(after_s=0.6))
    with client.stream("POST", "/api/v1/generate", json={"prompt": "hi", "engine": "FP8"}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert lines[0] == "event: partial" and json.loads(lines[1][5:])["texts"] == ["Hel"]
    assert lines[2] == "event: error" and "illegal memory access" in json.loads(lines[3][5:])["error"]


def test_basic_credentials_are_checked_against_the_apps_login():
    client = _client(FaultyService(), auth=("me", "secret"))
    assert client.post("/api/v1/generate", json={"prompt": "hi"}).status_code == 401
    assert client.post("/api/v1/generate", json={"prompt": "hi"}, auth=("me", "nope")).status_code == 401
    r = client.post("/api/v1/generate", json={"prompt": "hi", "engine": "FP9"}, auth=("me", "secret"))
    assert r.status_code == 400 and json.loads(r.text)["argument"] == "engine"
    bad = client.post("/api/v1/generate", json={"prompt": "hi"}, headers={"Authorization": "Basic %%%"})
    assert bad.status_code == 401


@pytest.mark.parametrize("body, argument, message", [
    ('{"prompt": "hi", "engine": "FP8", "max_tokens": 1e400}', "max_tokens", "max_tokens: inf is not a finite number"),
    ('{"prompt": "hi", "max_tokens": 1e300}', "max_tokens", "max_tokens: 1e+300 is too large"),
    ('{"prompt": "hi", "max_tokens": 2.5}', "max_tokens", "max_tokens: 2.5 is not an integer"),
    ('{"prompt": "hi", "max_tokens": "lots"}', "max_tokens", "max_tokens: 'lots' is not a number"),
    ('{"prompt": "hi", "seed": true}', "seed", "seed: True is not a number"),
    ('{"prompt": "hi", "temperature": NaN}', "temperature", "temperature: nan is not a finite number"),
    ('{"engine": "FP8"}', "prompt", "prompt: required"),
    ('{"prompt": ["a", "b"]}', "prompt", "prompt: must be a string"),
    ('{"prompt": 7}', "prompt", "prompt: must be a string"),
])
def test_bad_input_on_the_plain_api_is_a_400_naming_the_argument(body, argument, message):
    r = _client(FaultyService()).post("/api/v1/generate", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["argument"] == argument and r.json()["error"].startswith(message), r.text


def test_compare_without_prompts_says_which_argument_is_missing():
    r = _client(FaultyService()).post("/api/v1/compare", json={"max_tokens": 8})
    assert r.status_code == 400 and r.json() == {"error": "prompts: required", "argument": "prompts"}


def test_a_whole_float_is_an_integer_but_a_fraction_is_not():
    from playground.ui.inputs import number

    assert number("max_tokens", 64.0, int) == 64 and number("max_tokens", "64", int) == 64
    with pytest.raises(RequestError, match="max_tokens: 64.5 is not an integer"):
        number("max_tokens", 64.5, int)
