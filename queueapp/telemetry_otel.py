"""Tracing on: the enqueue, the wait and each attempt as OpenTelemetry spans, made
with the official SDK and sent over OTLP/HTTP (``pip install 'queueapp[otel]'``).

Spans follow OpenTelemetry's messaging conventions: ``send <queue>`` (PRODUCER) for
an enqueue, its children ``wait <queue>`` from the job's due time to its start, and
``process <queue>`` (CONSUMER) for each attempt, from its start to its end, with its
outcome and error; a retry's attempt links to the attempts before it. Each carries
``messaging.system`` (queueapp), ``messaging.destination.name`` (the queue),
``messaging.operation.type`` and ``messaging.message.id`` (the job's id).

The SDK's batch processor sends from a thread of its own, so a span costs the event
loop its making only. A job of a trace its producer does not record (not sampled)
makes no span at all: the samplers OpenTelemetry ships follow the parent's choice,
and asking one costs as much as making the span would. Its settings are the SDK's environment variables
(``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``...).
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from .model import Job, JobState
from .telemetry import Sending, TraceContext, Tracing, attempt_span_id, of_options
from .version import __version__

SYSTEM = "queueapp"
MOST_LINKS = 16  # a retry links to at most this many attempts before it
_OUTCOME = {JobState.COMPLETED: "completed", JobState.FAILED: "failed", JobState.CANCELLED: "cancelled",
            JobState.WAITING: "retrying", JobState.DELAYED: "retrying"}


class _ChosenIds(IdGenerator):
    """The SDK's random ids, except the span id chosen for the next span made (an
    attempt's, drawn from its job)."""

    def __init__(self) -> None:
        self.random = RandomIdGenerator()
        self.next_span_id: int | None = None

    def generate_span_id(self) -> int:
        chosen, self.next_span_id = self.next_span_id, None
        return chosen if chosen is not None else self.random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self.random.generate_trace_id()


def _ns(ms: int) -> int:
    return ms * 1_000_000


def _parent(context: TraceContext) -> Any:
    state = TraceState.from_header([context.state]) if context.state else None
    remote = SpanContext(int(context.trace_id, 16), int(context.span_id, 16), is_remote=True,
                         trace_flags=TraceFlags(int(context.flags, 16)), trace_state=state)
    return set_span_in_context(NonRecordingSpan(remote))


def _context_of(span: Any, state: str | None) -> TraceContext:
    found = span.get_span_context()
    return TraceContext(f"{found.trace_id:032x}", f"{found.span_id:016x}", f"{int(found.trace_flags):02x}", state)


class _Sent(Sending):
    def __init__(self, span: Any, context: TraceContext) -> None:
        super().__init__(context)
        self.span = span

    def done(self, count: int, error: BaseException | None = None) -> None:
        self.span.set_attribute("messaging.batch.message_count", count)
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            self.span.set_attribute("error.type", type(error).__name__)
        self.span.end()


class OtelTracing(Tracing):
    on = True

    def __init__(self, endpoint: str | None = None, exporter: Any = None) -> None:
        """``endpoint``: the OTLP/HTTP traces URL (None: the SDK's, from
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)."""
        self.ids = _ChosenIds()
        resource = Resource.create({"service.name": "queueapp", "service.version": __version__})
        self.provider = TracerProvider(resource=resource, id_generator=self.ids)
        self.provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("queueapp", __version__)

    def _attributes(self, queue: str, operation: str) -> dict[str, Any]:
        return {"messaging.system": SYSTEM, "messaging.destination.name": queue,
                "messaging.operation.type": operation, "messaging.operation.name": operation}

    def sending(self, queue: str, count: int, parent: TraceContext | None) -> Sending:
        if parent is not None and not parent.sampled:
            return Sending(parent)  # a trace its producer does not record: kept, not added to
        span = self.tracer.start_span(f"send {queue}", context=None if parent is None else _parent(parent),
                                      kind=SpanKind.PRODUCER, attributes=self._attributes(queue, "send"))
        return _Sent(span, _context_of(span, None if parent is None else parent.state))

    def scheduling(self, queue: str, schedule: str) -> Sending:
        attributes = {**self._attributes(queue, "send"), "queueapp.schedule": schedule}
        span = self.tracer.start_span(f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes)
        return _Sent(span, _context_of(span, None))

    def waited(self, job: Job) -> None:
        context = of_options(job.options)
        if context is None or not context.sampled or job.started_at is None:
            return
        began = min(job.run_at, job.started_at)
        attributes = {**self._attributes(job.queue, "receive"), "messaging.message.id": str(job.id),
                      "queueapp.job.name": job.name, "queueapp.wait.ms": job.started_at - began,
                      "queueapp.attempt": job.attempts_made}
        span = self.tracer.start_span(f"wait {job.queue}", context=_parent(context), kind=SpanKind.INTERNAL,
                                      attributes=attributes, start_time=_ns(began))
        span.end(end_time=_ns(job.started_at))

    def attempted(self, job: Job, counted: bool) -> None:
        context = of_options(job.options)
        if context is None or not context.sampled or job.started_at is None:
            return
        attempt = job.attempts_made + (0 if counted else 1)
        links = [Link(SpanContext(int(context.trace_id, 16), int(attempt_span_id(context, job.id, n), 16),
                                  is_remote=False, trace_flags=TraceFlags(int(context.flags, 16))))
                 for n in range(max(1, attempt - MOST_LINKS), attempt)]
        outcome = "released" if not counted else _OUTCOME.get(job.state, str(job.state))
        attributes = {**self._attributes(job.queue, "process"), "messaging.message.id": str(job.id),
                      "queueapp.job.name": job.name, "queueapp.attempt": attempt, "queueapp.outcome": outcome}
        if job.worker:
            attributes["queueapp.worker"] = job.worker
        self.ids.next_span_id = int(attempt_span_id(context, job.id, attempt), 16)
        span = self.tracer.start_span(f"process {job.queue}", context=_parent(context), kind=SpanKind.CONSUMER,
                                      attributes=attributes, links=links, start_time=_ns(job.started_at))
        if outcome in ("failed", "retrying") and job.error:
            span.set_status(Status(StatusCode.ERROR, job.error[:500]))
            span.set_attribute("error.type", "job_failed")
        ended = job.finished_at if job.finished_at is not None and job.finished_at >= job.started_at else None
        span.end(end_time=None if ended is None else _ns(ended))

    def attempt_context(self, job: Job) -> TraceContext | None:
        context = of_options(job.options)
        if context is None or not context.sampled:
            return context  # no attempt span is made: the job's own context stands
        return context.child(attempt_span_id(context, job.id, job.attempts_made))

    async def close(self) -> None:
        await asyncio.to_thread(self.provider.shutdown)
