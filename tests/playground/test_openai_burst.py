"""A burst on /v1: requests that arrive together tokenize one at a time, so an engine's shared tokenizer
(vLLM's pool of two copies) is never copied, and every request streams its answer."""

import asyncio
import time

import httpx
from starlette.applications import Starlette

from playground.runtime import EngineRuntime, SupervisedEngine
from playground.service import Playground
from playground.ui import openai_api
from tests.helpers.step_engine import StepClockEngine, TokenizerPool


class WordTokenizer:
    """A word is a token; each call takes a moment without the GIL, as a tokenizer preempted mid-call
    does, so that calls from several threads overlap when they are allowed to."""

    def encode(self, text):
        time.sleep(0.02)
        return list(range(len(text.split())))


def burst(n: int, tmp_path, body: dict) -> tuple[list[httpx.Response], StepClockEngine]:
    pool = TokenizerPool(WordTokenizer())
    column = SupervisedEngine(lambda: StepClockEngine("FP8", step_s=0.002, tokenizer=pool))
    playground = Playground([column], EngineRuntime(), tmp_path, "test")
    playground.runtime.call(column.start())
    app = Starlette()
    openai_api.mount(app, playground)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app",
                                     timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(n)))

    return asyncio.run(go()), column.engine


def test_a_burst_of_completions_never_copies_the_engines_tokenizer(tmp_path):
    body = {"model": "FP8", "prompt": "Explain FP8 in one sentence.", "max_tokens": 8, "stream": True,
            "stream_options": {"include_usage": True}}
    answers, engine = burst(8, tmp_path, body)
    assert [a.status_code for a in answers] == [200] * 8
    for a in answers:
        assert '"completion_tokens": 8' in a.text and a.text.rstrip().endswith("data: [DONE]")
    pool = engine._tokenizer
    # the engine loop's own tokenizing (in stream) and the web's one thread: never more than the pool's two
    assert pool.max_borrowed <= 2 and pool.copies_made == 0
