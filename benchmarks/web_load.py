"""Drive the running app through its public API with bursts of concurrent users, and set the web
path beside the same workload run directly on the engines (the app's /direct_load, started with
--load-test).

    ./run.sh app --backend vllm --model DIR --load-format dummy --load-test &
    python benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 1,16,64,256 --api generate,compare

Each user is one asyncio task with its own Gradio call over one shared httpx client (no per-request
process or thread): POST /gradio_api/call/<api>, then read the SSE answer (or, with --protocol http,
one POST /api/v1/<api> answered as SSE; with --protocol openai, /generate's request as one streamed
POST /v1/chat/completions, or /v1/completions for a model without a chat template). The script prints its
own CPU use per point: well under one core means the generator is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.load import APIS, LoadResult, summarize_load  # noqa: E402

DEFAULT_PROMPT = "Explain how a GPU executes a matrix multiplication, step by step."


def payload(api: str, prompt: str, max_tokens: int, engine: str) -> list:
    """The positional data of /generate and /compare (playground/ui/api.py), temperature 0."""
    if api == "generate":
        return [prompt, engine, 0.0, max_tokens, 0, True]
    return [prompt, 0.0, 1.0, 0, max_tokens, 0, 1.0, 0.0, 0.0, "", "fair", True]


async def call(client, url: str, api: str, data: list, timeout_s: float) -> dict:
    """One Gradio API call over HTTP: the event id, then the SSE stream until 'complete' or 'error'."""
    r = await client.post(f"{url}gradio_api/call/{api}", json={"data": data})
    r.raise_for_status()
    event_id = r.json()["event_id"]
    async with client.stream("GET", f"{url}gradio_api/call/{api}/{event_id}", timeout=timeout_s) as stream:
        event, body = await final_event(stream)
    if event == "error":
        raise RuntimeError(body if body != "null" else "the app returned an error")
    return json.loads(body)[0]


async def final_event(stream) -> tuple[str, str]:
    """Read Server-Sent Events until 'complete' or 'error': that event's name and its data."""
    event = None
    async for line in stream.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            return event, line[5:].strip()
    raise RuntimeError("the stream ended without a result")


def named_payload(api: str, prompt: str, max_tokens: int, engine: str) -> dict:
    """The same request for the plain streaming API (/api/v1/<api>: arguments by name)."""
    if api == "generate":
        return {"prompt": prompt, "engine": engine, "temperature": 0.0, "max_tokens": max_tokens, "seed": 0,
                "chat_template": True}
    return {"prompts": prompt, "temperature": 0.0, "max_tokens": max_tokens, "seed": 0, "mode": "fair",
            "chat_template": True}


async def call_http(client, url: str, api: str, body: dict, timeout_s: float) -> dict:
    """One request to the plain streaming API: POST /api/v1/<api>, read its SSE until 'complete' or 'error'."""
    async with client.stream("POST", f"{url}api/v1/{api}", json=body, timeout=timeout_s) as stream:
        if stream.status_code >= 400:
            raise RuntimeError(f"{stream.status_code}: {(await stream.aread()).decode()[:300]}")
        event, data = await final_event(stream)
    answer = json.loads(data)
    if event == "error":
        raise RuntimeError(answer.get("error") or "the app returned an error")
    return answer


_CHAT: dict[tuple[str, str], bool] = {}  # (url, column) -> whether it has a chat template (GET /v1/models)


