"""An HTTP proxy between a worker under test and the appliance that records what the
worker asks for and, when told, answers 503 or drops the connection, before or after
the appliance has done what was asked (an answer lost on its way back).

It runs its own event loop in a thread, so that the tests and the worker's process
stay as they are."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from conftest import free_port

FAULTS = ("503", "drop-before", "drop-after")


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: Counter[str] = Counter()  # by the route's last word: lease, complete, heartbeat...
        self.lease_sizes: list[int] = []  # the `max` of each lease request
        self.faults_done: Counter[str] = Counter()
        # (seconds since the proxy started, route's last word, fault or None, status or None)
        self.timeline: list[tuple[float, str, str | None, int | None]] = []
        self._started = time.monotonic()
        self._rate = 0.0
        self._budget = 0
        self._random = random.Random(7)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def break_next(self, count: int, rate: float = 0.5) -> None:
        """Of the next requests, fail each with probability ``rate`` (a 503, or a
        connection dropped before or after the appliance answered) until ``count``
        have failed."""
        with self._lock:
            self._rate, self._budget = rate, count

    @property
    def breaking(self) -> bool:
        with self._lock:
            return self._budget > 0

    def _fault(self) -> str | None:
        """Which fault, if any, this request meets: the kinds take turns, so that every
        kind happens however few requests a worker makes."""
        with self._lock:
            if self._budget <= 0 or self._random.random() >= self._rate:
                return None
            self._budget -= 1
            fault = FAULTS[sum(self.faults_done.values()) % len(FAULTS)]
            self.faults_done[fault] += 1
            return fault

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stopping.wait()
        await runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        word = request.path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            self.requests[word] += 1
            if word == "lease" and body:
                self.lease_sizes.append(int(json.loads(body).get("max", 1)))
        fault = self._fault()
        self.timeline.append((round(time.monotonic() - self._started, 3), word, fault, None))
        if fault == "503":
            return web.json_response({"error": {"code": "unavailable", "message": "injected by the fault proxy"}},
                                     status=503)
        if fault == "drop-before":
            return self._drop(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body or None,
                                         headers=headers) as answer:
            payload = await answer.read()
            kind = answer.headers.get("content-type", "application/json")
        if fault == "drop-after":  # the appliance did it; the worker never hears so
            return self._drop(request)
        return web.Response(body=payload, status=answer.status, headers={"content-type": kind})

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        transport: Any = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=599)  # never sent: the connection is gone
