"""Trace context that travels with a job (W3C Trace Context: ``traceparent`` and
``tracestate``), and what the appliance tells a tracer about a job: its enqueue,
its wait in the queue, and each attempt.

A job keeps its context in ``options.telemetry`` (as BullMQ keeps it in its job
options), given by the producer's ``traceparent`` header or by the options
themselves. With tracing off (``Tracing``, the default) that is all: the context is
kept and handed to whoever runs the job (a lease answers it, a handler is given it),
so a worker's span is the producer's child, and no span is made here. With tracing
on (telemetry_otel.py) the appliance makes the enqueue's span, and the job keeps the
enqueue's context instead: the wait and each attempt are its children, and a worker
runs under its attempt's span.

An attempt's span id is drawn from the trace, the job and the attempt's number, so
that the lease can name it before it ends and a retry can link to the attempts
before it without anything more being stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .model import Job, NewJob

TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
MAX_TRACESTATE_CHARS = 512
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16
    flags: str = "01"  # sampled
    state: str | None = None  # tracestate, passed on as it came

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        return int(self.flags, 16) & 1 == 1

    def stored(self) -> dict[str, str]:
        """As a job's options.telemetry keeps it."""
        kept = {"traceparent": self.traceparent}
        if self.state:
            kept["tracestate"] = self.state
        return kept

    def child(self, span_id: str) -> TraceContext:
        return TraceContext(self.trace_id, span_id, self.flags, self.state)

    def headers(self) -> dict[str, str]:
        """The HTTP headers that carry it onward."""
        found = {"traceparent": self.traceparent}
        if self.state:
            found["tracestate"] = self.state
        return found


def parse_traceparent(text: str | None, state: str | None = None) -> TraceContext | None:
    """A ``traceparent`` header's context, or None when there is none or it is not
    one (which Trace Context says to treat as none: a trace is never a reason to
    refuse a job)."""
    if not text:
        return None
    found = TRACEPARENT.match(text.strip().lower())
    if found is None:
        return None
    version, trace_id, span_id, flags = found.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if state is not None and (len(state) > MAX_TRACESTATE_CHARS or not state.isprintable()):
        state = None
    return TraceContext(trace_id, span_id, flags, state or None)


def of_options(options: dict[str, Any]) -> TraceContext | None:
    """The context a job keeps in its options (None: it has none)."""
    kept = options.get("telemetry")
    if not isinstance(kept, dict):
        return None
    return parse_traceparent(kept.get("traceparent"), kept.get("tracestate"))


def of_job(job: Job) -> TraceContext | None:
    return of_options(job.options)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def attempt_span_id(context: TraceContext, job_id: int, attempt: int) -> str:
    """The span id of the job's ``attempt``-th attempt (counted from 1), drawn from its
    trace: the same wherever and whenever it is asked for."""
    digest = hashlib.sha256(f"{context.trace_id}/{context.span_id}/{job_id}/{attempt}".encode()).hexdigest()[:16]
    return digest if digest != _ZERO_SPAN else "0" * 15 + "1"


def with_context(jobs: Sequence[NewJob], context: TraceContext) -> list[NewJob]:
    """``jobs``, each keeping ``context`` unless its options name one of their own.
    Jobs of a bulk share their options dict: each is copied once, never changed."""
    stored = context.stored()
    copies: dict[int, dict[str, Any]] = {}
    found = []
    for job in jobs:
        if "telemetry" in job.options:
            found.append(job)
            continue
        options = copies.get(id(job.options))
        if options is None:
            options = copies[id(job.options)] = {**job.options, "telemetry": stored}
        found.append(replace(job, options=options))
    return found


class Sending:
    """An enqueue as a tracer sees it: the context its jobs keep, and its end."""

    def __init__(self, context: TraceContext | None) -> None:
        self.context = context

    def done(self, count: int, error: BaseException | None = None) -> None:
        """The jobs were stored (``count`` of them), or not (``error``)."""


class Tracing:
    """Tracing off: jobs keep the producer's context and give it to their workers;
    no span is made, and nothing is spent on any job that has none."""

    on = False

    def sending(self, queue: str, count: int, parent: TraceContext | None) -> Sending:
        return Sending(parent)

    def scheduling(self, queue: str, schedule: str) -> Sending:
        """A schedule's run, which begins a trace of its own."""
        return Sending(None)

    def waited(self, job: Job) -> None:
        """The job's wait ended: an attempt of it started."""

    def attempted(self, job: Job, counted: bool) -> None:
        """An attempt of the job ended (``counted`` False: released, not counted)."""

    def attempt_context(self, job: Job) -> TraceContext | None:
        """The context a worker runs the job's current attempt under."""
        return of_job(job)

    async def close(self) -> None:
        """Send what is left (at a stop)."""


NO_TRACING = Tracing()
