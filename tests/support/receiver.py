"""A loopback HTTP receiver standing in for a contractor's API (http.request's peer in the tests).

It runs an aiohttp server on 127.0.0.1 in a thread of its own, so sync end-to-end tests and async
unit tests can both use it, and records every request it gets. Routes under `/v1/`:
  POST jobs         → 201 {"jobNumber": "C-1001", "received": <the JSON body>} (numbers count up)
  GET  echo         → 200 {"headers": {...}, "query": {...}}
  GET  redirect-in  → 302 to /v1/echo (inside the allow-list)
  GET  redirect-out → 302 to `outside_url` (outside it)
  GET  big          → 200 with a body of `big_bytes` bytes
  GET  slow         → answers after `slow_seconds`
  GET  fail         → 500
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from alloysync.local.redis_server import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    outside_url: str = "http://127.0.0.1:9/elsewhere"
    big_bytes: int = 200_000
    slow_seconds: float = 3.0
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._numbers = itertools.count(1001)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/jobs", self._jobs)
        app.router.add_get("/v1/echo", self._echo)
        app.router.add_get("/v1/redirect-in", self._redirect_in)
        app.router.add_get("/v1/redirect-out", self._redirect_out)
        app.router.add_get("/v1/big", self._big)
        app.router.add_get("/v1/slow", self._slow)
        app.router.add_get("/v1/fail", self._fail)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _record(self, request: web.Request) -> Any:
        body: Any = None
        if request.can_read_body:
            body = (
                await request.json() if request.content_type == "application/json" else await request.text()
            )
        self.received.append(Received(request.method, request.path, dict(request.headers), body))
        return body

    async def _jobs(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return web.json_response({"jobNumber": f"C-{next(self._numbers)}", "received": body}, status=201)

    async def _echo(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"headers": dict(request.headers), "query": dict(request.query)})

    async def _redirect_in(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound("/v1/echo")

    async def _redirect_out(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound(self.outside_url)

    async def _big(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="x" * self.big_bytes)

    async def _slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(self.slow_seconds)
        return web.json_response({"slow": True})

    async def _fail(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"error": "down for maintenance"}, status=500)
