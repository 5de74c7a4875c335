"""Runs one claimed job through its in-process handler, within its timeout, and
reports the outcome through the small ``Reporter`` protocol it declares (the
dispatcher implements it); it knows nothing else of the dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import Conflict, NotFound, StoreUnavailable
from ..model import Job
from ..retry import Failure
from ..telemetry import TraceContext, of_job
from ..workers.registry import HandlerRegistry, JobContext, Outcome, run_handler

log = logging.getLogger("queueapp.executor")


class Reporter(Protocol):
    def owns(self, job_id: int, token: str) -> bool: ...

    async def complete(self, job_id: int, token: str, result: Any) -> Job: ...

    async def fail(self, job_id: int, token: str, failure: Failure) -> Job: ...

    async def release(self, job_id: int, token: str) -> Job: ...

    async def heartbeat(self, job_id: int, token: str, progress: Any, lease_ms: int | None) -> Job: ...

    async def append_log(self, job_id: int, token: str, lines: list[str]) -> int: ...


class JobExecutor:
    def __init__(self, registry: HandlerRegistry, reporter: Reporter,
                 trace_of: Callable[[Job], TraceContext | None] = of_job) -> None:
        self.registry = registry
        self.reporter = reporter
        self.trace_of = trace_of  # the trace a handler runs its attempt under

    async def run(self, job: Job) -> None:
        handler = self.registry.get(job.name)
        token = job.lease_token
        assert token is not None
        if handler is None:  # unregistered since it was claimed
            await self._report(job, token, Outcome(error="no handler is registered for this job name"))
            return
        context = JobContext(job, lambda value: self._progress(job, token, value),
                             lambda lines: self.reporter.append_log(job.id, token, lines), self.trace_of(job))
        try:
            outcome = await run_handler(handler, context, job.timeout_ms)
        except asyncio.CancelledError:
            # Cancelled through the API (already stored as cancelled), or stopped at
            # shutdown after the grace period: then the job goes back in line with its
            # attempt not counted, as a worker's release does; it did not fail.
            if self.reporter.owns(job.id, token):
                await asyncio.shield(self._hand_back(job, token))
            raise
        await self._report(job, token, outcome)

    async def _hand_back(self, job: Job, token: str) -> None:
        try:
            await self.reporter.release(job.id, token)
        except (Conflict, NotFound):
            pass
        except StoreUnavailable:  # recovery at the next start returns it
            log.error("could not hand a stopped job back", extra={"event": "job.release_failed", "job": job.id})

    async def _report(self, job: Job, token: str, outcome: Outcome) -> None:
        pause = 0.1
        while True:
            try:
                if outcome.error is None:
                    await self.reporter.complete(job.id, token, outcome.result)
                else:
                    failure = Failure(outcome.error, outcome.retry, outcome.retry_after_ms, stack=outcome.stack)
                    await self.reporter.fail(job.id, token, failure)
                return
            except (Conflict, NotFound):
                return  # cancelled or rescued meanwhile: the store already holds the outcome
            except (TypeError, ValueError) as exc:  # a result that is not JSON
                outcome = Outcome(error=f"handler result is not JSON: {exc}", retry=False)
            except StoreUnavailable:
                # The store cannot write now (disk full, read-only). The outcome waits
                # here and is stored once it can be; if the process dies first, the
                # job is still active in the store and recovery retries it.
                log.error("could not store a job's outcome; will try again",
                          extra={"event": "job.outcome_deferred", "job": job.id}, exc_info=True)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _progress(self, job: Job, token: str, value: Any) -> None:
        # JobContext.progress has checked the value (ValueError for one it refuses).
        await self.reporter.heartbeat(job.id, token, value, None)
