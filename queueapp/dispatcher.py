"""The dispatcher: the one owner of which job runs next.

It keeps the ordering of unfinished jobs in memory (``heaps``), writes every state
change through the store before anyone is told of it, starts jobs that have an
in-process handler, and hands the others to external workers that lease them.

Callers (the service facade, the API, the scheduler, the monitor) go through it;
it calls the store. Enqueues and finished jobs wake its loop; the only timer is the
due time of the next delayed job.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, to_iso
from .errors import Conflict, NotFound
from .events import EventBus, JobEvent
from .heaps import Lane, Taken, Timer, TimerHeap, pack, take_best
from .metrics import PROCESSING_WINDOW_MS, Metrics
from .model import Job, JobState, NewJob
from .retry import next_attempt
from .store import Added, Change, PendingJob, Store
from .workers.registry import HandlerRegistry
from .workers.runner import JobRunner

log = logging.getLogger("queueapp.dispatcher")

STORE_RETRY_MS = 1000  # after the store refused a write, wait this long before trying again


@dataclass(slots=True)
class ActiveJob:
    """A running job, as far as the dispatcher needs to know it."""

    id: int
    queue: str
    name: str
    token: str
    started_at: int
    heartbeat_at: int
    lease_expires_at: int | None  # None: runs in this process
    task: asyncio.Task[None] | None = None


@dataclass(eq=False, slots=True)
class QueueRuntime:
    name: str
    concurrency: int
    paused: bool = False
    running: int = 0  # in-process jobs claimed or running
    lanes: dict[str, Lane] = field(default_factory=dict)
    # Long-polling leases wait on these; any new waiting job resolves them all.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def lane(self, name: str) -> Lane:
        found = self.lanes.get(name)
        if found is None:
            found = self.lanes[name] = Lane(self.name, name)
        return found

    def wake_waiters(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


def fail_plan(retry: bool = True, retry_after_ms: int | None = None):  # noqa: ANN201 - a FailPlan
    """A store FailPlan that applies the job's retry policy (or fails for good).
    ``retry_after_ms`` replaces the backoff when the worker knows better (HTTP 429)."""

    def plan(job: Job, now: int) -> tuple[JobState, int]:
        state, run_at = next_attempt(
            job.name, job.options, job.attempts, job.attempts_made, now, retry
        )
        if retry_after_ms is not None and state != "failed":
            return (JobState.DELAYED, now + retry_after_ms) if retry_after_ms else (JobState.WAITING, now)
        return JobState(state), run_at

    return plan


class Dispatcher:
    def __init__(
        self,
        store: Store,
        registry: HandlerRegistry,
        clock: Clock,
        *,
        concurrency: int | Callable[[str], int] = 5,
        default_lease_ms: int = 30_000,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        # in-process jobs at once, per queue
        self.concurrency_for = concurrency if callable(concurrency) else (lambda _q: concurrency)
        self.default_lease_ms = default_lease_ms
        self.metrics = Metrics()
        self.events = EventBus()
        self.lease_granted = asyncio.Event()
        self.queues: dict[str, QueueRuntime] = {}
        self.active: dict[int, ActiveJob] = {}
        self.timers = TimerHeap()
        self.runner = JobRunner(self)
        self._wake = asyncio.Event()
        self._timer_handle: asyncio.TimerHandle | None = None
        self._armed_at: int | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._held_until = 0  # after a store failure, start nothing before this time

    # start and stop ------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the in-memory state from the store and start the loop."""
        for settings in await self.store.queue_settings():
            q = self.queue(settings.name)
            q.paused = settings.paused
            if settings.concurrency:
                q.concurrency = settings.concurrency
        for queue, counts in (await self.store.count_states()).items():
            self.queue(queue)
            self.metrics.of(queue).counts.update(counts)
        now = self.clock.now_ms()
        samples = await self.store.finished_since(now - PROCESSING_WINDOW_MS)
        for sample in sorted(samples, key=lambda s: s.finished_at):
            took = None if sample.started_at is None else sample.finished_at - sample.started_at
            self.metrics.of(sample.queue).add_finish(sample.finished_at, took, sample.state is JobState.FAILED)
        pending = await self._load_pending()
        self._loop_task = asyncio.create_task(self._loop(), name="queueapp-dispatcher")
        log.info("dispatcher started", extra={"event": "dispatcher.started", "pending": pending})

    async def _load_pending(self) -> int:
        """Fill the lanes and the timer heap from the store in batches: keys are
        appended and each heap is built once at the end (heapify is linear; a
        million heappush calls are not)."""
        count = 0
        timers: list[Timer] = []
        async for batch in self.store.pending_jobs():
            for p in batch:
                lane = self.queue(p.queue).lane(p.name)
                if p.state == "delayed":
                    timers.append(Timer(p.run_at, p.id, p.priority, lane))
                else:
                    lane.heap.append(pack(p.priority, p.run_at, p.id))
            count += len(batch)
        for q in self.queues.values():
            for lane in q.lanes.values():
                heapq.heapify(lane.heap)
        self.timers.extend(timers)
        self._wake.set()
        return count

    async def stop(self, grace_s: float = 10.0) -> None:
        """Start nothing new; give running handlers ``grace_s`` to finish, then cancel
        them (their attempt fails and they retry after the next start)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        for q in self.queues.values():
            q.wake_waiters()
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

    # queues ----------------------------------------------------------------------

    def queue(self, name: str) -> QueueRuntime:
        found = self.queues.get(name)
        if found is None:
            found = self.queues[name] = QueueRuntime(name, self.concurrency_for(name))
            self.metrics.of(name)
        return found

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.store.set_paused(queue, paused, self.clock.now_ms())
        q = self.queue(queue)
        q.paused = paused
        if not paused:
            q.wake_waiters()
            self._wake.set()
        log.info(
            "queue paused" if paused else "queue resumed",
            extra={"event": "queue.paused" if paused else "queue.resumed", "queue": queue},
        )

    # enqueue ---------------------------------------------------------------------

    async def add(self, jobs: list[NewJob]) -> list[Added]:
        now = self.clock.now_ms()
        await self._ensure_queues({j.queue for j in jobs}, now)
        added = await self.store.add_jobs(jobs, now)
        self._accept(added)
        return added

    async def add_scheduled(
        self, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int
    ) -> tuple[list[Added], bool] | None:
        """A schedule's run: enqueue and advance the schedule in one transaction."""
        now = self.clock.now_ms()
        await self._ensure_queues({queue}, now)
        outcome = await self.store.fire_schedule(queue, name, expected_next, jobs, next_run_at, now)
        if outcome is not None:
            self._accept(outcome[0])
        return outcome

    async def _ensure_queues(self, queues: set[str], now: int) -> None:
        for queue in queues - self.queues.keys():
            await self.store.ensure_queue(queue, now)

    def _accept(self, added: list[Added]) -> None:
        """Account for committed enqueues and put the new jobs in order."""
        for a in added:
            if a.created:
                job = a.job
                m = self.metrics.of(job.queue)
                m.move(None, job.state)
                m.added_total += 1
                self._emit("added", job.id, job.queue, job.name, state=str(job.state),
                           priority=job.priority)
                self._place_job(job)

    def _place_job(self, job: Job) -> None:
        self._place(PendingJob(job.id, job.queue, job.name, job.state, job.priority, job.run_at))

    def _place(self, p: PendingJob) -> None:
        """Put an unfinished job where it will be found: its lane, or the timer heap."""
        q = self.queue(p.queue)
        lane = q.lane(p.name)
        if p.state == JobState.DELAYED:
            self.timers.push(Timer(p.run_at, p.id, p.priority, lane))
            if self._armed_at is None or p.run_at < self._armed_at:
                self._wake.set()
            return
        lane.push(pack(p.priority, p.run_at, p.id))
        if p.name in self.registry:
            self._wake.set()
        else:
            q.wake_waiters()

    def _unplace(self, job: Job, prior: JobState) -> None:
        lane = self.queue(job.queue).lane(job.name)
        if prior is JobState.WAITING:
            lane.kill(pack(job.priority, job.run_at, job.id))
        elif prior is JobState.DELAYED:
            self.timers.kill(job.run_at, job.id)

    # the loop ----------------------------------------------------------------------

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
        due = self.timers.pop_due(self.clock.now_ms())
        if due:
            self._spawn(self._promote(due))
        self._arm(self.timers.next_due())

    async def _promote(self, due: list[Timer]) -> None:
        by_id = {t.job_id: t for t in due}
        try:
            promoted = await self.store.promote_jobs(list(by_id), self.clock.now_ms())
        except Exception:
            # Nothing changed in the store: keep the timers, and try again shortly.
            for t in due:
                self.timers.push(t)
            self._retry_soon()
            log.exception("promotion failed", extra={"event": "dispatcher.promote_failed"})
            return
        for job_id in promoted:
            t = by_id[job_id]
            self.metrics.of(t.lane.queue).move(JobState.DELAYED, JobState.WAITING)
            self._emit("waiting", job_id, t.lane.queue, t.lane.name)
            self._place(PendingJob(job_id, t.lane.queue, t.lane.name, JobState.WAITING, t.priority, t.run_at))

    def _start_in_process(self, q: QueueRuntime) -> None:
        free = q.concurrency - q.running
        if q.paused or free <= 0 or self._held_until > self.clock.now_ms():
            return
        lanes = [lane for name, lane in q.lanes.items() if name in self.registry and lane.heap]
        if not lanes:
            return
        taken = take_best(lanes, free)
        if taken:
            q.running += len(taken.entries)
            self._spawn(self._claim_and_run(q, taken))

    async def _claim_and_run(self, q: QueueRuntime, taken: Taken) -> None:
        ids = taken.ids
        try:
            jobs = await self.store.claim_jobs(ids, self.clock.now_ms(), None)
        except Exception:
            # Nothing was claimed: the jobs go back in line, and dispatching pauses
            # briefly rather than spin against a store that cannot write.
            q.running -= len(ids)
            taken.put_back()
            self._retry_soon()
            log.exception("claim failed", extra={"event": "dispatcher.claim_failed", "queue": q.name})
            return
        q.running -= len(ids) - len(jobs)  # ids no longer waiting (cancelled meanwhile)
        for job in jobs:
            active = self._activate(job)
            active.task = asyncio.create_task(self.runner.run(job), name=f"job-{job.id}")
        if len(jobs) < len(ids):
            self._wake.set()

    def _activate(self, job: Job) -> ActiveJob:
        assert job.lease_token is not None and job.started_at is not None
        m = self.metrics.of(job.queue)
        m.move(JobState.WAITING, JobState.ACTIVE)
        m.waiting_time.observe(max(0, job.started_at - job.run_at))
        active = ActiveJob(
            job.id, job.queue, job.name, job.lease_token, job.started_at,
            job.started_at, job.lease_expires_at,
        )
        self.active[job.id] = active
        if active.lease_expires_at is not None:
            self.lease_granted.set()  # the lease reaper may be asleep with no lease out
        self._emit("active", job.id, job.queue, job.name, attempt=job.attempts_made)
        return active

    def _emit(self, kind: str, job_id: int, queue: str, name: str, **detail: Any) -> None:
        if self.events.active:  # building events costs nothing when nobody listens
            self.events.publish(JobEvent(kind, job_id, queue, name, self.clock.now_ms(), detail))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # finishing -------------------------------------------------------------------

    def _told_to_nobody(self, job_id: int) -> bool:
        """An in-process job's outcome is acknowledged to no one: its commit need not
        wait for an fsync (see store/writer.py)."""
        active = self.active.get(job_id)
        return active is not None and active.lease_expires_at is None

    async def complete(self, job_id: int, token: str, result: Any) -> Job:
        change = await self.store.complete_job(
            job_id, token, result, self.clock.now_ms(), durable=not self._told_to_nobody(job_id)
        )
        if change is None:
            raise self._stale(job_id)
        self._finish(change)
        return change.job

    async def fail(
        self, job_id: int, token: str, message: str, retry: bool = True,
        retry_after_ms: int | None = None,
    ) -> Job:
        change = await self.store.fail_job(
            job_id, token, message, self.clock.now_ms(), fail_plan(retry, retry_after_ms),
            durable=not self._told_to_nobody(job_id),
        )
        if change is None:
            raise self._stale(job_id)
        self._finish(change)
        return change.job

    async def release(self, job_id: int, token: str) -> Job:
        """Take a job back from its worker without counting the attempt."""
        change = await self.store.release_job(job_id, token, self.clock.now_ms())
        if change is None:
            raise self._stale(job_id)
        self._finish(change, counted=False)
        return change.job

    def _stale(self, job_id: int) -> Conflict:
        return Conflict(
            f"job {job_id} is not active under that lease token: it finished, was"
            " cancelled, or its lease expired and it was given to another worker"
        )

    def _finish(self, change: Change, counted: bool = True) -> None:
        """Account for an active job's committed move, and free its slot. ``counted``
        False: a released job, back in line without a failed attempt."""
        job = change.job
        active = self.active.pop(job.id, None)
        m = self.metrics.of(job.queue)
        m.move(change.prior, None if change.deleted else job.state)
        for state, n in change.pruned.items():
            m.counts[state] -= n
        if job.state in (JobState.COMPLETED, JobState.FAILED):
            m.record_finish(job)
        elif job.state in (JobState.WAITING, JobState.DELAYED):
            if counted:
                m.retried_total += 1
            self._place_job(job)
        self._emit_finish(job, counted)
        if active is not None and active.lease_expires_at is None:
            self.queue(job.queue).running -= 1
            self._wake.set()
        self._log_finish(job)

    def _emit_finish(self, job: Job, counted: bool) -> None:
        if not counted:
            self._emit("released", job.id, job.queue, job.name)
        elif job.state is JobState.CANCELLED:
            self._emit("cancelled", job.id, job.queue, job.name)
        elif job.state is JobState.COMPLETED:
            self._emit("completed", job.id, job.queue, job.name, result=job.result)
        elif job.state is JobState.FAILED:
            self._emit("failed", job.id, job.queue, job.name, error=job.error)
        else:
            self._emit("retrying", job.id, job.queue, job.name, error=job.error,
                       runAt=to_iso(job.run_at), attempt=job.attempts_made)

    @staticmethod
    def _log_finish(job: Job) -> None:
        if job.state is JobState.FAILED:
            log.warning(
                "job failed for good",
                extra={"event": "job.failed", "job": job.id, "queue": job.queue,
                       "job_name": job.name, "attempts": job.attempts_made, "error": job.error},
            )
        elif job.state in (JobState.WAITING, JobState.DELAYED):
            log.debug("job will retry", extra={"event": "job.retry", "job": job.id})

    async def clean(self, queue: str, state: JobState, grace_ms: int, limit: int | None) -> int:
        """Remove finished jobs of ``state`` older than ``grace_ms``; keeps the counts."""
        removed = await self.store.clean(queue, state, self.clock.now_ms() - grace_ms, limit)
        self.metrics.of(queue).counts[state] -= removed
        return removed

    # cancel and retry --------------------------------------------------------------

    async def cancel(self, job_id: int) -> Job:
        change = await self.store.cancel_job(job_id, self.clock.now_ms())
        if change.prior is JobState.ACTIVE:
            return await self._cancel_active(change.job)
        self._unplace(change.job, change.prior)
        self.metrics.of(change.job.queue).move(change.prior, JobState.CANCELLED)
        self._emit("cancelled", job_id, change.job.queue, change.job.name)
        return change.job

    async def _cancel_active(self, job: Job) -> Job:
        """An active job is asked to stop: an in-process handler is cancelled; an
        external worker finds its lease gone at its next heartbeat or answer."""
        active = self.active.get(job.id)
        if active is None or job.lease_token is None:
            raise Conflict(f"job {job.id} is finishing; try again")
        change = await self.store.fail_job(
            job.id, job.lease_token, "cancelled while running", self.clock.now_ms(),
            lambda j, now: (JobState.CANCELLED, now),
        )
        if change is None:
            raise Conflict(f"job {job.id} finished before it could be cancelled")
        if active.task is not None:
            active.task.cancel()  # delivered at its next await, after _finish below
        self._finish(change)
        return change.job

    async def retry(self, job_id: int) -> Job:
        change = await self.store.retry_job(job_id, self.clock.now_ms())
        job = change.job
        self.metrics.of(job.queue).move(change.prior, JobState.WAITING)
        self._emit("added", job.id, job.queue, job.name, state=str(job.state), retried=True)
        self._place_job(job)
        return job

    # external workers --------------------------------------------------------------

    def _lease_lanes(self, q: QueueRuntime, names: list[str] | None) -> list[Lane]:
        if names is None:
            return [lane for n, lane in q.lanes.items() if n not in self.registry and lane.heap]
        return [q.lanes[n] for n in names if n in q.lanes and q.lanes[n].heap]

    async def lease(
        self, queue: str, names: list[str] | None, max_jobs: int, lease_ms: int, wait_ms: int
    ) -> list[Job]:
        """Up to ``max_jobs`` due jobs, highest priority first; waits up to ``wait_ms``
        for one to arrive when none is there."""
        q = self.queue(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while True:
            if not q.paused and not self._stopping:
                taken = take_best(self._lease_lanes(q, names), max_jobs)
                if taken:
                    try:
                        jobs = await self.store.claim_jobs(taken.ids, self.clock.now_ms(), lease_ms)
                    except Exception:
                        taken.put_back()  # nothing was claimed
                        raise
                    for job in jobs:
                        self._activate(job)
                    if jobs:
                        return jobs
                    continue  # all were cancelled meanwhile: look again
            left = deadline - loop.time()
            if left <= 0 or self._stopping:
                return []
            waiter = loop.create_future()
            q.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return []
            finally:
                if waiter in q.waiters:
                    q.waiters.remove(waiter)

    async def heartbeat(
        self, job_id: int, token: str, progress: Any, lease_ms: int | None
    ) -> Job:
        active = self.active.get(job_id)
        if active is not None and active.lease_expires_at is not None and lease_ms is None:
            lease_ms = self.default_lease_ms
        job = await self.store.heartbeat(job_id, token, self.clock.now_ms(), lease_ms, progress)
        if job is None:
            if await self.store.get_job(job_id) is None:
                raise NotFound(f"no job with id {job_id}")
            raise self._stale(job_id)
        if active is not None:
            active.heartbeat_at = job.heartbeat_at or active.heartbeat_at
            active.lease_expires_at = job.lease_expires_at
        if progress is not None:
            self._emit("progress", job.id, job.queue, job.name, progress=progress)
        return job

    async def rescue_expired(self, message: str) -> list[Change]:
        """Fail the attempt of leased jobs whose lease ran out; see recovery.py."""
        now = self.clock.now_ms()
        expired = [a.id for a in self.active.values()
                   if a.lease_expires_at is not None and a.lease_expires_at < now]
        if not expired:
            return []
        changes = await self.store.rescue_active(now, fail_plan(), message, expired)
        for change in changes:
            self._emit("stalled", change.job.id, change.job.queue, change.job.name)
            self._finish(change)
        return changes

    def next_lease_expiry(self) -> int | None:
        expiries = [a.lease_expires_at for a in self.active.values() if a.lease_expires_at]
        return min(expiries) if expiries else None
