"""Python handlers for job names, run inside the appliance.

    from queueapp.workers import registry

    @registry.handler("send-email")
    async def send_email(job):
        await job.progress(50)
        return {"sent": True}

A module of handlers is loaded by naming it in the ``handlers`` setting; importing it
registers its handlers on the shared ``registry``.
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..model import Job
from ..redact import redact
from ..retry import MAX_RETRY_AFTER_MS
from ..telemetry import TraceContext
from ..traces import MAX_LOG_LINES_A_CALL, log_lines, stack_of

ProgressFn = Callable[[Any], Awaitable[None]]
LogFn = Callable[[list[str]], Awaitable[Any]]
Handler = Callable[["JobContext"], Awaitable[Any]]


class JobFailed(Exception):
    """Raise from a handler to fail the attempt with just this message (it retries
    like any failure). Other exceptions are recorded as ``Type: message``."""


class UnrecoverableError(JobFailed):
    """Raise from a handler to fail the job for good, without further attempts."""


class RetryLater(JobFailed):
    """Raise from a handler to retry after ``delay_ms`` instead of the job's backoff
    (an upstream said when: HTTP 429 with Retry-After). Attempts still count."""

    def __init__(self, message: str, delay_ms: int) -> None:
        super().__init__(message)
        self.delay_ms = min(max(0, int(delay_ms)), MAX_RETRY_AFTER_MS)


class JobContext:
    """What a handler sees of its job."""

    __slots__ = ("_job", "_progress", "_log", "_trace")

    def __init__(self, job: Job, progress: ProgressFn, log: LogFn | None = None,
                 trace: TraceContext | None = None) -> None:
        self._job = job
        self._progress = progress
        self._log = log
        self._trace = trace

    @property
    def traceparent(self) -> str | None:
        """The W3C traceparent this attempt runs under (None: the job has no trace):
        a span the handler starts with it as parent is the attempt's child."""
        return None if self._trace is None else self._trace.traceparent

    @property
    def tracestate(self) -> str | None:
        return None if self._trace is None else self._trace.state

    @property
    def id(self) -> str:
        return str(self._job.id)

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def queue(self) -> str:
        return self._job.queue

    @property
    def data(self) -> dict[str, Any]:
        return self._job.data

    @property
    def group(self) -> str | None:
        """options.group: the key the job's flow control counts it under."""
        return self._job.group

    @property
    def attempt(self) -> int:
        """1 on the first attempt."""
        return self._job.attempts_made

    @property
    def attempts(self) -> int:
        return self._job.attempts

    async def progress(self, value: Any) -> None:
        """Report progress: a number 0..100 or a JSON object. Stored and visible on the job.
        Anything else raises ValueError."""
        check_progress(value)
        await self._progress(value)

    async def log(self, *texts: str) -> None:
        """Append to the job's log, kept with the job and shown on its page: each text
        a line (one with newlines, several), each cut to MAX_LOG_LINE_CHARS; a job
        keeps its newest MAX_JOB_LOG_LINES."""
        if self._log is None:
            raise RuntimeError("this job has no log to write to")
        lines = log_lines(texts)
        for start in range(0, len(lines), MAX_LOG_LINES_A_CALL):
            await self._log(lines[start:start + MAX_LOG_LINES_A_CALL])


MAX_PROGRESS_BYTES = 10_000


def check_progress(value: Any) -> None:
    """Progress is a finite number from 0 to 100, or a JSON object of bounded size."""
    if isinstance(value, bool) or not isinstance(value, int | float | dict):
        raise ValueError("progress must be a number from 0 to 100 or a JSON object")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and 0 <= value <= 100):
            raise ValueError("progress must be a number from 0 to 100")
        return
    from ..jsonfast import dumps_strict

    if len(dumps_strict(value)) > MAX_PROGRESS_BYTES:
        raise ValueError(f"progress objects are at most {MAX_PROGRESS_BYTES} bytes of JSON")


Validator = Callable[[dict[str, Any]], None]


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._validators: dict[str, Validator] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a handler is added or removed."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def validator(self, name: str, fn: Validator) -> None:
        """Check the data of jobs named ``name`` at enqueue: ``fn`` raises ValueError
        for data the handler could never accept, and the enqueue is refused (400)."""
        self._validators[name] = fn

    def validate(self, name: str, data: dict[str, Any]) -> None:
        check = self._validators.get(name)
        if check is not None:
            check(data)

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.register(name, fn)
            return fn

        return register

    def register(self, name: str, fn: Handler) -> None:
        if name in self._handlers and self._handlers[name] is not fn:
            raise ValueError(f"a handler for {name!r} is already registered")
        fresh = name not in self._handlers
        self._handlers[name] = fn
        if fresh:
            self._changed()

    def unregister(self, name: str) -> None:
        if self._handlers.pop(name, None) is not None:
            self._changed()

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def load_modules(self, modules: list[str]) -> None:
        """Import each module. A module registers its handlers either with the
        ``@registry.handler`` decorator of the shared ``registry`` on import (they then
        join every registry that loads the module), or by defining
        ``register(registry)``, which is then called with this registry."""
        for name in modules:
            module = importlib.import_module(name)
            register = getattr(module, "register", None)
            if callable(register):
                register(self)
            if self is not registry:
                for job_name, fn in list(registry._handlers.items()):
                    if getattr(fn, "__module__", None) == module.__name__ and job_name not in self:
                        self.register(job_name, fn)


# The registry handler modules decorate; each app and service copies from it what the
# modules it loads registered (see load_modules), and otherwise has its own.
registry = HandlerRegistry()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: a result, or an error with what should follow."""

    result: Any = None
    error: str | None = None
    retry: bool = True
    retry_after_ms: int | None = None
    stack: str | None = None


async def run_handler(handler: Handler, context: JobContext, timeout_ms: int | None) -> Outcome:
    """Run a handler within the job's timeout; whatever it raises becomes the
    attempt's outcome. Cancellation passes through: the caller decides what a stop
    means (the in-process runner and the remote worker differ)."""
    try:
        if not timeout_ms:  # no timer to arm: the common no-timeout job skips its cost
            return Outcome(result=await handler(context))
        deadline = asyncio.timeout(timeout_ms / 1000)
        try:
            async with deadline:
                return Outcome(result=await handler(context))
        except TimeoutError:
            if not deadline.expired():  # the handler's own TimeoutError: an ordinary failure
                raise
            return Outcome(error=f"timed out after {timeout_ms} ms")
    except UnrecoverableError as exc:
        return Outcome(error=failure_message(exc), retry=False, stack=stack_of(exc))
    except RetryLater as exc:
        return Outcome(error=failure_message(exc), retry_after_ms=exc.delay_ms, stack=stack_of(exc))
    except Exception as exc:  # a handler's failure is the job's failure, not ours
        return Outcome(error=failure_message(exc), stack=stack_of(exc))


def failure_message(exc: BaseException) -> str:
    """What a failed attempt records: our own failures by their message, anything
    else with its type, so that ``KeyError: 'to'`` is not just ``'to'``."""
    text = redact(str(exc))[:MAX_ERROR_CHARS]
    if isinstance(exc, JobFailed) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


MAX_ERROR_CHARS = 10_000  # an attempt's error is kept, not a novel