async def call_openai(client, url: str, prompt: str, max_tokens: int, engine: str, timeout_s: float) -> dict:
    """/generate's request through the OpenAI-compatible endpoint, streamed, usage in the last chunk:
    /v1/chat/completions where the column's model has a chat template (as /generate applies it),
    else /v1/completions with the prompt as it is (as /generate sends it then)."""
    if (url, engine) not in _CHAT:
        r = await client.get(f"{url}v1/models")
        r.raise_for_status()
        models = {m["id"]: m for m in r.json()["data"]}
        if engine not in models:
            raise RuntimeError(f"--engine {engine!r} is not a column; the app's: {', '.join(models)}")
        _CHAT[(url, engine)] = bool(models[engine]["settings"]["chat_template"])
    chat = _CHAT[(url, engine)]
    body = {"model": engine, "max_tokens": max_tokens, "temperature": 0.0, "seed": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    body |= {"messages": [{"role": "user", "content": prompt}]} if chat else {"prompt": prompt}
    usage = None
    path = "v1/chat/completions" if chat else "v1/completions"
    async with client.stream("POST", f"{url}{path}", json=body, timeout=timeout_s) as stream:
        if stream.status_code >= 400:
            raise RuntimeError(f"{stream.status_code}: {(await stream.aread()).decode()[:300]}")
        async for line in stream.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            usage = chunk.get("usage") or usage
    if usage is None:
        raise RuntimeError("the stream ended without usage")
    return {"output_tokens": usage["completion_tokens"]}


def output_tokens(api: str, result: dict) -> int:
    if api == "generate":
        if result.get("error"):
            raise RuntimeError(result["error"])
        return int(result["output_tokens"])
    errors = [c["error"] for c in result["columns"] if c.get("error")]
    if errors:
        raise RuntimeError(errors[0])
    return sum(int(c["output_tokens"]) for c in result["columns"])


async def burst(client, url: str, api: str, users: int, prompt: str, max_tokens: int, engine: str,
                timeout_s: float, protocol: str = "gradio") -> tuple[list[float], list[int], list[str], float, float, float]:
    """``users`` requests at once: latencies and output tokens of the completed ones, the errors, the
    burst's start and end (wall clock) and this process's CPU seconds meanwhile."""
    async def one():
        t0 = time.perf_counter()
        if protocol == "openai":
            result = await call_openai(client, url, prompt, max_tokens, engine, timeout_s)
        elif protocol == "http":
            result = await call_http(client, url, api, named_payload(api, prompt, max_tokens, engine), timeout_s)
        else:
            result = await call(client, url, api, payload(api, prompt, max_tokens, engine), timeout_s)
        return time.perf_counter() - t0, output_tokens(api, result)

    cpu0, t0 = time.process_time(), time.time()
    outcomes = await asyncio.gather(*(one() for _ in range(users)), return_exceptions=True)
    t1, cpu = time.time(), time.process_time() - cpu0
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    return ([d[0] for d in done], [d[1] for d in done],
            [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)], t0, t1, cpu)


async def web_point(client, url: str, api: str, users: int, prompt: str, max_tokens: int, engine: str,
                    timeout_s: float, protocol: str = "gradio") -> tuple[LoadResult, float]:
    latencies, tokens, errors, t0, t1, cpu = await burst(client, url, api, users, prompt, max_tokens, engine, timeout_s,
                                                         protocol)
    return summarize_load(api, users, latencies, tokens, errors, t1 - t0), cpu / (t1 - t0)


def _worker(args: tuple) -> tuple[list[float], list[int], list[str], float, float, float]:
    """One load-generator process: its share of the users, started at the shared moment ``start_at``."""
    url, api, users, prompt, max_tokens, engine, timeout_s, start_at, protocol = args

    async def go():
        import httpx

        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=2.0)
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10), limits=limits) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            return await burst(client, url, api, users, prompt, max_tokens, engine, timeout_s, protocol)

    return asyncio.run(go())


def multi_process_point(url: str, api: str, users: int, prompt: str, max_tokens: int, engine: str, timeout_s: float,
                        processes: int, protocol: str = "gradio") -> tuple[LoadResult, float]:
    """The same burst from several generator processes (one Python process tops out near 200 users)."""
    from concurrent.futures import ProcessPoolExecutor

    shares = [users // processes + (1 if i < users % processes else 0) for i in range(processes)]
    start_at = time.time() + 2.0
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(_worker, [(url, api, n, prompt, max_tokens, engine, timeout_s, start_at, protocol)
                                        for n in shares if n]))
    wall = max(p[4] for p in parts) - min(p[3] for p in parts)
    result = summarize_load(api, users, [x for p in parts for x in p[0]], [x for p in parts for x in p[1]],
                            [x for p in parts for x in p[2]], wall)
    return result, max(p[5] for p in parts) / wall  # the busiest generator's share of one core


async def direct_point(client, url: str, api: str, users: int, prompt: str, max_tokens: int, engine: str,
                       timeout_s: float) -> LoadResult:
    d = await call(client, url, "direct_load", [api, users, prompt, max_tokens, engine], timeout_s)
    return LoadResult(**{k: d[k] for k in LoadResult.__dataclass_fields__})


