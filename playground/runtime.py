"""The engines' own event loop, in a background thread, and the supervisor that restarts a dead engine.

vLLM's AsyncLLM binds its sockets and output task to the loop it first runs on; the web server
has its own. Keeping every engine call on one dedicated loop and bridging results across makes
both sides independent of each other's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from playground.engines.base import Engine

T = TypeVar("T")
_DONE = object()


class EngineRuntime:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="engine-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine on the engine loop from any other thread, and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acall(self, coro: Awaitable[T]) -> T:
        """Await a coroutine run on the engine loop, from another running loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def stream(self, make: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Iterate, from the caller's loop, an async iterator that runs on the engine loop. Closing
        this iterator (a client that goes away, a Stop button) closes the remote one."""
        here = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def pump():
            try:
                async for item in make():
                    here.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as e:  # carried across to the caller, who decides what it means
                here.call_soon_threadsafe(queue.put_nowait, e)
            finally:
                here.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = asyncio.run_coroutine_threadsafe(pump(), self.loop)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            future.cancel()  # cancels pump(), whose async-for closes the remote generator


class SupervisedEngine:
    """An engine plus how to build it again: if it dies, ``ensure_running`` starts a new one."""

    def __init__(self, factory: Callable[[], Engine], *, retry_failed_start: bool = False):
        self.factory = factory
        # A remote server that was not up when the app started is tried again on the next request;
        # a local engine that failed (out of memory) is not restarted on every click.
        self.retry_failed_start = retry_failed_start
        self.engine = factory()
        self.restarts = 0
        self.stage = "waiting to start"  # waiting to start → starting → ready | failed: …
        self.started_at: float | None = None
        self.ready_after_s: float | None = None
        self.expected_start_s: float | None = None  # how long the last start of this engine took (if known)
        self._ready = threading.Event()

    @property
    def info(self):
        return self.engine.info

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        self.stage, self.started_at = "starting", time.perf_counter()
        try:
            await self.engine.start()
        except BaseException as e:
            self.stage = f"failed: {e}"
            raise
        self.ready_after_s = time.perf_counter() - self.started_at
        self.stage = "ready"
        self._ready.set()

    def note_stage(self, words: str) -> None:
        """A start-up step reported by the engine (vLLM's log): shown while it starts."""
        if not self.ready and not self.failed and self.started_at is not None:
            self.stage = f"starting: {words}"

    def status_line(self) -> str:
        if self.ready:
            return self.info.status_line() + (f" · restarted {self.restarts}x" if self.restarts else "")
        if self.started_at is None:
            return f"{self.info.label}: {self.stage}"
        elapsed, left = self._progress()
        return f"{self.info.label}: {self.stage} · {elapsed:.0f} s" + (f", ~{left:.0f} s left" if left is not None else "")

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait (off the event loop) until started; a clear error when it failed or takes too long."""
        await asyncio.to_thread(self._ready.wait, timeout_s)
        if not self.ready:
            from playground.engines.base import RequestError

            if self.stage.startswith("failed"):
                raise RequestError("engine", f"{self.info.label} engine {self.stage}")
            raise RequestError("engine", f"{self.info.label} engine is still starting ({self.stage}); "
                                         f"{self.time_left_text()}")

    def _progress(self) -> tuple[float, float | None]:
        """Seconds since the start began, and about how many are left (from the last start), if known."""
        elapsed = time.perf_counter() - self.started_at if self.started_at else 0.0
        left = None if self.expected_start_s is None else max(self.expected_start_s - elapsed, 1.0)
        return elapsed, left

    def time_left_text(self) -> str:
        elapsed, left = self._progress()
        if left is None:
            return f"{elapsed:.0f} s so far; try again shortly"
        return f"{elapsed:.0f} s so far, ~{left:.0f} s left (the last start took {self.expected_start_s:.0f} s)"

    @property
    def failed(self) -> bool:
        return self.stage.startswith("failed")

    async def retry_start(self) -> None:
        """Start again after a failed start (on the engine loop), with a fresh engine object."""
        if self.failed and self.retry_failed_start:
            self.engine = self.factory()
            await self.start()

    def is_dead(self) -> bool:
        return bool(getattr(self.engine, "errored", False))

    async def ensure_running(self) -> bool:
        """Restart a dead engine; True if a restart happened."""
        if not self.is_dead():
            return False
        try:
            await self.engine.stop()
        except RuntimeError:  # a dead engine may fail to shut down cleanly; it is replaced anyway
            pass
        self.engine = self.factory()
        await self.engine.start()
        self.restarts += 1
        return True
