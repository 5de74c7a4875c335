"""What becomes of an attempt (completed, failed, released) and of a job asked to
stop or to start over (cancel, retry): each a guarded write whose post-commit hook
is the ledger's. This is the executor's ``Reporter`` too.

On a node of a cluster a job may be finished, heartbeated or cancelled through any
node, not only the one that runs it: an answer that finds a job this node runs no
longer under its token means it was ended through another node (``Ledger.lost``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ..clock import Clock
from ..errors import Conflict
from ..model import Job, JobState
from ..redact import redact
from ..retry import Failure
from ..store import Acted, Change, Selection, Store
from ..traces import MAX_JOB_LOG_LINES
from .leases import LeaseDesk, stale
from .ledger import Ledger
from .source import WorkSource

EXPIRE_BATCH = 10_000  # jobs past their expiry ended by one change


class Outcomes:
    def __init__(self, store: Store, ledger: Ledger, source: WorkSource, clock: Clock, leases: LeaseDesk) -> None:
        self.store = store
        self.ledger = ledger
        self.source = source
        self.clock = clock
        self.leases = leases
        self._settling: set[asyncio.Future[Any]] = set()

    def owns(self, job_id: int, token: str) -> bool:
        active = self.ledger.active.get(job_id)
        return active is not None and active.token == token

    def _told_to_nobody(self, job_id: int) -> bool:
        """An in-process job's outcome is acknowledged to no one: its commit need not
        wait for an fsync (see store/sqlite/writer.py)."""
        active = self.ledger.active.get(job_id)
        return active is not None and active.in_process

    async def _answered(self, job_id: int, token: str, write: Awaitable[Change | None]) -> Job:
        """The job an attempt's outcome left; when the job is no longer this token's,
        a stale answer, and if it ran here it was ended through another node."""
        change = await write
        if change is None:
            self.ledger.lost(job_id, token)
            raise stale(job_id)
        return change.job

    async def complete(self, job_id: int, token: str, result: Any) -> Job:
        return await self._answered(job_id, token, self.store.complete_job(
            job_id, token, result, self.clock.now_ms(), durable=not self._told_to_nobody(job_id),
            then=self.ledger.finished,
        ))

    async def complete_many(self, items: list[tuple[int, str, Any]]) -> list[Job | Conflict]:
        """Completions of one request, stored by one change; each answers on its own."""

        def finished(changes: list[Change | None]) -> None:
            for change in changes:
                self.ledger.finished(change)

        changes = await self.store.complete_jobs(items, self.clock.now_ms(), then=finished)
        return [stale(job_id) if change is None else change.job
                for (job_id, _, _), change in zip(items, changes, strict=True)]

    async def fail(self, job_id: int, token: str, failure: Failure) -> Job:
        return await self._answered(job_id, token, self.store.fail_job(
            job_id, token, failure, self.clock.now_ms(), durable=not self._told_to_nobody(job_id),
            then=self.ledger.finished,
        ))

    async def append_log(self, job_id: int, token: str, lines: list[str]) -> int:
        """Lines after the log of the job running under ``token`` (redacted, as its
        errors are); the number of its last line. A stale token: Conflict."""
        last = await self.store.append_log(job_id, token, [redact(line) for line in lines], self.clock.now_ms(),
                                           MAX_JOB_LOG_LINES)
        if last is None:
            raise stale(job_id)
        return last

    async def release(self, job_id: int, token: str) -> Job:
        """Take a job back from its worker without counting the attempt."""
        return await self._answered(job_id, token, self.store.release_job(
            job_id, token, self.clock.now_ms(), then=lambda c: self.ledger.finished(c, counted=False)
        ))

    async def heartbeat(self, job_id: int, token: str, progress: Any, lease_ms: int | None) -> Job:
        return await self.leases.heartbeat(job_id, token, progress, lease_ms)

    async def clean(self, queue: str, state: JobState, finished_before: int, limit: int | None) -> int:
        """Remove finished jobs of ``state`` that finished before the time; keeps the counts."""
        return await self.store.clean(
            queue, state, finished_before, limit,
            then=lambda removed: self.ledger.cleaned(queue, state, removed),
        )

    async def cancel(self, job_id: int) -> Job:
        change = await self.store.cancel_job(job_id, self.clock.now_ms(), then=self.ledger.withdrawn)
        if change.prior is JobState.ACTIVE:
            return await self._cancel_active(change.job)
        return change.job

    async def _cancel_active(self, job: Job) -> Job:
        """An active job is asked to stop: its attempt ends cancelled; an in-process
        handler is cancelled (on another node, that node is told); an external worker
        finds its lease gone at its next heartbeat or answer."""
        active = self.ledger.active.get(job.id)
        # Active in the table, unknown here: its claim is being committed, unless
        # other nodes run jobs too (or a lease through any node: never in memory).
        if job.lease_token is None or (active is None and not self.source.shared_with_others):
            raise Conflict(f"job {job.id} is finishing; try again")

        def stopped(change: Change | None) -> None:
            self.ledger.finished(change)
            if change is not None and active is not None and active.task is not None:
                active.task.cancel()  # delivered at its next await; its outcome is stored

        change = await self.store.fail_job(
            job.id, job.lease_token, Failure("cancelled while running", cancel=True),
            self.clock.now_ms(), then=stopped,
        )
        if change is None:
            raise Conflict(f"job {job.id} finished before it could be cancelled")
        if active is None and change.job.state is JobState.CANCELLED:
            await self.source.cancelled(job.id)
        return change.job

    async def act_on_jobs(self, action: str, selection: Selection, limit: int) -> Acted:
        """Retry, cancel, promote or delete many jobs (never an active one) at once."""
        return await self.store.act_on_jobs(action, selection, self.clock.now_ms(), limit,
                                            then=lambda acted: self.ledger.acted(action, acted))

    async def expire_due(self, limit: int = EXPIRE_BATCH) -> int:
        """Waiting and delayed jobs past their expiry -> expired; how many."""
        return len(await self.store.expire_jobs(self.clock.now_ms(), limit, then=self.ledger.expired))

    async def rescue(self, leases: list[tuple[int, str]], message: str) -> list[Change]:
        """Fail the attempt of each job still active under the token given with it:
        whatever ran it is gone (the leader's return of a stopped node's jobs)."""
        return await self.store.rescue_active(self.clock.now_ms(), Failure(message), leases,
                                              then=self.ledger.finished_many)

    async def settle_lingering(self) -> int:
        """Dependents a crash left blocked after their dependency ended move on."""
        return await self.store.settle_lingering(self.clock.now_ms())

    def settle_ended(self, job: Job) -> None:
        """The dependents of a job a claim found expired move on by a change of
        their own, soon (a crash before it: start-up settles them)."""
        task = asyncio.ensure_future(self.store.settle_ended(job.id, str(job.state), self.clock.now_ms(),
                                                             then=self.ledger.settled))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def retry(self, job_id: int) -> Job:
        change = await self.store.retry_job(job_id, self.clock.now_ms(), then=self.ledger.retried)
        return change.job

    async def promote(self, job_id: int) -> Job:
        """A delayed job runs now."""
        change = await self.store.promote_job(job_id, self.clock.now_ms(), then=self.ledger.brought_forward)
        return change.job