async def login(client, url: str, auth: str | None) -> None:
    if auth:
        user, _, password = auth.partition(":")
        r = await client.post(f"{url}login", data={"username": user, "password": password})
        if r.status_code >= 400:
            raise SystemExit(f"error: --auth: the app refused the login ({r.status_code})")


async def main_async(args) -> list[dict]:
    import httpx

    url = args.url if args.url.endswith("/") else args.url + "/"
    rows = []
    # idle connections are dropped before uvicorn's 5 s keep-alive ends: reusing one the server is
    # closing fails with "Server disconnected without sending a response"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(args.timeout, connect=10), limits=limits) as client:
        await login(client, url, args.auth)
        # one small request per API first, untimed: the first call pays for lazy imports and graph warm-up
        for api in args.api:
            await web_point(client, url, api, 1, args.prompt, 4, args.engine, args.timeout, args.protocol)
        print(f"{'api':<9} {'users':>5} {'web tok/s':>10} {'direct tok/s':>12} {'web/direct':>10} {'p50 s':>7} "
              f"{'p99 s':>7} {'direct p50':>10} {'errors':>6} {'gen CPU':>7}", flush=True)
        for api in args.api:
            for users in args.users:
                if args.processes > 1:
                    web, cpu_share = await asyncio.to_thread(multi_process_point, url, api, users, args.prompt,
                                                             args.max_tokens, args.engine, args.timeout, args.processes,
                                                             args.protocol)
                else:
                    web, cpu_share = await web_point(client, url, api, users, args.prompt, args.max_tokens,
                                                     args.engine, args.timeout, args.protocol)
                direct = None if args.no_direct else await direct_point(client, url, api, users, args.prompt,
                                                                         args.max_tokens, args.engine, args.timeout)
                ratio = web.output_tok_s / direct.output_tok_s if direct and direct.output_tok_s else None
                f = lambda v, w, d=2: f"{v:>{w}.{d}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
                print(f"{api:<9} {users:>5} {web.output_tok_s:>10.1f} {f(direct and direct.output_tok_s, 12, 1)} "
                      f"{f(ratio, 10)} {f(web.latency_p50_s, 7)} {f(web.latency_p99_s, 7)} "
                      f"{f(direct and direct.latency_p50_s, 10)} {web.errors:>6} {100 * cpu_share:>6.0f}%", flush=True)
                if web.first_error:
                    print(f"  first error: {web.first_error}", flush=True)
                rows.append({"protocol": args.protocol, "web": web.as_dict(), "direct": direct.as_dict() if direct else None,
                             "web_over_direct": ratio, "generator_cpu_share": cpu_share})
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:7860/")
    p.add_argument("--users", default="1,16,64,256", type=lambda t: [int(x) for x in t.split(",") if x.strip()],
                   help="burst sizes: this many users send one request each at once")
    p.add_argument("--api", default="generate,compare", type=lambda t: [x.strip() for x in t.split(",") if x.strip()],
                   help=f"from {', '.join(APIS)}")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--engine", default="FP8", help="/generate: which engine")
    p.add_argument("--no-direct", action="store_true", help="skip the direct figures (an app without --load-test)")
    p.add_argument("--auth", default=None, help="user:password when the app runs with --auth")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--protocol", choices=("gradio", "http", "openai"), default="gradio",
                   help="gradio: the Gradio API (/gradio_api/call/<api>, POST then SSE); http: the plain streaming "
                        "API (POST /api/v1/<api>, one request answered as SSE); openai: /v1/chat/completions, or "
                        "/v1/completions where the model has no chat template (--api generate only)")
    p.add_argument("--processes", type=int, default=1,
                   help="split each burst over this many generator processes (gen CPU: the busiest one's share)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    bad = [a for a in args.api if a not in APIS]
    if args.protocol == "openai" and args.api != ["generate"]:
        print("error: --protocol openai has no side-by-side request: use --api generate", file=sys.stderr)
        return 2
    if bad or not args.users or min(args.users) < 1:
        print(f"error: --api must be from {', '.join(APIS)} and --users positive whole numbers", file=sys.stderr)
        return 2
    rows = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
