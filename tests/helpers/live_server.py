"""Serve an ASGI app on a real localhost port for tests: in the test's event loop, or in a thread.

In-loop serving suits async tests (the app, fakes and clients share one loop); the threaded
server suits synchronous drivers such as Playwright's sync API. Both can be stopped and started
again on the same port, which is how tests force clients to reconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from tests.helpers.processes import free_port, wait_for_port


def _config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                          ws="websockets-sansio", loop="asyncio", timeout_graceful_shutdown=2)


class LoopServer:
    """uvicorn as a task of the running loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = uvicorn.Server(_config(self.app, self.port))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def serve(app: Any, port: int | None = None) -> AsyncIterator[LoopServer]:
    """Serve ``app`` in this loop for the duration of the block."""
    server = LoopServer(app, port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class ThreadServer:
    """uvicorn on an event loop running in a background thread.

    The loop outlives ``stop()``, so a restarted server serves the same app objects (Redis
    clients included) on the same loop, like a process restart would with fresh ones.
    """

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: uvicorn.Server | None = None
        self._serving: concurrent.futures.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Serve, and wait ``timeout`` seconds at most for the app's startup (its lifespan)."""
        self._server = uvicorn.Server(_config(self.app, self.port))
        self._serving = asyncio.run_coroutine_threadsafe(self._server.serve(), self._loop)
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        wait_for_port(self.port, 5)

    async def call(self, work: Any) -> Any:
        """Await the coroutine ``work`` on the server's loop (to use the app's own services)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def stop(self) -> None:
        if self._server is None or self._serving is None:
            return
        self._server.should_exit = True
        self._serving.result(timeout=15)
        self._server = self._serving = None

    def close(self) -> None:
        """Stop serving and end the loop thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[ThreadServer]:
    """Serve ``app`` from a background thread for the duration of the block."""
    server = ThreadServer(app, port)
    server.start()
    try:
        yield server
    finally:
        server.close()
