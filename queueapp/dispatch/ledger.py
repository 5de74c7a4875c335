"""The ledger: where a committed change becomes memory state, in one step.

Every method here is called by the store's post-commit hook (``then``), in the event
loop's thread, right after the commit and before the caller is answered, whether or
not the caller still waits. None of them awaits, so nothing can run between the
commit and the bookkeeping, and a cancelled caller cannot skip it. In order, each
applies: the job's place (the work source's lanes, the timer heap, the active
table), the counts, the metric windows, the event, the log line.

Where waiting jobs are kept is the work source's business (source.py): the ledger
tells it of each change. What the ledger tells the dispatcher goes through the
``Told`` protocol given to it. An unexpected exception while applying a change is
logged loudly and the job is handed to ``Told.repair``, which re-reads it from the
store and makes memory follow the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..clock import Clock, to_iso
from ..events import EventBus, JobEvent
from ..flow import GroupPolicy
from ..metrics import Metrics
from ..model import Job, JobState
from ..store import Acted, Added, AddedRun, Change
from ..telemetry import NO_TRACING, Tracing
from .finishing import finish_event, log_finish
from .policies import GroupPolicies
from .runtime import ActiveJob, QueueRuntime
from .timers import Timer, TimerHeap
from .wakeup import Wakeup

log = logging.getLogger("queueapp.ledger")


class Placing(Protocol):
    """What the ledger tells the work source (source.py) of committed changes: where
    waiting jobs come and go, and what runs."""

    counts_in_memory: bool  # memory counts every job (False: counts are read from the database)
    node: str | None  # this process's name among several (None: it serves alone)

    def queue_added(self, q: QueueRuntime) -> None: ...
    def queue_forgotten(self, name: str) -> None: ...
    def forget_empty(self) -> None: ...
    def waiting(self, q: QueueRuntime, ids: Sequence[int], name: str, priority: int, run_at: int, group: str | None,
                by_enqueue: bool) -> None: ...
    def withdrawn(self, q: QueueRuntime, job: Job) -> None: ...
    def ran(self, q: QueueRuntime, group: str | None, delta: int) -> None: ...
    def policy_changed(self, q: QueueRuntime | None, policy: GroupPolicy) -> None: ...
    def next_wake(self) -> int | None: ...


class Running(Protocol):
    """What reads the jobs running in this process's memory."""

    @property
    def active(self) -> dict[int, ActiveJob]: ...


class Told(Protocol):
    """What the ledger tells the dispatcher."""

    def repair(self, job_id: int) -> None:
        """Memory could not follow a committed change of the job: read it again."""

    def queue_created(self, name: str) -> None:
        """A queue came into being in memory."""

    def ended(self, job: Job) -> None:
        """A job ended outside a change that settles its dependents (a claim found it expired)."""


