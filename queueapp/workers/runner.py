"""Runs one claimed job through its in-process handler, with its timeout, and
reports the outcome to the dispatcher."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound, StoreUnavailable
from ..model import Job
from .registry import JobContext, Outcome, run_handler

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

log = logging.getLogger("queueapp.runner")


class JobRunner:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def run(self, job: Job) -> None:
        handler = self.dispatcher.registry.get(job.name)
        token = job.lease_token
        assert token is not None
        if handler is None:  # unregistered since it was claimed
            await self._report(job, token, Outcome(error="no handler is registered for this job name"))
            return
        context = JobContext(job, lambda value: self._progress(job, token, value))
        try:
            outcome = await run_handler(handler, context, job.timeout_ms)
        except asyncio.CancelledError:
            # Cancelled through the API (already stored as cancelled) or at shutdown
            # after the grace period (the attempt fails and the job retries later).
            if job.id in self.dispatcher.active:
                await asyncio.shield(self._report(job, token, Outcome(error="stopped at shutdown")))
            raise
        await self._report(job, token, outcome)

    async def _report(self, job: Job, token: str, outcome: Outcome) -> None:
        pause = 0.1
        while True:
            try:
                if outcome.error is None:
                    await self.dispatcher.complete(job.id, token, outcome.result)
                else:
                    await self.dispatcher.fail(
                        job.id, token, outcome.error, outcome.retry, outcome.retry_after_ms
                    )
                return
            except (Conflict, NotFound):
                return  # cancelled or rescued meanwhile: the store already holds the outcome
            except TypeError as exc:  # a result that is not JSON
                outcome = Outcome(error=f"handler result is not JSON: {exc}", retry=False)
            except StoreUnavailable:
                # The store cannot write now (disk full, read-only). The outcome waits
                # here and is stored once it can be; if the process dies first, the
                # job is still active in the store and recovery retries it.
                log.error("could not store a job's outcome; will try again",
                          extra={"event": "job.outcome_deferred", "job": job.id})
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _progress(self, job: Job, token: str, value: Any) -> None:
        await self.dispatcher.heartbeat(job.id, token, value, None)
