"""The app's OpenAI-compatible /v1 and /metrics, driven by clients nobody here wrote: the official
`openai` SDK, and raw HTTP shaped as `vllm bench serve` sends it, against the real CPU app.

Waits come from the engine's own speed on this machine: a calibration request first, then every
deadline is a multiple of its seconds per token (the CI machine has two slow cores)."""

import json
import re
import time
import urllib.request

import openai
import pytest

PROMPT = "Explain FP8 in one sentence."


@pytest.fixture(scope="module")
def client(cpu_app):
    return openai.OpenAI(base_url=cpu_app + "v1", api_key="unused", max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def token_s(client):
    """Seconds per generated token on this machine (a 16-token request, after a warm-up)."""
    client.completions.create(model="FP8", prompt=PROMPT, max_tokens=2, temperature=0)
    t0 = time.perf_counter()
    r = client.completions.create(model="FP8", prompt=PROMPT, max_tokens=16, temperature=0, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16
    return (time.perf_counter() - t0) / 16


def scrape(cpu_app) -> dict[str, float]:
    text = urllib.request.urlopen(cpu_app + "metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z0-9_:]+(?:\{[^}]*\})?) ([-0-9.e+]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_models_lists_the_columns_with_their_engine_settings(client):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"16-bit", "FP8"}
    assert models["FP8"].model_extra["settings"]["quantization"].startswith("fp8")
    assert models["16-bit"].model_extra["settings"]["quantization"] is None
    assert models["FP8"].model_extra["max_model_len"] == 2048


@pytest.mark.parametrize("column", ["16-bit", "FP8"])
def test_the_sdk_streams_a_completion_from_each_column(client, column):
    # ignore_eos: six tokens whatever the column's greedy answer is (a CPU twin may end at once on its own)
    chunks = list(client.completions.create(model=column, prompt=PROMPT, max_tokens=6, temperature=0, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    whole = client.completions.create(model=column, prompt=PROMPT, max_tokens=6, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert text == whole.choices[0].text, chunks  # greedy: streamed and whole agree
    assert sum(1 for c in chunks if c.choices) == 6  # one chunk per token
    usage = chunks[-1].usage
    assert usage.completion_tokens == whole.usage.completion_tokens == 6
    assert usage.prompt_tokens == whole.usage.prompt_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert whole.model == column


def test_chat_goes_through_the_chat_template_streamed_and_not(client):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]
    whole = client.chat.completions.create(model="FP8", messages=messages, max_tokens=8, temperature=0,
                                           extra_body={"ignore_eos": True})
    plain = client.completions.create(model="FP8", prompt="Say hello.", max_tokens=1, temperature=0)
    assert whole.choices[0].message.role == "assistant" and whole.usage.completion_tokens == 8
    assert whole.usage.prompt_tokens > plain.usage.prompt_tokens + 5  # the template's role markers were added
    chunks = list(client.chat.completions.create(model="FP8", messages=messages, max_tokens=8, temperature=0,
                                                 stream=True, extra_body={"ignore_eos": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def test_logprobs_are_the_models_own_and_the_greedy_token_is_the_top_one(client):
    r = client.completions.create(model="16-bit", prompt=PROMPT, max_tokens=3, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 3 and "".join(lp.tokens) == r.choices[0].text
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert value < 0 and max(top.values()) == pytest.approx(value) and len(top) == 2


@pytest.mark.parametrize("kwargs, param", [
    ({"model": "FP9"}, "model"),
    ({"temperature": "hot"}, "temperature"),
    ({"n": 2}, "n"),
    ({"max_tokens": 4096}, "max_tokens"),
    ({"prompt": "word " * 2100}, "prompt"),
    ({"stop": 5}, "stop"),
    ({"top_p": 0}, "top_p"),
])
def test_a_bad_completion_is_a_400_naming_the_field_and_the_app_goes_on(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(**({"model": "FP8", "prompt": "hi", "max_tokens": 4} | kwargs))
    assert e.value.body["param"] == param and e.value.body["type"] == "invalid_request_error"
    assert client.completions.create(model="FP8", prompt="hi", max_tokens=1).usage.completion_tokens == 1


@pytest.mark.parametrize("body, param", [
    ({"model": "FP8"}, "messages"),
    ({"model": "FP8", "messages": []}, "messages"),
    ({"model": "FP8", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"model": "FP8", "messages": [{"role": "user", "content": "word " * 2100}]}, "messages"),
])
def test_a_bad_chat_request_is_a_400_naming_the_field(cpu_app, body, param):
    status, answer = post(cpu_app + "v1/chat/completions", body)
    assert status == 400 and answer["error"]["param"] == param and answer["error"]["message"]


def post(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_raw_http_as_vllm_bench_serve_sends_it(cpu_app):
    """The payload of vllm/benchmarks/lib/endpoint_request_func.py's openai-completions request."""
    payload = {"model": "FP8", "prompt": PROMPT, "repetition_penalty": 1.0, "max_tokens": 5, "logprobs": None,
               "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    request = urllib.request.Request(cpu_app + "v1/completions", json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line.decode().strip() for line in r if line.strip()]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert sum(1 for e in events if e["choices"] and e["choices"][0]["text"]) >= 1
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 5
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_metrics_counters_move_with_requests(cpu_app, client):
    before = scrape(cpu_app)
    r = client.completions.create(model="16-bit", prompt=PROMPT, max_tokens=4, temperature=0, extra_body={"ignore_eos": True})
    after = scrape(cpu_app)
    key = '{column="16-bit"}'
    assert after["vllm:generation_tokens_total" + key] - before.get("vllm:generation_tokens_total" + key, 0) == 4
    assert after["vllm:prompt_tokens_total" + key] - before.get("vllm:prompt_tokens_total" + key, 0) == r.usage.prompt_tokens
    for name in ("time_to_first_token_seconds", "e2e_request_latency_seconds"):
        assert after[f"vllm:{name}_count{key}"] - before.get(f"vllm:{name}_count{key}", 0) == 1
    assert after[f"vllm:inter_token_latency_seconds_count{key}"] - before.get(f"vllm:inter_token_latency_seconds_count{key}", 0) == 3
    assert after['vllm:num_requests_running{column="16-bit"}'] == 0
    assert "playground:fair_queue_length" in after


def test_a_client_that_hangs_up_stops_the_request_in_the_engine(cpu_app, client, token_s):
    """Read two chunks of a long answer, hang up: the engine stops well before the answer's end."""
    max_tokens = 1000
    key = '{column="FP8"}'
    before = scrape(cpu_app).get("vllm:generation_tokens_total" + key, 0)
    stream = client.completions.create(model="FP8", prompt=PROMPT, max_tokens=max_tokens, stream=True,
                                       extra_body={"ignore_eos": True})
    for _, _ in zip(range(2), stream):
        pass
    stream.close()
    wait_s = 5 + 40 * token_s  # a cancel takes one decode step; far less than the 1000 tokens' time
    if max_tokens * token_s < 2 * wait_s:
        pytest.skip(f"this machine decodes {1 / token_s:.0f} tok/s: too fast to tell a stop from an end")
    deadline = time.perf_counter() + wait_s
    while time.perf_counter() < deadline:
        now = scrape(cpu_app)
        if now['vllm:num_requests_running' + key] == 0 and now.get("vllm:generation_tokens_total" + key, 0) > before:
            break
        time.sleep(max(token_s, 0.2))
    else:
        pytest.fail("the engine still runs the request after the client hung up")
    assert now["vllm:generation_tokens_total" + key] - before < max_tokens / 2
    assert now['vllm:request_success_total{column="FP8",finished_reason="abort"}'] >= 1


def test_a_client_that_hangs_up_on_a_whole_answer_stops_it_too(cpu_app, token_s):
    """Not streamed: the server watches the connection while the engine works, and aborts on a hang-up."""
    import socket
    from urllib.parse import urlparse

    key = '{column="16-bit"}'
    before = scrape(cpu_app).get("vllm:generation_tokens_total" + key, 0)
    body = json.dumps({"model": "16-bit", "prompt": PROMPT, "max_tokens": 1000, "ignore_eos": True}).encode()
    where = urlparse(cpu_app)
    sock = socket.create_connection((where.hostname, where.port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    deadline = time.perf_counter() + 30 + 20 * token_s
    while scrape(cpu_app)['vllm:num_requests_running' + key] == 0:  # until the engine runs it
        assert time.perf_counter() < deadline, "the request never started"
        time.sleep(0.2)
    sock.close()
    wait_s = 5 + 40 * token_s
    if 1000 * token_s < 2 * wait_s:
        pytest.skip(f"this machine decodes {1 / token_s:.0f} tok/s: too fast to tell a stop from an end")
    deadline = time.perf_counter() + wait_s
    while scrape(cpu_app)['vllm:num_requests_running' + key] != 0:
        assert time.perf_counter() < deadline, "the engine still runs the request after the client hung up"
        time.sleep(max(token_s, 0.2))
    assert scrape(cpu_app)["vllm:generation_tokens_total" + key] - before < 500
