"""The work source of one appliance: every waiting job in memory, in its queue's lanes
(order.py), so that choosing the next jobs costs no query; the store is told which
ones were taken (``Store.claim_jobs``) and says which of them were still waiting.

Closed group lines that time alone opens again (a key's pause or its rate window)
wait in a heap here, and the dispatcher's timer goes off for the first of them.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..clock import Clock
from ..flow import GroupPolicy
from ..model import Job, NewJob
from ..store import Added, Store
from .audit import compare
from .lanes import Line, pack, serial
from .ledger import Ledger, Running
from .order import Lanes, Taken
from .policies import GroupPolicies
from .rebuild import rebuild
from .runtime import ActiveJob, QueueRuntime
from .source import IN_PROCESS, Started
from .wakeup import Wakeup


class MemorySource:
    counts_in_memory = True  # every change passes through this process
    tracks_leases = True  # the lease reaper watches every lease in memory
    shared_with_others = False
    node: str | None = None  # one appliance: no node names
    poll_ms: int | None = None  # nothing changes unseen: the loop waits for a wake-up

    def __init__(self, store: Store, clock: Clock, runs_here: Callable[[str], bool], policies: GroupPolicies,
                 wakeup: Wakeup) -> None:
        self.store = store
        self.clock = clock
        self.runs_here = runs_here  # a job name with an in-process handler
        self.policies = policies
        self.wakeup = wakeup
        self.lanes: dict[str, Lanes] = {}
        # Closed lines that time alone opens again: (at, serial, queue, line).
        self.reopening: list[tuple[int, int, QueueRuntime, Line]] = []
        # Ids taken from a lane whose claim is being committed, with their queue when
        # for this process's handlers (None: for a lease): neither in line nor active,
        # and the self-audit knows why.
        self.claiming: dict[int, str | None] = {}

    # what the ledger tells ---------------------------------------------------------------

    def queue_added(self, q: QueueRuntime) -> None:
        name = q.name
        self.lanes[name] = Lanes(name, self.runs_here, self.policies.of(name), self.policies.aging_for(name),
                                 self.clock.now_ms, closed_until=lambda line, at: self._reopen_at(q, line, at))

    def queue_forgotten(self, name: str) -> None:
        self.lanes.pop(name, None)

    def forget_empty(self) -> None:
        for lanes in self.lanes.values():
            lanes.forget_empty()

    def waiting(self, q: QueueRuntime, ids: Sequence[int], name: str, priority: int, run_at: int, group: str | None,
                by_enqueue: bool) -> None:
        """New waiting jobs: in line, and whoever takes them told (the dispatcher's loop
        for a name with a handler here, else the leases waiting on the queue)."""
        lanes = self.lanes[q.name]
        lane = lanes.lane(name, priority, group)
        if len(ids) == 1:
            lanes.push(lane, pack(priority, run_at, ids[0]))
        else:
            base = pack(priority, run_at, 0)
            lanes.push_many(lane, [base | job_id for job_id in ids])
        if self.runs_here(name):
            self.wakeup.wake()
        else:
            q.wake_waiters()

    def withdrawn(self, q: QueueRuntime, job: Job) -> None:
        """A waiting job left its place (cancelled, expired, removed, moved in time)."""
        self.lanes[q.name].lane(job.name, job.priority, job.group).kill(pack(job.priority, job.run_at, job.id))

    def ran(self, q: QueueRuntime, group: str | None, delta: int) -> None:
        """A job of ``group`` runs (+1: adopted after a restart) or no longer does (-1)."""
        if self.lanes[q.name].ran(group, delta):
            self._room_given(q)

    def policy_changed(self, q: QueueRuntime | None, policy: GroupPolicy) -> None:
        if q is not None:
            self.lanes[q.name].apply(policy)
            self._room_given(q)

    def handlers_changed(self) -> None:
        for lanes in self.lanes.values():
            lanes.rebuild()

    # taking work ----------------------------------------------------------------------------

    def queues_to_look(self, queues: dict[str, QueueRuntime], everything: bool) -> Iterable[QueueRuntime]:
        return queues.values()

    def claim_for_handlers(self, q: QueueRuntime, free: int, started: Started) -> Any:
        """The best ``free`` jobs for this process's handlers, their slots taken: the
        claim to run (None: nothing to take)."""
        taken = self.lanes[q.name].take(free, local=True)
        if not taken:
            return None
        q.running += len(taken.entries)
        self.claiming.update(dict.fromkeys(taken.ids, q.name))
        return self._claim_handlers(q, taken, started)

    async def _claim_handlers(self, q: QueueRuntime, taken: Taken, started: Started) -> None:
        wanted = len(taken.entries)

        def run(jobs: list[Job]) -> list[ActiveJob]:
            actives = started(jobs)
            if len(actives) < wanted:  # no longer waiting (cancelled meanwhile), or expired
                q.running -= wanted - len(actives)
                self.wakeup.wake()
            return actives

        try:
            await self._claim(q, taken, None, IN_PROCESS, run)
        except Exception:
            q.running -= wanted
            raise

    def claim_for_lease(self, queue: str, q: QueueRuntime | None, names: list[str] | None, max_jobs: int,
                        lease_ms: int, worker: str, started: Started) -> asyncio.Future[None] | None:
        """A worker's claim of the best due jobs (of ``names``), as a write the asker
        may leave; None: nothing to take now."""
        if q is None:
            return None
        self.reopen_due(self.clock.now_ms())  # keys whose pause or window ran out
        taken = self._take_for_lease(q, names, max_jobs)
        return None if taken is None else asyncio.ensure_future(self._lease(q, taken, names, max_jobs, lease_ms,
                                                                            worker, started))

    def _take_for_lease(self, q: QueueRuntime, names: list[str] | None, max_jobs: int) -> Taken | None:
        lanes = self.lanes[q.name]
        taken = lanes.take(max_jobs, local=False) if names is None else lanes.take_named(names, max_jobs)
        if not taken:
            return None
        self.claiming.update(dict.fromkeys(taken.ids))
        return taken

    async def _lease(self, q: QueueRuntime, taken: Taken | None, names: list[str] | None, max_jobs: int,
                     lease_ms: int, worker: str, started: Started) -> None:
        """Claim what was taken; when every one of them was cancelled meanwhile, the
        next best, until one is claimed or none is left."""
        while taken is not None:
            jobs = await self._claim(q, taken, lease_ms, worker, started)
            if any(job.lease_token is not None for job in jobs):
                return
            taken = self._take_for_lease(q, names, max_jobs)

    async def _claim(self, q: QueueRuntime, taken: Taken, lease_ms: int | None, worker: str,
                     started: Started) -> list[Job]:
        ids = taken.ids

        def committed(jobs: list[Job]) -> None:
            self._landed(ids)
            actives = started(jobs)
            if self.lanes[q.name].claimed(taken, {a.id for a in actives}):
                self._room_given(q)

        try:
            return await self.store.claim_jobs(ids, taken.now, lease_ms, worker=worker, taken_at=taken.due_times,
                                               then=committed)
        except BaseException:
            if any(job_id in self.claiming for job_id in ids):  # nothing was claimed: back in line
                self._landed(ids)
                taken.put_back()
            raise

    def _landed(self, ids: list[int]) -> None:
        for job_id in ids:
            self.claiming.pop(job_id, None)

    def after_turn(self) -> None:
        """Nothing to tell anyone: this process is the only one."""
        return None

    async def resumed(self, queue: str) -> None:
        """Nothing beyond this process's own wake-ups."""

    async def fire_schedule(self, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int,
                            now: int, then: Callable[[Any], None]) -> tuple[list[Added], bool] | None:
        return await self.store.fire_schedule(queue, name, expected_next, jobs, next_run_at, now, then=then)

    # time -------------------------------------------------------------------------------------

    def _reopen_at(self, q: QueueRuntime, line: Line, at: int) -> None:
        heapq.heappush(self.reopening, (at, next(serial), q, line))
        self.wakeup.timer_moved(at)

    def reopen_due(self, now: int) -> None:
        """Open the lines whose pause or full rate window has run out by ``now``."""
        heap = self.reopening
        while heap and heap[0][0] <= now:
            _, _, q, line = heapq.heappop(heap)
            lanes = self.lanes.get(q.name)
            if lanes is not None and lanes.reopen(line):
                self._room_given(q)

    def next_wake(self) -> int | None:
        """The next closed line to reopen."""
        return self.reopening[0][0] if self.reopening else None

    def _room_given(self, q: QueueRuntime) -> None:
        """A line of ``q`` opened: whoever takes its jobs looks again."""
        self.wakeup.wake()
        q.wake_waiters()

    # reads ----------------------------------------------------------------------------------

    async def expired_leases(self, running: Running) -> list[tuple[int, str]]:
        """Leases of this process run out by now, by their monotonic deadlines."""
        now = self.clock.monotonic_ms()
        return [(a.id, a.token) for a in running.active.values() if a.deadline is not None and a.deadline < now]

    def next_expiry(self, running: Running) -> int | None:
        """The monotonic ms at which the first lease runs out."""
        deadlines = [a.deadline for a in running.active.values() if a.deadline is not None]
        return min(deadlines) if deadlines else None

    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        lanes = self.lanes.get(queue)
        lines = {} if lanes is None else lanes.lines
        return {key: (line.gate.busy, len(line)) for key, line in lines.items() if key is not None}

    async def audit(self, ledger: Ledger) -> list[str]:
        """Memory against a snapshot of the table read in the writer's order."""
        found: list[str] = []
        await self.store.snapshot(then=lambda snap: found.extend(compare(ledger, snap, self.lanes, self.claiming)))
        return found

    async def cancelled(self, job_id: int) -> None:
        """Nothing to tell: a job running here is stopped here."""

    # start-up -----------------------------------------------------------------------------------

    async def load(self, ledger: Ledger, leased: list[Job]) -> int:
        """Memory rebuilt from the table (rebuild.py), every waiting job in its lane."""
        return await rebuild(self.store, ledger, self.lanes, self.clock, leased)
