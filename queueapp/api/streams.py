"""``GET /metrics`` (Prometheus) and ``GET /queues/events`` (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import web

from ..events import EventBus, JobEvent
from ..jsonfast import dumps
from ..prometheus import OPENMETRICS_TYPE, TEXT_TYPE
from .common import query_name, queue_of, service_of
from .models import DocumentOut
from .present import event_out
from .rules import EVERY, READ, READS, Rule
from .spec import JOB_NAME, QUEUE, Api, Query

api = Api("observability")

EVENT_BUFFER = 1000  # events a client may lag behind before it is dropped
WRITE_TIMEOUT_S = 5.0  # a client that cannot take one event in this time is dropped
KEEPALIVE_S = 15.0


@api.endpoint("GET", "/metrics", Rule(READ, EVERY), "Prometheus text format (OpenMetrics 1.0.0 when Accept asks for "
              "application/openmetrics-text): counts, rates, latency histograms, the process's own, the build.",
          content_type="text/plain")
async def prometheus_metrics(request: web.Request) -> web.Response:
    openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
    text = service_of(request).prometheus(openmetrics=openmetrics)
    return web.Response(text=text, headers={"Content-Type": OPENMETRICS_TYPE if openmetrics else TEXT_TYPE})


@api.endpoint("GET", "/queues/events", READS,
          "Server-Sent Events of job transitions (added, waiting, active, progress, completed, "
          "retrying, failed, cancelled, stalled, released, expired, removed) in a queue, optionally only for "
          "some job names. Each has an id: reconnecting with Last-Event-ID (or lastEventId) resumes after it.",
          ok=DocumentOut, content_type="text/event-stream",
          query=(QUEUE, Query("name", "Only jobs of this name; repeat for several.", JOB_NAME),
                 Query("lastEventId", "Resume after this event (as the Last-Event-ID header does).",
                       {"type": "string", "maxLength": 64})))
async def job_events(request: web.Request) -> web.StreamResponse:
    queue = queue_of(request)
    query_name(request)  # each name is checked
    names = set(request.query.getall("name", []))
    resume = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")

    def accept(event: JobEvent) -> bool:
        return event.queue == queue and (not names or event.name in names)

    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    service = service_of(request)
    bus = service.events
    with service.subscribe(EVENT_BUFFER, accept) as subscription:
        await _write(response, b": connected\n\n")
        # what the reader missed, from the kept events; live ones sent so are skipped
        replayed = 0 if resume is None else await _replay(response, bus, resume[:64], accept)
        if replayed is None:
            return response
        while not subscription.closed.is_set():
            numbered = await _next(subscription)
            if numbered is None:
                chunk = b": keepalive\n\n"
            elif numbered[0] <= replayed:
                continue
            else:
                chunk = _event(bus, *numbered)
            if not await _write(response, chunk):
                break
    return response


def _event(bus: EventBus, seq: int, event: JobEvent) -> bytes:
    return f"id: {bus.event_id(seq)}\nevent: {event.type}\ndata: {dumps(event_out(event))}\n\n".encode()


async def _replay(response: web.StreamResponse, bus: EventBus, resume: str,
                  accept: Callable[[JobEvent], bool]) -> int | None:
    """Send the kept events after ``resume`` (an event id); first a ``gap`` event when
    some of those are no longer kept (or the id is of another run). The number of the
    last event sent so (live events up to it are duplicates), or None: the reader is
    gone."""
    seq = bus.seq_of(resume)
    missed, lost = bus.since(0 if seq is None else seq)  # read before any await: up to now
    replayed = 0 if seq is None else bus.last_seq
    if seq is None or lost:
        gap = {"after": resume, "from": bus.event_id(missed[0][0]) if missed else None,
               "reason": "not kept: older than the events kept, or of an earlier run of the appliance"}
        if not await _write(response, f"event: gap\ndata: {dumps(gap)}\n\n".encode()):
            return None
        if seq is None:
            return replayed  # another run's id: nothing of it is kept, go on live
    for number, event in missed:
        if accept(event) and not await _write(response, _event(bus, number, event)):
            return None
    return replayed


async def _next(subscription) -> tuple[int, JobEvent] | None:  # noqa: ANN001 - events.Subscription
    """The next event and its number, or None after the keep-alive interval or when dropped."""
    getter = asyncio.ensure_future(subscription.get_numbered())
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
