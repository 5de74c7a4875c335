"""``GET /metrics`` (Prometheus) and ``GET /queues/events`` (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from ..events import JobEvent
from ..jsonfast import dumps
from .common import query_name, queue_of, service_of
from .models import DocumentOut
from .present import event_out
from .spec import JOB_NAME, QUEUE, Api, Query

api = Api("observability")

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EVENT_BUFFER = 1000  # events a client may lag behind before it is dropped
WRITE_TIMEOUT_S = 5.0  # a client that cannot take one event in this time is dropped
KEEPALIVE_S = 15.0


@api.endpoint("GET", "/metrics", "Prometheus text format: counts, rates, latency histograms.",
          content_type="text/plain")
async def prometheus_metrics(request: web.Request) -> web.Response:
    return web.Response(text=service_of(request).prometheus(), headers={"Content-Type": PROMETHEUS_TYPE})


@api.endpoint("GET", "/queues/events",
          "Server-Sent Events of job transitions (added, waiting, active, progress, completed, "
          "retrying, failed, cancelled, stalled, released, expired, removed) in a queue, optionally only for "
          "some job names.",
          ok=DocumentOut, content_type="text/event-stream",
          query=(QUEUE, Query("name", "Only jobs of this name; repeat for several.", JOB_NAME)))
async def job_events(request: web.Request) -> web.StreamResponse:
    queue = queue_of(request)
    query_name(request)  # each name is checked
    names = set(request.query.getall("name", []))

    def accept(event: JobEvent) -> bool:
        return event.queue == queue and (not names or event.name in names)

    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    with service_of(request).subscribe(EVENT_BUFFER, accept) as subscription:
        await _write(response, b": connected\n\n")
        while not subscription.closed.is_set():
            event = await _next(subscription)
            if event is None:
                chunk = b": keepalive\n\n"
            else:
                chunk = f"event: {event.type}\ndata: {dumps(event_out(event))}\n\n".encode()
            if not await _write(response, chunk):
                break
    return response


async def _next(subscription) -> JobEvent | None:  # noqa: ANN001 - events.Subscription
    """The next event, or None after the keep-alive interval or when dropped."""
    getter = asyncio.ensure_future(subscription.get())
    closed = asyncio.ensure_future(subscription.closed.wait())
    done, pending = await asyncio.wait({getter, closed}, timeout=KEEPALIVE_S,
                                       return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return getter.result() if getter in done else None


async def _write(response: web.StreamResponse, chunk: bytes) -> bool:
    try:
        await asyncio.wait_for(response.write(chunk), WRITE_TIMEOUT_S)
    except (TimeoutError, ConnectionError, RuntimeError):
        return False
    return True
