"""A remote worker's span around each job it runs, the child of the attempt the
lease named (its ``traceparent``), so that a trace goes from the producer through
the queue into the handler, and the handler's own spans hang below it.

Made with the OpenTelemetry API when it is installed, through the global tracer
provider: where spans go is the program's choice (``queueapp worker`` sets up OTLP
when the standard OTEL_EXPORTER_OTLP_ENDPOINT names an endpoint). Without the API,
or for a job without a trace, nothing is made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from .model import Job
from .telemetry import TraceContext

SYSTEM = "queueapp"


def _api() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


_TRACE = _api()


@contextlib.contextmanager
def job_span(job: Job, trace: TraceContext | None, worker: str) -> Iterator[Callable[[str | None], None]]:
    """A span around running ``job`` under ``trace``; yields ``ended(error)``, which
    marks the span failed with the error (None: it succeeded)."""
    if _TRACE is None or trace is None:
        yield lambda _error: None
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(trace.headers())
    attributes = {"messaging.system": SYSTEM, "messaging.destination.name": job.queue,
                  "messaging.operation.type": "process", "messaging.operation.name": "process",
                  "messaging.message.id": str(job.id), "queueapp.job.name": job.name,
                  "queueapp.attempt": job.attempts_made, "queueapp.worker": worker}
    tracer = _TRACE.get_tracer("queueapp.worker")
    with tracer.start_as_current_span(f"process {job.queue}", context=parent, kind=SpanKind.CONSUMER,
                                      attributes=attributes, record_exception=False) as span:

        def ended(error: str | None) -> None:
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error[:500]))
                span.set_attribute("error.type", "job_failed")

        yield ended


def export_from_environment() -> Callable[[], None] | None:
    """When the standard environment names an OTLP endpoint and the SDK is installed,
    make the global tracer provider send spans there; the function that flushes and
    stops it (None: nothing was set up)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or not (
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "queueapp-worker"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider.shutdown
