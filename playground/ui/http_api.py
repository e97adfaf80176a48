"""A plain streaming HTTP API beside Gradio's, on the same server, for programs that do not speak
Gradio's protocol (one request per answer instead of Gradio's POST-then-listen pair):

    curl -N -X POST http://127.0.0.1:7860/api/v1/generate -H 'Content-Type: application/json' \\
         -d '{"prompt": "Explain FP8", "engine": "FP8", "max_tokens": 128}'

    POST /api/v1/generate   the arguments of the Gradio API's /generate, by name
    POST /api/v1/compare    the arguments of /compare, by name

The answer is Server-Sent Events: ``event: partial`` with the same JSON as the Gradio API's partial
answers (at most every 0.5 s), then ``event: complete`` with its final answer (per-token timestamps
included), or ``event: error``. The same validation as the Gradio API: a bad request gets 400 and
``{"error": ..., "argument": ...}`` before anything is streamed; a full server 503. With ``--auth``
the same login as the page: Gradio's session cookie, or HTTP Basic with the same user and password.
A client that disconnects aborts its requests in the engines.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import secrets

from playground.service import Playground
from playground.ui.api import compare_results, generate_results
from playground.ui.inputs import USER_ERRORS

ROUTES = {"generate": generate_results, "compare": compare_results}


def _error(status: int, message: str, argument: str | None = None, headers: dict | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "argument": argument}, status_code=status, headers=headers)


def _user_error(e: Exception):
    argument = getattr(e, "argument", None)
    return _error(503 if argument == "server" else 400, str(e), argument)


def _authorized(request, app, auth: tuple[str, str] | None) -> bool:
    if auth is None:
        return True
    cookie_id = getattr(app, "cookie_id", None)
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(f"access-token-unsecure-{cookie_id}")
    if token and token in getattr(app, "tokens", {}):
        return True  # logged in on the page
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, auth[0]) and secrets.compare_digest(password, auth[1])


def mount(app, playground: Playground, auth: tuple[str, str] | None = None) -> None:
    """Add /api/v1/generate and /api/v1/compare to the running Gradio server's app."""
    from starlette.responses import StreamingResponse

    def endpoint(name: str):
        results = ROUTES[name]
        accepted = set(inspect.signature(results).parameters) - {"playground"}

        async def handle(request):
            if not _authorized(request, app, auth):
                return _error(401, "not authenticated: log in on the page or send HTTP Basic credentials",
                              headers={"WWW-Authenticate": 'Basic realm="fp8-playground"'})
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error(400, "the body must be a JSON object of the API's arguments", "body")
            if not isinstance(body, dict):
                return _error(400, "the body must be a JSON object of the API's arguments", "body")
            unknown = sorted(set(body) - accepted)
            if unknown:
                return _error(400, f"{name} has no argument {', '.join(map(repr, unknown))}; its arguments: "
                                   f"{', '.join(sorted(accepted))}", unknown[0])
            answers = results(playground, **body)  # an async generator: arguments are checked at its first answer
            try:  # the first answer decides between 400 and a stream: bad requests fail before any token
                first = await answers.__anext__()
            except USER_ERRORS as e:
                await answers.aclose()
                return _user_error(e)
            except StopAsyncIteration:
                return _error(500, "the engines returned nothing")
            except Exception as e:  # an engine fault: said to this caller, the server goes on
                await answers.aclose()
                return _error(500, f"{type(e).__name__}: {e}")

            async def events():
                answer = first
                try:
                    while True:
                        kind = "partial" if answer.get("partial") else "complete"
                        yield f"event: {kind}\ndata: {json.dumps(answer)}\n\n"
                        if kind == "complete":
                            return
                        answer = await answers.__anext__()
                except Exception as e:  # noqa: BLE001 - a fault mid-stream ends this answer with its message, not the server
                    message = str(e) if isinstance(e, USER_ERRORS) else f"{type(e).__name__}: {e}"
                    yield f"event: error\ndata: {json.dumps({'error': message, 'argument': getattr(e, 'argument', None)})}\n\n"
                finally:
                    await answers.aclose()  # a disconnect cancels this generator: the engines' requests are aborted

            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        return handle

    for name in ROUTES:
        app.add_route(f"/api/v1/{name}", endpoint(name), methods=["POST"])