class Ledger:
    def __init__(self, clock: Clock, source: Placing, policies: GroupPolicies, wakeup: Wakeup, told: Told,
                 concurrency_for: Callable[[str], int], tracing: Tracing = NO_TRACING) -> None:
        self.clock = clock
        self.tracing = tracing  # told each start and end of an attempt, when on
        self.source = source
        self.policies = policies
        self.wakeup = wakeup
        self.told = told
        self.concurrency_for = concurrency_for
        self.queues: dict[str, QueueRuntime] = {}
        self.active: dict[int, ActiveJob] = {}
        self.timers = TimerHeap()
        self.metrics = Metrics(moves=source.counts_in_memory)
        self.events = EventBus()
        # Ids popped from the timer heap whose promotion is being committed: neither
        # placed nor delayed in memory, and the self-audit knows why.
        self.in_flight: set[int] = set()
        self.lease_granted = asyncio.Event()

    # queues ----------------------------------------------------------------------

    def queue(self, name: str) -> QueueRuntime:
        found = self.queues.get(name)
        if found is None:
            found = self.queues[name] = QueueRuntime(name, self.concurrency_for(name))
            self.metrics.of(name)
            self.source.queue_added(found)
            self.told.queue_created(name)
        return found

    def forget_idle(self, keep: set[str]) -> int:
        """Free the memory of queues with no job in any state, nothing running or
        waiting on them, not paused, and not in ``keep`` (queues with schedules)."""
        gone = [
            name for name, q in self.queues.items()
            if name not in keep and not q.paused and q.running == 0 and not q.waiters
            and not any(self.metrics.of(name).counts.values())
        ]
        for name in gone:
            del self.queues[name]
            self.metrics.forget(name)
            self.source.queue_forgotten(name)
        self.source.forget_empty()
        return len(gone)

    def set_policy(self, queue: str, policy: GroupPolicy) -> None:
        """A queue's group policy changed (or was read at start-up)."""
        self.policies.set(queue, policy)
        self.source.policy_changed(self.queues.get(queue), policy)

    # placing ---------------------------------------------------------------------

    def place(self, job_id: int, queue: str, name: str, state: str, priority: int, run_at: int,
              group: str | None = None, by_enqueue: bool = False) -> None:
        """Put an unfinished job where it will be found: with the work source, or in
        the timer heap (a blocked job, or one added failed, is found by no one)."""
        if state == JobState.DELAYED:
            self.queue(queue)
            self.timers.push(Timer(run_at, job_id, priority, queue, name, group))
            self.wakeup.timer_moved(run_at)
        elif state == JobState.WAITING:
            self.source.waiting(self.queue(queue), [job_id], name, priority, run_at, group, by_enqueue)

    def place_job(self, job: Job) -> None:
        self.place(job.id, job.queue, job.name, job.state, job.priority, job.run_at, job.group)

    def _unplace(self, job: Job, prior: JobState) -> None:
        if prior is JobState.WAITING:
            self.source.withdrawn(self.queue(job.queue), job)
        elif prior is JobState.DELAYED:
            self.timers.kill(job.run_at, job.id)

    # enqueues ------------------------------------------------------------------------

    def accepted(self, added: Sequence[Added]) -> None:
        """Enqueues committed: count them and put the new jobs in line."""
        if isinstance(added, AddedRun) and added.alike:
            try:
                self._accept_alike(added)
            except Exception:
                log.exception("memory could not follow a committed enqueue; re-reading its jobs",
                              extra={"event": "ledger.error", "job": added.first})
                for job_id in added.ids:
                    self.told.repair(job_id)
            return
        for a in added:
            if a.created:
                self._guard(a.id, self._accept_one, *a.placement())
            elif a.moved is not None:
                self._guard(a.id, self._moved, a.job, *a.moved)

    def _accept_alike(self, run: AddedRun) -> None:
        """A large enqueue of jobs alike but for their data: counted and put in line
        at once (one heap operation for the lot when it outgrows the lane)."""
        _, queue, name, state, priority, run_at, group = run[0].placement()
        m = self.metrics.of(queue)
        m.move(None, state, len(run))
        m.added_total += len(run)
        if self.events.active:
            for job_id in run.ids:
                self.emit("added", job_id, queue, name, state=str(state), priority=priority)
        if state is JobState.WAITING:
            self.source.waiting(self.queue(queue), run.ids, name, priority, run_at, group, True)
        else:
            for job_id in run.ids:
                self.place(job_id, queue, name, state, priority, run_at, group, by_enqueue=True)

    def _accept_one(self, job_id: int, queue: str, name: str, state: JobState, priority: int,
                    run_at: int, group: str | None) -> None:
        m = self.metrics.of(queue)
        m.move(None, state)
        m.added_total += 1
        self.emit("added", job_id, queue, name, state=str(state), priority=priority)
        self.place(job_id, queue, name, state, priority, run_at, group, by_enqueue=True)

    def _moved(self, job: Job, prior: JobState, prior_run_at: int) -> None:
        """A kept job an enqueue moved in time (options.unique debounce)."""
        self._unplace(replace(job, run_at=prior_run_at), prior)
        self.metrics.of(job.queue).move(prior, job.state)
        self.emit(str(job.state), job.id, job.queue, job.name, debounced=True, runAt=to_iso(job.run_at))
        self.place_job(job)

    def fired(self, outcome: tuple[Sequence[Added], bool] | None) -> None:
        """A schedule's run committed (None: it did not fire): its jobs are added."""
        if outcome is not None:
            self.accepted(outcome[0])

    # starts --------------------------------------------------------------------------

    def started(self, jobs: list[Job], in_memory: bool) -> list[ActiveJob]:
        """waiting -> active committed for ``jobs`` (each of them in memory's active
        table with ``in_memory``), or waiting -> expired for those past their expiry."""
        actives = []
        for job in jobs:
            if job.state is JobState.EXPIRED:
                self._guard(job.id, self._expire, job, JobState.WAITING)
                self.told.ended(job)  # its dependents move on by a change of their own
            elif (active := self._guard(job.id, self._activate, job, in_memory)) is not None:
                actives.append(active)
        return actives

    def _activate(self, job: Job, in_memory: bool) -> ActiveJob | None:
        assert job.lease_token is not None and job.started_at is not None
        m = self.metrics.of(job.queue)
        m.move(JobState.WAITING, JobState.ACTIVE)
        m.waiting_time.observe(max(0, job.started_at - job.run_at))
        active = self._track(job) if in_memory else None
        self.emit("active", job.id, job.queue, job.name, attempt=job.attempts_made)
        if self.tracing.on:
            self.tracing.waited(job)
        return active

    def adopt_active(self, job: Job) -> ActiveJob:
        """Track a job active in the store that was not taken through the work source
        (a lease still valid after a restart): its group counts it as running."""
        active = self._track(job)
        self.source.ran(self.queue(job.queue), job.group, +1)
        return active

    def _track(self, job: Job) -> ActiveJob:
        assert job.lease_token is not None and job.started_at is not None
        deadline = None
        if job.lease_expires_at is not None:
            deadline = self.clock.monotonic_ms() + max(0, job.lease_expires_at - self.clock.now_ms())
        active = ActiveJob(job.id, job.queue, job.name, job.lease_token, job.started_at,
                           job.heartbeat_at or job.started_at, job.lease_expires_at, job.group, deadline,
                           node=self.source.node, worker=job.worker)
        self.active[job.id] = active
        if deadline is not None:
            self.lease_granted.set()  # the lease reaper may be asleep with no lease out
        return active

    def drop_active(self, job_id: int) -> ActiveJob | None:
        """A job no longer runs: out of the active table, and its group has room again."""
        active = self.active.pop(job_id, None)
        if active is not None:
            self.source.ran(self.queue(active.queue), active.group, -1)
        return active

    def promoted(self, due: dict[int, Timer], ids: list[int]) -> None:
        """delayed -> waiting committed for ``ids``; the other due ids had moved on."""
        self.in_flight.difference_update(due)
        for job_id in ids:
            t = due[job_id]
            self.metrics.of(t.queue).move(JobState.DELAYED, JobState.WAITING)
            self.emit("waiting", job_id, t.queue, t.name)
            self.place(job_id, t.queue, t.name, JobState.WAITING, t.priority, t.run_at, t.group)

    def next_wake(self) -> int | None:
        """When the dispatcher must look again: the next delayed job due, or the work
        source's next timer."""
        times = [t for t in (self.timers.next_due(), self.source.next_wake()) if t is not None]
        return min(times) if times else None

    # the end of an attempt --------------------------------------------------------------

    def finished(self, change: Change | None, counted: bool = True) -> None:
        """An active job's move committed (completed, failed, retrying, released,
        cancelled while running). ``counted`` False: released, attempt not counted."""
        if change is not None:
            self._guard(change.job.id, self._finish, change, counted)

    def finished_many(self, changes: list[Change]) -> None:
        for change in changes:
            self.emit("stalled", change.job.id, change.job.queue, change.job.name)
            self.finished(change)

    def _finish(self, change: Change, counted: bool) -> None:
        job = change.job
        active = self.drop_active(job.id)
        m = self.metrics.of(job.queue)
        m.move(change.prior, None if change.deleted else job.state)
        for state, n in change.pruned.items():
            m.move(state, None, n)
        if job.state in (JobState.COMPLETED, JobState.FAILED):
            m.record_finish(job)
        elif job.state in (JobState.WAITING, JobState.DELAYED):
            if counted:
                m.retried_total += 1
            self.place_job(job)
        if active is not None and active.in_process:
            self.queue(job.queue).running -= 1
            self.wakeup.wake()
        if self.events.active:
            kind, detail = finish_event(job, counted)
            self.emit(kind, job.id, job.queue, job.name, **detail)
        if self.tracing.on and change.prior is JobState.ACTIVE:
            self.tracing.attempted(job, counted)
        log_finish(job)
        self.followed(change)

    def lost(self, job_id: int, token: str) -> None:
        """A job running here under ``token`` was ended through another node (a cancel,
        or the leader returned it): its slot is free again."""
        active = self.active.get(job_id)
        if active is not None and active.token == token:
            self.drop_active(job_id)
            if active.in_process:
                self.queue(active.queue).running -= 1
            self.wakeup.wake()

    def beat(self, job: Job | None) -> None:
        """A heartbeat committed: the lease runs from now."""
        if job is None:
            return
        active = self.active.get(job.id)
        if active is None:
            return
        active.heartbeat_at = job.heartbeat_at or active.heartbeat_at
        if job.lease_expires_at is not None:
            active.lease_expires_at = job.lease_expires_at
            active.deadline = self.clock.monotonic_ms() + max(0, job.lease_expires_at - self.clock.now_ms())

    # moves asked for ------------------------------------------------------------------------

    def withdrawn(self, change: Change) -> None:
        """waiting/delayed -> cancelled committed."""
        if change.prior is JobState.ACTIVE:
            return  # nothing stored yet: the dispatcher stops the running attempt
        job = change.job
        self._unplace(job, change.prior)
        self.metrics.of(job.queue).move(change.prior, JobState.CANCELLED)
        self.emit("cancelled", job.id, job.queue, job.name)
        self.followed(change)

    def brought_forward(self, change: Change) -> None:
        """delayed -> waiting committed ahead of its time (a promotion asked for)."""
        job = change.job
        assert change.prior_run_at is not None
        self.timers.kill(change.prior_run_at, job.id)
        self.metrics.of(job.queue).move(JobState.DELAYED, JobState.WAITING)
        self.emit("waiting", job.id, job.queue, job.name, promoted=True)
        self.place_job(job)

    def retried(self, change: Change) -> None:
        """failed/cancelled -> waiting committed."""
        job = change.job
        self.metrics.of(job.queue).move(change.prior, JobState.WAITING)
        self.emit("added", job.id, job.queue, job.name, state=str(job.state), retried=True)
        self.place_job(job)

    def removed(self, change: Change) -> None:
        """A job that was not active deleted."""
        job = change.job
        self._unplace(job, change.prior)
        self.metrics.of(job.queue).move(change.prior, None)
        self.emit("removed", job.id, job.queue, job.name)
        self.followed(change)

    def acted(self, action: str, acted: Acted) -> None:
        """A bulk action committed (transitions.act): each job as its own action would."""
        step = {"retry": self.retried, "cancel": self.withdrawn, "promote": self.brought_forward,
                "delete": self.removed}[action]
        for change in acted.changes:  # each step moves the job's dependents on too
            self._guard(change.job.id, step, change)

    def cleaned(self, queue: str, state: JobState, removed: int) -> None:
        if queue in self.metrics.queues:
            self.metrics.of(queue).move(state, None, removed)

    def expired(self, changes: list[Change]) -> None:
        """waiting or delayed -> expired committed by the expiry sweep."""
        for change in changes:
            self._guard(change.job.id, self._unplace, change.job, change.prior)
            self._guard(change.job.id, self._expire, change.job, change.prior)
            self.followed(change)

    def _expire(self, job: Job, prior: JobState) -> None:
        self.metrics.of(job.queue).move(prior, JobState.EXPIRED)
        self.emit("expired", job.id, job.queue, job.name)

    # what a change did besides ----------------------------------------------------------------

    def followed(self, change: Change) -> None:
        """What a change that ended a job did besides: its dependents moved on, and
        the callbacks it added."""
        self.settled(change.settled)
        if change.spawned:
            self.accepted(change.spawned)

    def settled(self, changes: list[Change]) -> None:
        """Blocked jobs moved on committed: waiting or delayed now, or failed with
        their dependency."""
        for change in changes:
            job = change.job
            self.metrics.of(job.queue).move(JobState.BLOCKED, job.state)
            self.emit(str(job.state), job.id, job.queue, job.name, unblocked=job.state is not JobState.FAILED)
            self.place_job(job)

    # events ------------------------------------------------------------------------

    def emit(self, kind: str, job_id: int, queue: str, name: str, **detail: Any) -> None:
        if self.events.active:  # building events costs nothing when nobody listens
            self.events.publish(JobEvent(kind, job_id, queue, name, self.clock.now_ms(), detail))

    def _guard(self, job_id: int, step: Callable[..., Any], *args: Any) -> Any:
        try:
            return step(*args)
        except Exception:
            log.exception("memory could not follow a committed change; re-reading the job",
                          extra={"event": "ledger.error", "job": job_id})
            self.told.repair(job_id)
            return None
