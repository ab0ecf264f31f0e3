"""Recorded answers of the local API (fixtures/), served on a unix socket by a tiny aiohttp server in a thread
of its own, so that snapshot tests (whose app runs its own event loop) see the same robot every time.

The fixtures are checked against the API's own body models (test_fixtures_are_what_the_api_answers), so they
cannot drift from what the agent says."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures"

STEP_UP = {"detail": "this action needs your password once a session (step-up)", "step_up": True}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class ReplayServer:
    """`with ReplayServer(socket, status="status.json"):` serves the fixtures until the block ends."""

    def __init__(self, socket: Path, *, status: str = "status.json") -> None:
        self.socket = socket
        self.status = status
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replay-api", daemon=True)
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        json_routes = {
            ("GET", "/status"): self.status,
            ("POST", "/session"): "session.json",
            ("GET", "/faces"): "faces.json",
            ("GET", "/catalogue"): "catalogue.json",
            ("GET", "/orders"): "orders.json",
            ("GET", "/sync"): "sync.json",
        }
        for (method, path), name in json_routes.items():
            app.router.add_route(method, path, self._answer(name))
        app.router.add_get("/events", self._events)
        app.router.add_post("/session/card", self._forever)  # nobody taps
        app.router.add_post("/actions/gate/pulse", self._step_up)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.socket)).start()

    async def _cleanup(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _answer(self, name: str) -> Any:
        async def answer(_request: web.Request) -> web.Response:
            return web.json_response(fixture(name))

        return answer

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await response.write((FIXTURES / "events.ndjson").read_bytes())
        await self._stop.wait()
        return response

    async def _forever(self, _request: web.Request) -> web.Response:
        await self._stop.wait()
        return web.json_response({"detail": "stopping"}, status=503)

    async def _step_up(self, _request: web.Request) -> web.Response:
        return web.json_response(STEP_UP, status=403)
