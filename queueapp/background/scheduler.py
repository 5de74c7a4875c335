"""The scheduler: recurring schedules that survive restarts.

One loop sleeps until the nearest ``next_run_at`` (no polling tick) and fires what
is due. Each firing enqueues the run's job and advances the schedule in one
transaction, guarded by the ``next_run_at`` it read, and the job's idempotency key
is "<schedule>@<fire time>": a crash between the two, a restart, or a second tick
can neither lose nor double a run.

Runs missed while the appliance was down follow the schedule's ``missed`` policy:
``skip`` (default) runs once now if any was missed, then continues on the rule;
``all`` runs every missed run now, at most ``catch_up_limit`` of them (the latest).
With ``overlap`` off, a run is skipped while the previous run's job is unfinished.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from dataclasses import replace

from ..clock import Clock, to_iso
from ..cron import fire_times, next_cron_ms, next_every_ms, parse_zone
from ..dispatch import Dispatcher
from ..enqueue import JobBuilder
from ..errors import NotFound, StoreUnavailable
from ..model import Job, NewJob, Schedule
from ..options import JobOptions
from ..store import Store
from ..telemetry import NO_TRACING, TraceContext, Tracing, with_context

log = logging.getLogger("queueapp.scheduler")

CATCH_UP_LIMIT = 100
RETRY_MS = 5000  # after a firing failed (store unavailable), try again this much later


def next_after(schedule: Schedule, after_ms: int) -> int:
    if schedule.cron:
        return next_cron_ms(schedule.cron, parse_zone(schedule.timezone), after_ms)
    assert schedule.every_ms is not None
    return next_every_ms(schedule.anchor_at, schedule.every_ms, after_ms)


class Scheduler:
    def __init__(
        self, store: Store, dispatcher: Dispatcher, clock: Clock, builder: JobBuilder,
        catch_up_limit: int = CATCH_UP_LIMIT, tracing: Tracing = NO_TRACING,
    ) -> None:
        self.store = store
        self.tracing = tracing  # each run begins a trace of its own, when on
        self.dispatcher = dispatcher
        self.clock = clock
        self.builder = builder
        self.catch_up_limit = catch_up_limit
        # (next_run_at, queue, name); an entry is live while it matches _due[(queue, name)]
        self._heap: list[tuple[int, str, str]] = []
        self._due: dict[tuple[str, str], int] = {}
        self._wake = asyncio.Event()
        self._retry_after = 0  # no firing before this time (set after a store failure)
        self._retry_at: dict[tuple[str, str], int] = {}  # one schedule's own pause after it failed

    # start-up ------------------------------------------------------------------------

    async def start(self) -> None:
        now = self.clock.now_ms()
        for schedule in await self.store.list_schedules(None):
            if not schedule.enabled:
                continue
            if schedule.next_run_at is None:  # seeded by a migration: first run from now
                schedule.next_run_at = next_after(schedule, now)
                await self.store.init_schedule_next_run(schedule.queue, schedule.name, schedule.next_run_at)
            self._track(schedule)

    async def reload(self) -> None:
        """Follow the schedules as stored (in a cluster, any node may have changed
        them); a schedule waiting after a failure keeps waiting."""
        stored = await self.store.list_schedules(None)
        retry_at, self._retry_at = self._retry_at, {}
        self._heap.clear()
        self._due.clear()
        for schedule in stored:
            if schedule.enabled and schedule.next_run_at is not None:
                key = (schedule.queue, schedule.name)
                self._track_due(*key, schedule.next_run_at, retry_at.get(key) or None)

    def _track_due(self, queue: str, name: str, due: int, retry_at: int | None = None) -> None:
        """Keep following a schedule due at ``due``, looked at again at ``retry_at``."""
        self._due[(queue, name)] = due
        self._retry_at[(queue, name)] = retry_at or 0
        heapq.heappush(self._heap, (max(due, retry_at or 0), queue, name))

    def _track(self, schedule: Schedule) -> None:
        key = (schedule.queue, schedule.name)
        self._retry_at.pop(key, None)
        if schedule.enabled and schedule.next_run_at is not None:
            self._due[key] = schedule.next_run_at
            heapq.heappush(self._heap, (schedule.next_run_at, *key))
        else:
            self._due.pop(key, None)
        self._wake.set()

    # changes -------------------------------------------------------------------------

    async def upsert(self, schedule: Schedule) -> Schedule:
        """Store (or replace) a schedule; its first run is the rule's next after now."""
        now = self.clock.now_ms()
        schedule = replace(schedule, anchor_at=now)
        schedule.next_run_at = next_after(schedule, now)
        stored = await self.store.upsert_schedule(schedule, now)
        self._track(stored)
        log.info("schedule saved", extra={"event": "schedule.saved", "queue": stored.queue,
                                          "schedule": stored.name, "next": to_iso(stored.next_run_at)})
        return stored

    async def remove(self, queue: str, name: str) -> None:
        if not await self.store.delete_schedule(queue, name):
            raise NotFound(f"no schedule {name!r} in queue {queue!r}")
        self._due.pop((queue, name), None)

    async def set_enabled(self, queue: str, name: str, enabled: bool) -> Schedule:
        current = await self.store.get_schedule(queue, name)
        if current is None:
            raise NotFound(f"no schedule {name!r} in queue {queue!r}")
        now = self.clock.now_ms()
        next_run = next_after(current, now) if enabled else None
        stored = await self.store.set_schedule_enabled(queue, name, enabled, next_run, now)
        if stored is None:
            raise NotFound(f"no schedule {name!r} in queue {queue!r}")
        self._track(stored)
        return stored

    async def run_now(self, queue: str, name: str) -> Job:
        """One run of the schedule now, besides its rule (which goes on unchanged),
        recorded as its last run. Its job's key is ``<schedule>@<now>`` like every
        run's, so it is told apart."""
        schedule = await self.store.get_schedule(queue, name)
        if schedule is None:
            raise NotFound(f"no schedule {name!r} in queue {queue!r}")
        sending = self.tracing.scheduling(queue, name)
        [job] = self._traced([self._job_for(schedule, self.clock.now_ms())], sending.context)
        ran = await self.dispatcher.run_schedule_now(queue, name, job)
        sending.done(0 if ran is None else 1)
        if ran is None:
            raise NotFound(f"no schedule {name!r} in queue {queue!r}")
        return ran[0][0].job

    # firing ----------------------------------------------------------------------------

    def queues(self) -> set[str]:
        """Queues with an enabled schedule."""
        return {queue for queue, _ in self._due}

    def next_due(self) -> int | None:
        while self._heap:
            at, queue, name = self._heap[0]
            due = self._due.get((queue, name))
            if due is not None and at == max(due, self._retry_at.get((queue, name), 0)):
                return at
            heapq.heappop(self._heap)
        return None

    async def tick(self, now: int | None = None) -> int:
        """Fire every schedule due at ``now``; returns the number of jobs enqueued."""
        now = self.clock.now_ms() if now is None else now
        enqueued = 0
        while (due := self.next_due()) is not None and due <= now:
            _, queue, name = heapq.heappop(self._heap)
            due = self._due.pop((queue, name))
            self._retry_at.pop((queue, name), None)
            try:
                enqueued += await self._fire(queue, name, due, now)
            except StoreUnavailable:
                # The store cannot write: nothing can fire; all wait and try again.
                log.exception("schedule failed to fire; trying again shortly",
                              extra={"event": "schedule.error", "queue": queue, "schedule": name})
                self._track_due(queue, name, due)
                self._retry_after = now + RETRY_MS
                break
            except Exception:
                # One broken schedule (its job no longer valid, a bug) must not stop the
                # others: it alone tries again later. The store still holds its old
                # next_run_at, so the guarded firing picks up where it left off.
                log.exception("schedule failed to fire; it alone tries again later",
                              extra={"event": "schedule.error", "queue": queue, "schedule": name})
                self._track_due(queue, name, due, retry_at=now + RETRY_MS)
        return enqueued

    async def _fire(self, queue: str, name: str, due: int, now: int) -> int:
        schedule = await self.store.get_schedule(queue, name)
        if schedule is None or not schedule.enabled or schedule.next_run_at != due:
            if schedule is not None and schedule.enabled and schedule.next_run_at is not None:
                self._track(schedule)  # someone else advanced it; follow the store
            return 0
        zone = parse_zone(schedule.timezone)
        times, following = fire_times(
            cron=schedule.cron, zone=zone, every_ms=schedule.every_ms, anchor_ms=schedule.anchor_at,
            from_ms=due, until_ms=now, limit=self.catch_up_limit,
        )
        if len(times) > 1:
            log.warning("schedule missed runs", extra={
                "event": "schedule.missed", "queue": queue, "schedule": name,
                "policy": schedule.missed, "missed": len(times)})
        if schedule.missed == "skip":
            times = times[-1:]
        sending = self.tracing.scheduling(queue, name)
        jobs = self._traced([self._job_for(schedule, at) for at in times], sending.context)
        outcome = await self.dispatcher.add_scheduled(queue, name, due, jobs, following)
        sending.done(0 if outcome is None else sum(1 for a in outcome[0] if a.created))
        if outcome is None:  # advanced elsewhere meanwhile
            refreshed = await self.store.get_schedule(queue, name)
            if refreshed is not None:
                self._track(refreshed)
            return 0
        added, skipped = outcome
        if skipped:
            log.info("previous run unfinished; run skipped", extra={
                "event": "schedule.overlap_skipped", "queue": queue, "schedule": name})
        self._track(replace(schedule, next_run_at=following))
        return sum(1 for a in added if a.created)

    @staticmethod
    def _traced(jobs: list[NewJob], context: TraceContext | None) -> list[NewJob]:
        return jobs if context is None else with_context(jobs, context)

    def _job_for(self, schedule: Schedule, fire_at: int) -> NewJob:
        options = JobOptions.model_validate(schedule.options)
        options = options.model_copy(update={"jobId": f"{schedule.name}@{to_iso(fire_at)}", "delay": 0})
        return self.builder.build(schedule.job_name, schedule.data, options, None, schedule.queue)

    # the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            due = self.next_due()
            if due is None:
                await self._wake.wait()
                continue
            delay = (max(due, self._retry_after) - self.clock.now_ms()) / 1000
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                    continue  # something changed: look again
                except TimeoutError:
                    pass
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed", extra={"event": "schedule.error"})
