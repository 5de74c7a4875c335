"""The dispatcher: the one owner of which job runs next, over a work source.

It writes every state change through the store before anyone is told of it, starts
jobs that have an in-process handler (``executor``), and hands the others to
external workers that lease them (``leases``); what becomes of an attempt is the
``outcomes`` desk's. Every committed change becomes memory state through the
``ledger``, in the store's post-commit hook. Where the waiting jobs are and how the
best of them are taken is the work source's (source.py): memory's lanes on one
appliance, the database's claims on a node of a cluster; everything here is the
same over either.

Changes that give it work wake its loop; the only timer is the next moment
something is due (a delayed job, a group key's pause or rate window running out).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..clock import Clock
from ..events import EventBus
from ..metrics import Metrics
from ..model import Job, NewJob
from ..store import Added, Store
from ..telemetry import NO_TRACING, Tracing
from ..workers.registry import HandlerRegistry
from .executor import JobExecutor
from .leases import LeaseDesk
from .ledger import Ledger
from .outcomes import Outcomes
from .policies import GroupPolicies
from .rebuild import resync
from .runtime import ActiveJob, QueueRuntime
from .source import WorkSource
from .timers import Timer
from .wakeup import Wakeup

log = logging.getLogger("queueapp.dispatcher")

STORE_RETRY_MS = 1000  # after the store refused a write, wait this long before trying again
# Due delayed jobs moved to waiting by one statement on the loop's thread: after a long
# stop a hundred thousand may be due at once.
PROMOTE_BATCH = 10_000


class Dispatcher:
    def __init__(
        self, store: Store, registry: HandlerRegistry, clock: Clock, source: WorkSource, *,
        policies: GroupPolicies, wakeup: Wakeup, concurrency: int | Callable[[str], int] = 5,
        default_lease_ms: int = 30_000, tracing: Tracing = NO_TRACING,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.source = source
        self.wakeup = wakeup
        # in-process jobs at once, per queue
        concurrency_for = concurrency if callable(concurrency) else (lambda _q: concurrency)
        self.ledger = Ledger(clock, source, policies, wakeup, self, concurrency_for, tracing)
        self.leases = LeaseDesk(store, self.ledger, source, clock, default_lease_ms)
        self.outcomes = Outcomes(store, self.ledger, source, clock, self.leases)
        self.executor = JobExecutor(registry, self.outcomes, tracing.attempt_context)
        registry.on_change(self._handlers_changed)
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._held_until = 0  # after a store failure, start nothing before this time

    # what others read ------------------------------------------------------------

    @property
    def queues(self) -> dict[str, QueueRuntime]:
        return self.ledger.queues

    @property
    def active(self) -> dict[int, ActiveJob]:
        """The jobs running in this process's memory."""
        return self.ledger.active

    @property
    def metrics(self) -> Metrics:
        return self.ledger.metrics

    @property
    def events(self) -> EventBus:
        return self.ledger.events

    # what the ledger tells (ledger.Told) -------------------------------------------------

    def repair(self, job_id: int) -> None:
        self._spawn(resync(self.store, self.ledger, job_id))

    def queue_created(self, name: str) -> None:
        self.leases.wake_idle(name)

    def ended(self, job: Job) -> None:
        self.outcomes.settle_ended(job)

    # start and stop ------------------------------------------------------------

    async def start(self, leased: list[Job] | None = None) -> None:
        """Fill memory from the store and start the loop. ``leased``: jobs whose
        external lease is still valid across the restart."""
        pending = await self.source.load(self.ledger, leased or [])
        self.wakeup.wake()
        self._loop_task = asyncio.create_task(self._loop(), name="queueapp-dispatcher")
        log.info("dispatcher started", extra={"event": "dispatcher.started", "pending": pending,
                                              "leases_kept": len(leased or [])})

    async def stop(self, grace_s: float = 10.0) -> None:
        """Start nothing new; give running handlers ``grace_s`` to finish, then stop
        them: their jobs go back in line with the attempt not counted. Leases of
        external workers are left as they are: a worker may still finish its job
        after the restart, and the lease reaper returns it if not."""
        self._stopping = True
        self.leases.close()
        self.wakeup.wake()
        if self._loop_task is not None:
            await self._loop_task
        tasks = [a.task for a in self.active.values() if a.task is not None]
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        if self._background:
            await asyncio.wait(list(self._background))
        self.wakeup.cancel()

    def _handlers_changed(self) -> None:
        self.source.handlers_changed()
        self.wakeup.wake()

    # queues ----------------------------------------------------------------------

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.store.set_paused(queue, paused, self.clock.now_ms())
        q = self.ledger.queue(queue)
        q.paused = paused
        if not paused:
            q.wake_waiters()
            self.wakeup.wake()
            await self.source.resumed(queue)
        log.info(
            "queue paused" if paused else "queue resumed",
            extra={"event": "queue.paused" if paused else "queue.resumed", "queue": queue},
        )

    # enqueue ---------------------------------------------------------------------

    async def add(self, jobs: list[NewJob]) -> Sequence[Added]:
        now = self.clock.now_ms()
        await self._ensure_queues({j.queue for j in jobs}, now)
        return await self.store.add_jobs(jobs, now, then=self.ledger.accepted)

    async def add_scheduled(
        self, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int
    ) -> tuple[list[Added], bool] | None:
        """A schedule's run: enqueue and advance the schedule in one transaction
        (None: it was not this process's to fire)."""
        now = self.clock.now_ms()
        await self._ensure_queues({queue}, now)
        return await self.source.fire_schedule(queue, name, expected_next, jobs, next_run_at, now,
                                               then=self.ledger.fired)

    async def run_schedule_now(self, queue: str, name: str, job: NewJob) -> tuple[list[Added], bool] | None:
        """One run of a schedule besides its rule, recorded as its last run (None:
        no such schedule)."""
        now = self.clock.now_ms()
        await self._ensure_queues({queue}, now)
        return await self.store.run_schedule_now(queue, name, job, now, then=self.ledger.fired)

    async def _ensure_queues(self, queues: set[str], now: int) -> None:
        for queue in queues - self.queues.keys():
            await self.store.ensure_queue(queue, now)

    # the loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        event = self.wakeup.event
        while not self._stopping:
            everything = False
            poll_ms = self.source.poll_ms
            if poll_ms is None:
                await event.wait()
            else:
                try:
                    await asyncio.wait_for(event.wait(), poll_ms / 1000)
                except TimeoutError:
                    everything = True  # nobody woke it: look at every queue
            event.clear()
            if self._stopping:
                return
            try:
                self._promote_due()
                for q in self.source.queues_to_look(self.ledger.queues, everything):
                    self._start_in_process(q)
                told = self.source.after_turn()
                if told is not None:
                    self._spawn(told)
            except Exception:  # never let one bad tick stop the dispatcher
                log.exception("dispatcher tick failed", extra={"event": "dispatcher.error"})

    def _retry_soon(self) -> None:
        """After a store failure: hold dispatching for a moment, then look again."""
        self._held_until = self.clock.now_ms() + STORE_RETRY_MS
        self.wakeup.wake_later(STORE_RETRY_MS)

    def _promote_due(self) -> None:
        now = self.clock.now_ms()
        self.source.reopen_due(now)
        due = self.ledger.timers.pop_due(now, PROMOTE_BATCH)
        if due:
            by_id = {t.job_id: t for t in due}
            self.ledger.in_flight.update(by_id)
            self._spawn(self._promote(by_id))
        if len(due) == PROMOTE_BATCH:
            self.wakeup.wake()  # more are due: the next batch when the loop turns
        self.wakeup.arm(self.ledger.next_wake())

    async def _promote(self, due: dict[int, Timer]) -> None:
        try:
            await self.store.promote_jobs([(t.job_id, t.run_at) for t in due.values()], self.clock.now_ms(),
                                          then=lambda ids: self.ledger.promoted(due, ids))
        except Exception:
            # Nothing changed in the store: keep the timers, and try again shortly.
            self.ledger.in_flight.difference_update(due)
            for t in due.values():
                self.ledger.timers.push(t)
            self._retry_soon()
            log.exception("promotion failed", extra={"event": "dispatcher.promote_failed"})

    def _start_in_process(self, q: QueueRuntime) -> None:
        free = q.concurrency - q.running
        if q.paused or free <= 0 or self._held_until > self.clock.now_ms():
            return
        claim = self.source.claim_for_handlers(q, free, self._started_here)
        if claim is not None:
            self._spawn(self._claiming(q, claim))

    def _started_here(self, jobs: list[Job]) -> list[ActiveJob]:
        """A claim for this process's handlers committed: each job that started runs."""
        by_id = {job.id: job for job in jobs}
        actives = self.ledger.started(jobs, in_memory=True)
        for active in actives:
            active.task = asyncio.create_task(self.executor.run(by_id[active.id]))
        return actives

    async def _claiming(self, q: QueueRuntime, claim: Any) -> None:
        try:
            await claim
        except Exception:
            # Nothing was claimed: the work source put the jobs back, and dispatching
            # pauses briefly rather than spin against a store that cannot write.
            self._retry_soon()
            log.exception("claim failed", extra={"event": "dispatcher.claim_failed", "queue": q.name})

    def cancelled_elsewhere(self, job_id: int) -> None:
        """Another node cancelled a job this process's handler runs: stop it."""
        active = self.ledger.active.get(job_id)
        if active is not None and active.task is not None:
            self.ledger.lost(job_id, active.token)
            active.task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # reads -------------------------------------------------------------------------------

    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        """(active, waiting) jobs of each group key of ``queue`` that has some."""
        return await self.source.key_counts(queue)

    async def audit(self) -> list[str]:
        """Differences between memory and the table (none, unless there is a bug)."""
        return await self.source.audit(self.ledger)
