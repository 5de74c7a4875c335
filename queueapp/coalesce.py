"""Concurrent single adds from one application, sent as bulk requests.

Applications add jobs one at a time from many coroutines. One HTTP request per job
caps them at what a request costs; the appliance's bulk path stores a thousand jobs
for little more than one. ``AddCoalescer`` gathers the adds made in the same turn of
the event loop (or while earlier bulks are in flight) into one ``POST
/queues/jobs/bulk``, and answers each caller with its own job once the bulk has
committed, or with its own error:

- a job the appliance refuses (400 naming ``jobs.<n>``) fails only its caller; the
  others are sent again at once without it;
- any other failure (the appliance unreachable, 429, 503) fails every caller of that
  bulk, as it would have failed each of their single requests.

A caller that stops waiting before its job is sent withdraws it; one that stops
waiting after may still have its job added, as with a single request.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

MAX_BULK = 1_000  # jobs per bulk request: large enough to pay off, quick to answer
WINDOW_S = 0.0  # how long the first add waits for company: the adds of one loop turn go
# together, and those made while bulks are in flight go in the next one (a fixed wait
# measured slower: it adds to every caller's latency, which bounds their rate)
MAX_IN_FLIGHT = 4  # bulk requests at once; more adds wait and go in the next one

# Sends ``jobs`` as one bulk request; returns the stored jobs, in order, or raises.
SendBulk = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
_JOB_INDEX = re.compile(r"^jobs\.(\d+)(\.|$)")


class AddCoalescer:
    def __init__(self, send: SendBulk, refused: Callable[[BaseException], int | None], *,
                 window_s: float = WINDOW_S, max_bulk: int = MAX_BULK,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        """``refused(exc)``: the index of the one job an error is about, or None when
        it is about the whole request."""
        self._send = send
        self._refused = refused
        self._window_s = window_s
        self._max_bulk = max_bulk
        self._max_in_flight = max_in_flight
        self._waiting: deque[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = deque()
        self._in_flight = 0
        self._timer: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, job: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        if len(self._waiting) >= self._max_bulk:
            self._flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            # Without a window, the adds made before the loop next turns go together.
            self._timer = (loop.call_later(self._window_s, self._flush) if self._window_s
                           else loop.call_soon(self._flush))
        return await future

    async def close(self) -> None:
        """Send what waits, and wait for every bulk in flight."""
        while self._waiting or self._tasks:
            self._flush()
            if self._tasks:
                await asyncio.wait(set(self._tasks))

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting and self._in_flight < self._max_in_flight:
            batch: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
            while self._waiting and len(batch) < self._max_bulk:
                job, future = self._waiting.popleft()
                if not future.done():  # a caller that gave up withdraws its job
                    batch.append((job, future))
            if batch:
                self._in_flight += 1
                task = asyncio.create_task(self._send_batch(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send_batch(self, batch: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]]) -> None:
        try:
            while batch:
                try:
                    stored = await self._send([job for job, _ in batch])
                except Exception as exc:
                    index = self._refused(exc)
                    if index is None or not 0 <= index < len(batch):
                        for _, future in batch:
                            _settle(future, exc=exc)
                        return
                    _settle(batch.pop(index)[1], exc=exc)
                    continue
                for (_, future), job in zip(batch, stored, strict=True):
                    _settle(future, value=job)
                return
        finally:
            self._in_flight -= 1
            if self._waiting:
                self._flush()


def job_index(field: str | None) -> int | None:
    """The job a bulk error's ``field`` names (``jobs.3.options.priority`` -> 3)."""
    match = _JOB_INDEX.match(field or "")
    return int(match.group(1)) if match else None


def _settle(future: asyncio.Future[dict[str, Any]], *, value: dict[str, Any] | None = None,
            exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert value is not None
        future.set_result(value)
