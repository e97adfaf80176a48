"""An engine that is a running OpenAI-compatible server (`vllm serve`, or `python -m playground.serve`).

The prompt is tokenized by the server (`/tokenize`, with the chat template when asked) and sent as
token ids to `/v1/completions` with `stream: true` and vLLM's `return_token_ids`: the same tokens,
the same end-of-turn stop and the same per-token timing as the in-process engine, which feeds
TokensPrompt to AsyncLLM. Timestamps are taken as each SSE event arrives here, so TTFT and decode
speed include the network, as a user of that server sees them.

Engine facts come from the server: the model and max_model_len from `/v1/models`, the KV cache from
`/metrics` (`vllm:cache_config_info`: num_gpu_blocks × block_size, cache_dtype, utilization), the
running count from `vllm:num_requests_running`. Quantization is not published by vLLM's server:
it is read from the engine's label (a label containing "fp8" means FP8 weights), and said so.

Every failure becomes a RequestError that names the engine and what happened: server down, wrong
URL, 401, a model the server does not serve, a stream that stops mid-answer, a timeout.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from playground.engines.base import EngineInfo, GenerationRequest, RequestError, StreamChunk

CONNECT_TIMEOUT_S = 5.0
# The longest gap between two streamed events before the request is given up (a long prefill of
# many queued requests can take a while; a dead server is caught by the connect timeout).
READ_TIMEOUT_S = 120.0
_METRIC_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RemoteEngineSpec:
    """One `--engine LABEL=URL[#MODEL]`: the column's label, the server's /v1 URL, optionally which model."""

    label: str
    base_url: str
    model: str | None = None

    @classmethod
    def parse(cls, text: str) -> RemoteEngineSpec:
        from playground.columns import split_label

        label, url = split_label(text, "FP8=http://localhost:8001/v1")
        url, _, model = url.partition("#")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RequestError("engine", f"{url!r} is not an http(s) URL (e.g. http://localhost:8001/v1)")
        url = url.rstrip("/")
        if not url.endswith("/v1"):
            url += "/v1"
        return cls(label.strip(), url, model.strip() or None)

    @property
    def root_url(self) -> str:
        return self.base_url[: -len("/v1")]


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text format → {metric name: [(labels, value), ...]} (comments skipped)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        labels = {k: v.encode().decode("unicode_escape") for k, v in _LABEL.findall(m["labels"] or "")}
        out.setdefault(m["name"], []).append((labels, value))
    return out


def cache_facts(metrics: dict) -> dict:
    """KV tokens, cache dtype and utilization from `vllm:cache_config_info` (vLLM's CacheConfig as labels)."""
    rows = metrics.get("vllm:cache_config_info") or []
    if not rows:
        return {}
    labels = rows[0][0]
    facts: dict = {"kv_cache_dtype": labels.get("cache_dtype", "auto")}
    try:
        facts["kv_tokens"] = int(labels["num_gpu_blocks"]) * int(labels["block_size"])
    except (KeyError, ValueError):
        pass
    try:
        facts["gpu_memory_utilization"] = float(labels["gpu_memory_utilization"])
    except (KeyError, ValueError):
        pass
    return facts


def planner_view(info: EngineInfo, gpu_preset_name: str) -> str:
    """The planner's KV tokens for the server's reported engine (model, utilization, max_model_len and
    KV dtype from the server) on a GPU preset, since that host's NVML cannot be read from here."""
    from planner import EngineConfig, PlannerError, gpu_preset, plan
    from planner.memory import default_batch_limits

    try:
        gpu = gpu_preset(gpu_preset_name)
        max_num_seqs, max_tokens = default_batch_limits(gpu, "serve")  # what `vllm serve` takes by default
        config = EngineConfig(model=info.model, quantization="fp8" if info.quantization else None,
                              kv_cache_dtype=info.kv_cache_dtype if str(info.kv_cache_dtype).startswith("fp8") else "auto",
                              gpu_memory_utilization=info.gpu_memory_utilization or 0.9,
                              max_model_len=info.max_model_len or None, max_num_seqs=max_num_seqs,
                              max_num_batched_tokens=max_tokens)
        predicted = plan(config, gpu, advise=False)
    except PlannerError:
        return (f"planner: no config.json for {info.model!r} here (serve it under a catalog name or a local "
                "folder's path, or pick one with --engine LABEL=URL#MODEL)")
    reported = f" vs {info.kv_tokens:,} the server reports (/metrics)" if info.kv_tokens else ""
    return (f"planner on the {gpu_preset_name} preset (the server's NVML is not reachable from here): "
            f"{predicted.kv_tokens:,} ± {predicted.kv_tokens_spread:,} KV tokens{reported}")


class OpenAIEngine:
    """A remote engine behind the Engine interface."""

    def __init__(self, spec: RemoteEngineSpec, api_key: str | None = None, *, read_timeout_s: float = READ_TIMEOUT_S,
                 gpu_preset: str = "h100-sxm"):
        self.spec, self.api_key, self.read_timeout_s, self.gpu_preset = spec, api_key, read_timeout_s, gpu_preset
        self._client = None
        self.model = spec.model
        self.info = EngineInfo(
            backend="openai", label=spec.label, model=spec.model or "?", dtype="?",
            quantization="fp8" if "fp8" in spec.label.lower() else None, kv_cache_dtype="auto", max_model_len=0,
            gpu_name=f"server {urlsplit(spec.base_url).netloc}",
            speed_note="Speeds as this app receives the server's stream (network included).",
        )

    @property
    def precision(self) -> str:
        """fp16 / fp8 / fp8-kv8 (the benchmark's names): FP8 from the label, FP8 KV from the server's cache dtype."""
        if not self.info.quantization:
            return "fp16"
        return "fp8-kv8" if str(self.info.kv_cache_dtype).startswith("fp8") or "kv8" in self.spec.label.lower() else "fp8"

    # ------------------------------------------------------------------ plumbing
    def _where(self) -> str:
        return f"{self.spec.label} server at {self.spec.base_url}"

    def _fail(self, e: Exception) -> RequestError:
        import httpx

        if isinstance(e, httpx.ConnectError):
            return RequestError("engine", f"{self._where()} is not reachable ({e}); is it running?")
        if isinstance(e, httpx.TimeoutException):
            return RequestError("engine", f"{self._where()} did not answer in time ({type(e).__name__})")
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return RequestError("engine", f"{self._where()} closed the connection mid-answer ({e})")
        return RequestError("engine", f"{self._where()}: {type(e).__name__}: {e}")

    async def _check(self, response) -> None:
        if response.status_code < 400:
            return
        body = (await response.aread()).decode(errors="replace")
        try:
            message = json.loads(body).get("error", body)
            if isinstance(message, dict):
                message = message.get("message", message)
        except (ValueError, AttributeError):
            message = body
        message = str(message).strip()[:400]
        if response.status_code == 401:
            raise RequestError("api_key", f"{self._where()} refused the API key (401): give the right one with "
                                          "--api-key-env NAME")
        if response.status_code == 404:
            raise RequestError("engine", f"{self._where()} answered 404 for {response.request.url.path}: "
                                         f"wrong URL or model? ({message})")
        if response.status_code == 400:  # vLLM's validation: context length, sampling ranges
            raise RequestError("prompt", f"{self.spec.label} server refused the request: {message}")
        raise RequestError("engine", f"{self._where()} answered {response.status_code}: {message}")

    async def _request(self, method: str, url: str, payload: dict | None = None):
        """One request; any failure becomes one RequestError that names the server and what happened."""
        try:
            response = await self._client.request(method, url, json=payload)
            await self._check(response)
            return response
        except RequestError:
            raise
        except Exception as e:  # noqa: BLE001 - every transport failure becomes one clear message
            raise self._fail(e) from e

    async def _post(self, url: str, payload: dict) -> dict:
        return (await self._request("POST", url, payload)).json()

    # ------------------------------------------------------------------ Engine
    async def start(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.spec.base_url, headers=headers,
            timeout=httpx.Timeout(self.read_timeout_s, connect=CONNECT_TIMEOUT_S),
            # idle connections are dropped before the server's keep-alive (uvicorn: 5 s) ends: a request sent
            # on one the server is closing fails before any byte (seen at 256 concurrent users)
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=512, keepalive_expiry=2.0))
        served = (await self._request("GET", "/models")).json().get("data", [])
        names = [m.get("id") for m in served]
        if not names:
            raise RequestError("engine", f"{self._where()} serves no model")
        if self.model is None:
            self.model = names[0]
        elif self.model not in names:
            raise RequestError("engine", f"{self._where()} does not serve {self.model!r}; it serves {', '.join(names)}")
        card = served[names.index(self.model)]
        facts = await self.server_facts()
        chat = await self._has_chat_template()
        notes = ("quantization read from the label (vLLM's server does not publish it)",) if self.info.quantization else ()
        self.info = replace(self.info, model=self.model, max_model_len=int(card.get("max_model_len") or 0),
                            dtype=facts.pop("dtype", "?"), notes=notes,
                            **{k: v for k, v in facts.items() if k in ("kv_tokens", "kv_cache_dtype", "gpu_memory_utilization")},
                            chat_template=chat)
        note = planner_view(self.info, self.gpu_preset)
        from planner.calibrate import version_note

        version = version_note(await self.server_version())  # the server's vLLM against the one the planner models
        self.info = replace(self.info, planner_note=note + (f"; {version}" if version else ""))

    async def server_version(self) -> str | None:
        """The server's vLLM version (vLLM's GET /version); None when it does not say."""
        try:
            response = await self._client.get(self.spec.root_url + "/version")
            return str(response.json().get("version")) if response.status_code == 200 else None
        except Exception:  # noqa: BLE001 - an optional fact: another OpenAI-compatible server may not have it
            return None

    async def _has_chat_template(self) -> bool:
        """Whether the served tokenizer has a chat template (a base model's has none: the server refuses)."""
        try:
            await self.prompt_ids("hi", chat=True)
        except RequestError as e:
            if e.argument == "prompt":  # the server's 400: no template
                return False
            raise
        return True

    async def server_facts(self) -> dict:
        """What the server's /metrics says now (empty when it publishes none): KV facts and the running count."""
        try:
            response = await self._client.get(self.spec.root_url + "/metrics")
        except Exception:  # noqa: BLE001 - metrics are optional; a server may not expose them
            return {}
        if response.status_code != 200:
            return {}
        metrics = parse_metrics(response.text)
        facts = cache_facts(metrics)
        running = metrics.get("vllm:num_requests_running")
        if running:
            facts["num_requests_running"] = int(sum(v for _, v in running))
        usage = metrics.get("vllm:kv_cache_usage_perc") or metrics.get("vllm:gpu_cache_usage_perc")
        if usage:
            facts["kv_cache_usage"] = usage[0][1]
        return facts

    async def prompt_ids(self, prompt: str, chat: bool) -> list[int]:
        if chat:
            payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                       "add_generation_prompt": True}
        else:
            payload = {"model": self.model, "prompt": prompt}
        return list((await self._post(self.spec.root_url + "/tokenize", payload))["tokens"])

    def count_prompt_tokens(self, prompt: str, chat: bool = False) -> None:
        """The server checks lengths itself (a 400 becomes this column's error); counting here would
        cost a blocking round trip on the web server's loop."""
        return None

    def _payload(self, request: GenerationRequest, ids: list[int]) -> dict:
        s = request.sampling
        payload = {"model": self.model, "prompt": ids, "stream": True, "max_tokens": s.max_tokens,
                   "temperature": s.temperature, "top_p": s.top_p, "presence_penalty": s.presence_penalty,
                   "frequency_penalty": s.frequency_penalty, "return_token_ids": True,
                   # vLLM's extras (its OpenAI server takes SamplingParams' names)
                   "top_k": s.top_k if s.top_k > 0 else -1, "repetition_penalty": s.repetition_penalty,
                   "ignore_eos": s.ignore_eos, "skip_special_tokens": True}
        if s.seed is not None:
            payload["seed"] = s.seed
        if s.stop:
            payload["stop"] = list(s.stop)
        return payload

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        request.sampling.validate(self.info.max_model_len or None)  # a bad setting is refused before any request
        ids = list(request.prompt_token_ids) if request.prompt_token_ids is not None else \
            await self.prompt_ids(request.prompt, request.chat)
        produced, finished = 0, False
        try:
            async with self._client.stream("POST", "/completions", json=self._payload(request, ids)) as response:
                await self._check(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    if "error" in event:
                        raise RequestError("engine", f"{self._where()}: {event['error']}")
                    t = time.perf_counter()
                    for choice in event.get("choices") or ():
                        new_ids = tuple(choice.get("token_ids") or ())
                        produced += len(new_ids)
                        reason = choice.get("finish_reason")
                        finished = finished or reason is not None
                        if not new_ids and not choice.get("text") and reason is None:
                            continue
                        yield StreamChunk(text=choice.get("text") or "", num_output_tokens=produced, token_ids=new_ids,
                                          t_s=t, num_prompt_tokens=len(ids), finished=reason is not None,
                                          finish_reason=reason)
        except RequestError:
            raise
        except Exception as e:  # noqa: BLE001 - transport failures become one clear message
            raise self._fail(e) from e
        if not finished:
            raise RequestError("engine", f"{self._where()} ended the stream before the answer finished")

    async def score(self, prompt: str, chat: bool, continuation: tuple[int, ...], top_k: int = 20) -> list[dict[int, float]]:
        """vLLM's prompt_logprobs over prompt + continuation (a non-streamed completion of one token)."""
        ids = await self.prompt_ids(prompt, chat)
        out = await self._post("/completions", {"model": self.model, "prompt": ids + list(continuation), "max_tokens": 1,
                                                "temperature": 0.0, "prompt_logprobs": top_k})
        rows = out["choices"][0].get("prompt_logprobs")
        if rows is None:
            raise RequestError("engine", f"{self._where()} returned no prompt_logprobs (not a vLLM server?)")
        return [{int(t): float(lp["logprob"]) for t, lp in (row or {}).items()} for row in rows[len(ids):]]

    async def abort(self, request_id: str) -> None:
        """Closing the stream is the abort: vLLM's server aborts a request whose client went away."""

    @property
    def errored(self) -> bool:
        return False

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
