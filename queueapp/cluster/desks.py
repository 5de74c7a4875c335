"""Leases and outcomes on a node of a cluster: the same desks as one appliance's
(dispatch/leases.py, dispatch/outcomes.py), but a lease is claimed by the database
for whichever node the worker asks, and a job may be finished, heartbeated or
cancelled through any node, not only the one that handed it out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..dispatch.leases import RESCUE_BATCH, Alive, LeaseDesk
from ..dispatch.outcomes import Outcomes
from ..errors import Conflict
from ..model import Job, JobState
from ..retry import Failure
from ..store import Change, SharedStore
from .ledger import ClusterLedger


class ClusterLeases(LeaseDesk):
    ledger: ClusterLedger
    shared: SharedStore
    local_names: Callable[[], list[str]]  # names this node's handlers run: never leased from here
    look_every_s = 1.0  # a waiting long poll looks again this often, in case a wake-up was lost

    async def lease(
        self, queue: str, names: list[str] | None, max_jobs: int, lease_ms: int, wait_ms: int,
        alive: Alive = lambda: True,
    ) -> list[Job]:
        """As one appliance's lease; the database picks the jobs. A long poll wakes
        when any node tells of new work in the queue, and looks again every second
        in case a wake-up was lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while True:
            q = self.ledger.queues.get(queue)
            if not (q is not None and q.paused) and not self.closed and alive():
                jobs = await self._claim_shared(queue, names, max_jobs, lease_ms)
                if jobs and not alive():
                    await self._hand_back(jobs)
                    return []
                if jobs:
                    return jobs
            left = deadline - loop.time()
            if left <= 0 or self.closed or not alive():
                return []
            await self._wait(queue, q, min(left, self.look_every_s))

    async def _claim_shared(self, queue: str, names: list[str] | None, max_jobs: int, lease_ms: int) -> list[Job]:
        claimed: list[Job] = []

        def record(jobs: list[Job]) -> None:
            claimed.extend(job for job in jobs if job.state is JobState.ACTIVE)  # not the expired
            self.ledger.started(jobs, here=False)

        write = asyncio.ensure_future(self.shared.claim(queue, names, self.local_names(), max_jobs,
                                                        self.clock.now_ms(), lease_ms, self.ledger.rules(queue),
                                                        then=record))
        return await self.for_asker(write, claimed)

    async def heartbeat(self, job_id: int, token: str, progress: Any, lease_ms: int | None) -> Job:
        if lease_ms is None and job_id not in self.ledger.active:
            lease_ms = self.default_lease_ms  # leased through any node; this node's own run without a lease
        return await super().heartbeat(job_id, token, progress, lease_ms)

    async def rescue_expired(self, message: str) -> list[Change]:
        """The leader's sweep: leases of the whole cluster that ran out."""
        leases = await self.shared.expired_leases(self.clock.now_ms(), RESCUE_BATCH)
        if not leases:
            return []
        return await self.store.rescue_active(self.clock.now_ms(), Failure(message), leases,
                                              then=self.ledger.finished_many)

    def next_expiry(self) -> int | None:
        return None  # the leader sweeps on its own beat


class ClusterOutcomes(Outcomes):
    ledger: ClusterLedger
    shared: SharedStore

    async def complete(self, job_id: int, token: str, result: Any) -> Job:
        return await self._watching(job_id, token, super().complete(job_id, token, result))

    async def fail(self, job_id: int, token: str, failure: Failure) -> Job:
        return await self._watching(job_id, token, super().fail(job_id, token, failure))

    async def release(self, job_id: int, token: str) -> Job:
        return await self._watching(job_id, token, super().release(job_id, token))

    async def _watching(self, job_id: int, token: str, answer: Awaitable[Job]) -> Job:
        """An attempt's outcome; when the job is no longer this token's, it was ended
        through another node (see ``lost``)."""
        try:
            return await answer
        except Conflict:
            self.lost(job_id, token)
            raise

    def lost(self, job_id: int, token: str) -> None:
        """One of this node's running jobs was ended through another node (cancelled,
        or returned by the leader): its slot is free again."""
        active = self.ledger.active.get(job_id)
        if active is not None and active.token == token:
            self.ledger.drop_active(job_id)
            self.ledger.queue(active.queue).running -= 1
            self.ledger.wake()

    async def _cancel_active(self, job: Job) -> Job:
        """A running job, on this node or another, is asked to stop: its attempt ends
        cancelled; the node whose handler runs it is told, and a worker finds its
        lease gone at its next heartbeat or answer."""
        if job.lease_token is None:
            raise Conflict(f"job {job.id} is finishing; try again")
        active = self.ledger.active.get(job.id)

        def stopped(change: Change | None) -> None:
            self.ledger.finished(change)
            if change is not None and active is not None and active.task is not None:
                active.task.cancel()

        change = await self.store.fail_job(job.id, job.lease_token, Failure("cancelled while running", cancel=True),
                                           self.clock.now_ms(), then=stopped)
        if change is None:
            raise Conflict(f"job {job.id} finished before it could be cancelled")
        if active is None and change.job.state is JobState.CANCELLED:
            await self.shared.tell_cancelled(job.id)
        return change.job
