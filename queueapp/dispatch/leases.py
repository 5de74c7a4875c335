"""Leases for external workers: long-polled claims, heartbeats, and the return of
jobs whose lease ran out.

Lease deadlines are kept on the monotonic clock while the process lives (a wall
clock stepped by an hour must not expire every lease at once); the store keeps the
wall-clock expiry for people and for the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..clock import Clock
from ..errors import Conflict, NotFound
from ..model import Job, JobState
from ..retry import Failure
from ..store import Change, Store
from .ledger import Ledger
from .runtime import ActiveJob, QueueRuntime
from .source import WorkSource

Alive = Callable[[], bool]
# The worker kept with a lease whose asker gave no name (and, over HTTP, no address).
UNNAMED_WORKER = "worker"


def stale(job_id: int) -> Conflict:
    return Conflict(
        f"job {job_id} is not active under that lease token: it finished, was"
        " cancelled, or its lease expired and it was given to another worker"
    )


RESCUE_BATCH = 1_000  # expired leases failed by one change


class LeaseDesk:
    # A waiting long poll looks again this often: a gone client's poll ends, and on a
    # node of a cluster a lost wake-up costs at most this long.
    look_every_s = 1.0

    def __init__(self, store: Store, ledger: Ledger, source: WorkSource, clock: Clock, default_lease_ms: int) -> None:
        self.store = store
        self.ledger = ledger
        self.source = source
        self.clock = clock
        self.default_lease_ms = default_lease_ms
        self.closed = False  # shutting down: no new leases, open polls return empty
        # Long polls on queues not known yet wait here without creating the queue.
        self._idle_waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def lease(
        self, queue: str, names: list[str] | None, max_jobs: int, lease_ms: int, wait_ms: int,
        alive: Alive = lambda: True, worker: str = UNNAMED_WORKER,
    ) -> list[Job]:
        """Up to ``max_jobs`` due jobs, highest priority first, for ``worker`` (its name
        is kept with each job); waits up to ``wait_ms`` for one to arrive when none is
        there. ``alive`` says whether the asker is still there: no job is claimed for a
        client that has gone, and jobs claimed just as it went are handed back unstarted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while True:
            q = self.ledger.queues.get(queue)
            if not (q is not None and q.paused) and not self.closed and alive():
                jobs = await self._claim(queue, q, names, max_jobs, lease_ms, worker)
                if jobs and not alive():
                    await self._hand_back(jobs)
                    return []
                if jobs:
                    return jobs
            left = deadline - loop.time()
            if left <= 0 or self.closed or not alive():
                return []
            await self._wait(queue, q, min(left, self.look_every_s))

    async def _claim(self, queue: str, q: QueueRuntime | None, names: list[str] | None, max_jobs: int,
                     lease_ms: int, worker: str) -> list[Job]:
        claimed: list[Job] = []

        def record(jobs: list[Job]) -> list[ActiveJob]:
            claimed.extend(job for job in jobs if job.state is JobState.ACTIVE)  # not the expired
            return self.ledger.started(jobs, in_memory=self.source.tracks_leases)

        write = self.source.claim_for_lease(queue, q, names, max_jobs, lease_ms, worker, record)
        if write is None:
            return []
        try:
            await asyncio.shield(write)
            return claimed
        except asyncio.CancelledError:
            # The asker went away mid-claim: whatever the commit claimed goes back.
            write.add_done_callback(lambda _t: asyncio.ensure_future(self._hand_back(claimed)))
            raise

    async def _hand_back(self, jobs: list[Job]) -> None:
        for job in jobs:
            assert job.lease_token is not None
            try:
                await self.store.release_job(job.id, job.lease_token, self.clock.now_ms(),
                                             then=lambda c: self.ledger.finished(c, counted=False))
            except Exception:  # the reaper returns it when its lease runs out
                continue

    def polls_waiting(self) -> int:
        """Lease requests waiting for a job now, in every queue."""
        waiting = sum(len(q.waiters) for q in self.ledger.queues.values())
        return waiting + sum(len(w) for w in self._idle_waiters.values())

    async def _wait(self, queue: str, q: QueueRuntime | None, timeout: float) -> bool:
        """Wait for a new job in ``queue`` (or ``timeout``); True when woken. The
        timeout bounds how long a gone client's poll lingers."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = q.waiters if q is not None else self._idle_waiters.setdefault(queue, [])
        waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if q is None and not waiters:
                self._idle_waiters.pop(queue, None)

    def wake_idle(self, queue: str) -> None:
        """A queue came into being: its early long polls look again."""
        for waiter in self._idle_waiters.pop(queue, []):
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Shutting down: open long polls return at once, empty."""
        self.closed = True
        for q in self.ledger.queues.values():
            q.wake_waiters()
        for queue in list(self._idle_waiters):
            self.wake_idle(queue)

    async def heartbeat(self, job_id: int, token: str, progress: Any, lease_ms: int | None) -> Job:
        """The lease runs from now: for ``lease_ms``, or the default for a leased job
        (a job run by handlers has no lease to extend)."""
        active = self.ledger.active.get(job_id)
        if lease_ms is None and (active is None or not active.in_process):
            lease_ms = self.default_lease_ms  # leased, through this process or another node
        job = await self.store.heartbeat(job_id, token, self.clock.now_ms(), lease_ms, progress,
                                         then=self.ledger.beat)
        if job is None:
            if await self.store.get_job(job_id) is None:
                raise NotFound(f"no job with id {job_id}")
            raise stale(job_id)
        if progress is not None:
            self.ledger.emit("progress", job.id, job.queue, job.name, progress=progress)
        return job

    async def rescue_expired(self, message: str) -> list[Change]:
        """Fail the attempt of leased jobs whose lease ran out (see recovery.py, and
        background/leader.py for a cluster's)."""
        leases = await self.source.expired_leases(self.ledger)
        changes: list[Change] = []
        # A change at a time of RESCUE_BATCH: after a fleet of workers died, tens of
        # thousands may run out at once, and one change holds the loop while it runs.
        for start in range(0, len(leases), RESCUE_BATCH):
            changes += await self.store.rescue_active(
                self.clock.now_ms(), Failure(message), leases[start:start + RESCUE_BATCH],
                then=self.ledger.finished_many,
            )
        return changes

    def next_expiry(self) -> int | None:
        """The monotonic ms at which the first lease runs out (None: no lease, or the
        leases are swept elsewhere)."""
        return self.source.next_expiry(self.ledger)
