"""The dispatcher: the one owner of which job runs next.

It keeps the ordering of unfinished jobs in memory (``lanes``), writes every state
change through the store before anyone is told of it, starts jobs that have an
in-process handler (``executor``), and hands the others to external workers that
lease them (``leases``). Every committed change becomes memory state through the
``ledger``, in the store's post-commit hook.

Enqueues and finished jobs wake its loop; the only timer is the due time of the
next delayed job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..clock import Clock
from ..flow import Aging, GroupLimits
from ..model import Job, NewJob
from ..store import Added, Store
from ..workers.registry import HandlerRegistry
from .audit import compare
from .executor import JobExecutor
from .leases import LeaseDesk
from .ledger import ActiveJob, Ledger, QueueRuntime
from .order import Taken
from .outcomes import Outcomes
from .rebuild import rebuild, resync
from .timers import Timer
from .verbs import Verbs

log = logging.getLogger("queueapp.dispatcher")

STORE_RETRY_MS = 1000  # after the store refused a write, wait this long before trying again
# Due delayed jobs moved to waiting by one statement on the loop's thread: after a long
# stop a hundred thousand may be due at once.
PROMOTE_BATCH = 10_000


class Dispatcher(Verbs):
    # What it is made of (a node of a cluster brings its own, see cluster/).
    ledger_kind: type[Ledger] = Ledger
    lease_kind: type[LeaseDesk] = LeaseDesk
    outcome_kind: type[Outcomes] = Outcomes

    def __init__(
        self, store: Store, registry: HandlerRegistry, clock: Clock, *,
        concurrency: int | Callable[[str], int] = 5, default_lease_ms: int = 30_000,
        group_limits: Callable[[str], GroupLimits] | None = None, aging: Callable[[str], Aging | None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        # in-process jobs at once, per queue
        concurrency_for = concurrency if callable(concurrency) else (lambda _q: concurrency)
        self.ledger = self.ledger_kind(clock, registry.__contains__, concurrency_for, group_limits, aging)
        self.ledger.wake = self._wake_soon
        self.ledger.timer_moved = self._timer_moved
        self.ledger.repair = lambda job_id: self._spawn(resync(store, self.ledger, job_id))
        self.leases = self.lease_kind(store, self.ledger, clock, default_lease_ms)
        self.ledger.queue_created = self.leases.wake_idle
        self.outcomes = self.outcome_kind(store, self.ledger, clock, self.leases)
        self.ledger.ended = self.outcomes.settle_ended
        self.executor = JobExecutor(registry, self.outcomes)
        registry.on_change(self._handlers_changed)
        self._wake = asyncio.Event()
        self._timer_handle: asyncio.TimerHandle | None = None
        self._armed_at: int | None = None
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
        return self.ledger.active

    @property
    def metrics(self):  # noqa: ANN201 - metrics.Metrics
        return self.ledger.metrics

    @property
    def events(self):  # noqa: ANN201 - events.EventBus
        return self.ledger.events

    @property
    def lease_granted(self) -> asyncio.Event:
        return self.ledger.lease_granted

    @property
    def default_lease_ms(self) -> int:
        return self.leases.default_lease_ms

    # start and stop ------------------------------------------------------------

    async def start(self, leased: list[Job] | None = None) -> None:
        """Rebuild the in-memory state from the store and start the loop. ``leased``:
        jobs whose external lease is still valid across the restart."""
        pending = await rebuild(self.store, self.ledger, self.clock, leased or [])
        self._wake.set()
        self._loop_task = asyncio.create_task(self._loop(), name="queueapp-dispatcher")
        log.info("dispatcher started", extra={"event": "dispatcher.started", "pending": pending,
                                              "leases_kept": len(leased or [])})

    def close_leases(self) -> None:
        """First step of a stop: open long polls return, no new lease is granted."""
        self.leases.close()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Start nothing new; give running handlers ``grace_s`` to finish, then stop
        them: their jobs go back in line with the attempt not counted. Leases of
        external workers are left as they are: a worker may still finish its job
        after the restart, and the lease reaper returns it if not."""
        self._stopping = True
        self.close_leases()
        self._wake.set()
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
        if self._timer_handle is not None:
            self._timer_handle.cancel()

    def _handlers_changed(self) -> None:
        for q in self.queues.values():
            q.lanes.rebuild()
        self._wake_soon()

    # queues ----------------------------------------------------------------------

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.store.set_paused(queue, paused, self.clock.now_ms())
        q = self.ledger.queue(queue)
        q.paused = paused
        if not paused:
            q.wake_waiters()
            self._wake.set()
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
        """A schedule's run: enqueue and advance the schedule in one transaction."""
        now = self.clock.now_ms()
        await self._ensure_queues({queue}, now)
        return await self.store.fire_schedule(queue, name, expected_next, jobs, next_run_at, now,
                                              then=self.ledger.fired)

    async def _ensure_queues(self, queues: set[str], now: int) -> None:
        for queue in queues - self.queues.keys():
            await self.store.ensure_queue(queue, now)

    # the loop ----------------------------------------------------------------------

    def _wake_soon(self) -> None:
        self._wake.set()

    def _timer_moved(self, due: int) -> None:
        if self._armed_at is None or due < self._armed_at:
            self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._promote_due()
                for q in self.queues.values():
                    self._start_in_process(q)
            except Exception:  # never let one bad tick stop the dispatcher
                log.exception("dispatcher tick failed", extra={"event": "dispatcher.error"})

    def _arm(self, due: int | None) -> None:
        """Set the one timer to the next delayed job's due time."""
        if due == self._armed_at:
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self._armed_at = due
        if due is not None:
            delay = max(0.0, (due - self.clock.now_ms()) / 1000)
            self._timer_handle = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _retry_soon(self) -> None:
        """After a store failure: hold dispatching for a moment, then look again."""
        self._held_until = self.clock.now_ms() + STORE_RETRY_MS
        asyncio.get_running_loop().call_later(STORE_RETRY_MS / 1000, self._wake.set)

    def _on_timer(self) -> None:
        self._timer_handle = None
        self._armed_at = None
        self._wake.set()

    def _promote_due(self) -> None:
        now = self.clock.now_ms()
        self.ledger.reopen_due(now)
        due = self.ledger.timers.pop_due(now, PROMOTE_BATCH)
        if due:
            by_id = {t.job_id: t for t in due}
            self.ledger.in_flight.update(by_id)
            self._spawn(self._promote(by_id))
        if len(due) == PROMOTE_BATCH:
            self._wake_soon()  # more are due: the next batch when the loop turns
        self._arm(self.ledger.next_wake())

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
        taken = q.lanes.take(free, local=True)
        if taken:
            q.running += len(taken.entries)
            self.ledger.in_flight.update(taken.ids)
            self.ledger.claiming_here.update(dict.fromkeys(taken.ids, q.name))
            self._spawn(self._claim_and_run(q, taken))

    async def _claim_and_run(self, q: QueueRuntime, taken: Taken) -> None:
        ids = taken.ids

        def started(jobs: list[Job]) -> None:
            by_id = {job.id: job for job in jobs}
            actives = self.ledger.claimed(taken, jobs)
            q.running -= len(ids) - len(actives)  # no longer waiting (cancelled meanwhile), or expired
            for active in actives:
                active.task = asyncio.create_task(self.executor.run(by_id[active.id]))
            if len(actives) < len(ids):
                self._wake.set()

        try:
            await self.store.claim_jobs(ids, taken.now, None, taken_at=taken.due_times, then=started)
        except Exception:
            # Nothing was claimed: the jobs go back in line, and dispatching pauses
            # briefly rather than spin against a store that cannot write.
            q.running -= len(ids)
            self.ledger.in_flight.difference_update(ids)
            for job_id in ids:
                self.ledger.claiming_here.pop(job_id, None)
            taken.put_back()
            self._retry_soon()
            log.exception("claim failed", extra={"event": "dispatcher.claim_failed", "queue": q.name})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        """(active, waiting) jobs of each group key of ``queue`` that has some (and
        its policy in memory up to date)."""
        q = self.queues.get(queue)
        lines = {} if q is None else q.lanes.lines
        return {key: (line.gate.busy, len(line)) for key, line in lines.items() if key is not None}

    async def audit(self) -> list[str]:
        """Differences between memory and the table (none, unless there is a bug)."""
        found: list[str] = []
        await self.store.snapshot(then=lambda snap: found.extend(compare(self.ledger, snap)))
        return found
