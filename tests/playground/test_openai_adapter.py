"""The /v1 adapter on its own: a Starlette app, the real Playground service over stand-in engines
that count words (no model), so login, back-pressure and the fair queue are tested without waiting
for a CPU model. (The real app with real engines: test_openai_api.py.)"""

import asyncio
import base64
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from playground.engines.base import EngineInfo, StreamChunk
from playground.runtime import EngineRuntime, SupervisedEngine
from playground.service import Playground
from playground.ui import openai_api


class WordEngine:
    """Answers 'w1 w2 ...' one word per token; the prompt's words are its tokens."""

    def __init__(self, label: str):
        self.info = EngineInfo(backend="test", label=label, model="words", dtype="none", quantization=None,
                               kv_cache_dtype="none", max_model_len=64)
        self.num_running = 0

    async def start(self):
        pass

    def count_prompt_tokens(self, prompt, chat=False):
        return len(prompt.split())

    async def stream(self, request):
        n_prompt = len(request.prompt_token_ids or request.prompt.split())
        self.num_running += 1
        try:
            for i in range(request.sampling.max_tokens):
                await asyncio.sleep(0.001)
                last = i + 1 == request.sampling.max_tokens
                yield StreamChunk(f" w{i + 1}", i + 1, (i,), time.perf_counter(), n_prompt, last, "length" if last else None)
        finally:
            self.num_running -= 1


@pytest.fixture
def service(tmp_path):
    engines = [SupervisedEngine(lambda: WordEngine("16-bit")), SupervisedEngine(lambda: WordEngine("FP8"))]
    playground = Playground(engines, EngineRuntime(), tmp_path, "test")
    for e in engines:
        playground.runtime.call(e.start())
    return playground


def client_for(playground, auth=None, api_key=None) -> TestClient:
    app = Starlette()
    openai_api.mount(app, playground, auth, api_key)
    return TestClient(app)


def test_an_api_key_is_asked_for_as_a_bearer_token(service):
    c = client_for(service, api_key="k3y")
    body = {"model": "FP8", "prompt": "a b", "max_tokens": 2}
    r = c.post("/v1/completions", json=body)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert c.post("/v1/completions", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = c.post("/v1/completions", json=body, headers={"Authorization": "Bearer k3y"})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == " w1 w2"
    assert c.get("/metrics").status_code == 401 and c.get("/v1/models").status_code == 401


def test_the_pages_login_opens_the_api_as_basic_or_as_bearer_user_password(service):
    c = client_for(service, auth=("me", "secret"))
    assert c.get("/v1/models", auth=("me", "wrong")).status_code == 401
    assert [m["id"] for m in c.get("/v1/models", auth=("me", "secret")).json()["data"]] == ["16-bit", "FP8"]
    assert c.get("/metrics", headers={"Authorization": "Bearer me:secret"}).status_code == 200
    basic = base64.b64encode(b"me:secret").decode()
    assert c.get("/metrics", headers={"Authorization": f"Basic {basic}"}).text.count("vllm:num_requests_running{") == 2


def test_a_full_server_answers_429_with_a_clear_message(service):
    service.max_in_flight = 0
    r = client_for(service).post("/v1/completions", json={"model": "FP8", "prompt": "a", "max_tokens": 2})
    assert r.status_code == 429 and "busy" in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_chat_on_a_model_without_a_chat_template_is_a_400_on_model(service):
    r = client_for(service).post("/v1/chat/completions",
                                 json={"model": "FP8", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and "chat template" in r.json()["error"]["message"]


def test_a_prompt_plus_max_tokens_past_max_model_len_names_max_tokens(service):
    r = client_for(service).post("/v1/completions", json={"model": "FP8", "prompt": "a " * 20, "max_tokens": 50})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens" and "max_model_len=64" in r.text


def test_a_request_waits_for_its_columns_turn_while_a_fair_comparison_holds_the_other(service):
    """The fair queue applies: FP8's request waits while 16-bit's phase is held, and /metrics shows it."""
    c = client_for(service)
    held, release = threading.Event(), asyncio.Event()
    loop = service.runtime.loop

    async def hold_16bit_phase():
        async with service.phases.turn(0):
            held.set()
            await release.wait()

    holder = asyncio.run_coroutine_threadsafe(hold_16bit_phase(), loop)
    held.wait(5)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(
        c.post("/v1/completions", json={"model": "FP8", "prompt": "a", "max_tokens": 3})))
    worker.start()
    deadline = time.time() + 10
    while time.time() < deadline and not service.phases.waiting[1]:
        time.sleep(0.01)
    text = c.get("/metrics").text
    assert 'vllm:num_requests_waiting{column="FP8"} 1.0' in text and "playground:fair_queue_length 1.0" in text
    assert not answers  # still waiting for its turn
    loop.call_soon_threadsafe(release.set)
    holder.result(5)
    worker.join(10)
    assert answers[0].status_code == 200 and answers[0].json()["usage"] == {
        "prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
