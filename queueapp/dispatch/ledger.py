"""The ledger: where a committed change becomes memory state, in one step.

Every method here is called by the store's post-commit hook (``then``), in the event
loop's thread, right after the commit and before the caller is answered, whether or
not the caller still waits. None of them awaits, so nothing can run between the
commit and the bookkeeping, and a cancelled caller cannot skip it. In order, each
applies: the job's place (lane, timer heap, active table), the counts, the metric
windows, the event, the log line.

An unexpected exception while applying a change is logged loudly and the job is
handed to ``repair`` (set by the dispatcher), which re-reads it from the store and
makes memory follow the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..clock import Clock
from ..events import EventBus, JobEvent
from ..flow import NONE, Aging, GroupLimits, GroupPolicy
from ..metrics import Metrics
from ..model import Job, JobState
from ..store import Added, AddedRun, Change
from .finishing import finish_event as _finish_event
from .finishing import log_finish as _log_finish
from .lanes import Line, pack
from .ledger_groups import GroupMoves
from .ledger_moves import FlowMoves
from .order import Lanes, Taken
from .runtime import ActiveJob, QueueRuntime
from .timers import Timer, TimerHeap

log = logging.getLogger("queueapp.ledger")


class Ledger(FlowMoves, GroupMoves):
    def __init__(
        self, clock: Clock, runs_here: Callable[[str], bool], concurrency_for: Callable[[str], int],
        group_limits: Callable[[str], GroupLimits] | None = None, aging: Callable[[str], Aging | None] | None = None,
    ) -> None:
        self.clock = clock
        self.runs_here = runs_here  # a job name with an in-process handler
        self.concurrency_for = concurrency_for
        self.queues: dict[str, QueueRuntime] = {}
        # Group policies by queue (config file, then the store's), and priority aging.
        self.policies: dict[str, GroupPolicy] = {}
        self.group_defaults: Callable[[str], GroupLimits] = group_limits or (lambda queue: NONE)
        self.aging_for: Callable[[str], Aging | None] = aging or (lambda queue: None)
        # Closed lines that time alone opens again: (at, serial, queue, line).
        self.reopening: list[tuple[int, int, str, Line]] = []
        self.active: dict[int, ActiveJob] = {}
        self.timers = TimerHeap()
        self.metrics = Metrics()
        self.events = EventBus()
        # Ids popped from a lane or the timer heap whose claim or promotion is being
        # committed: neither placed nor active, and the self-audit knows why.
        self.in_flight: set[int] = set()
        # Of those, the ones claimed for this process's handlers, with their queue.
        self.claiming_here: dict[int, str] = {}
        self.lease_granted = asyncio.Event()
        self.wake: Callable[[], None] = lambda: None  # the dispatcher's loop
        self.timer_moved: Callable[[int], None] = lambda due: None
        self.repair: Callable[[int], None] = lambda job_id: None
        self.queue_created: Callable[[str], None] = lambda name: None
        self.ended: Callable[[Job], None] = lambda job: None  # a job ended outside a settling change

    # queues ----------------------------------------------------------------------

    def queue(self, name: str) -> QueueRuntime:
        found = self.queues.get(name)
        if found is None:
            lanes = Lanes(name, self.runs_here, self.policy_of(name), self.aging_for(name), self.clock.now_ms)
            lanes.closed_until = lambda line, at: self._reopen_at(name, line, at)
            found = self.queues[name] = QueueRuntime(name, self.concurrency_for(name), lanes)
            self.metrics.of(name)
            self.queue_created(name)
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
        for q in self.queues.values():
            q.lanes.forget_empty()
        return len(gone)

    # placing ---------------------------------------------------------------------

    def place(self, job_id: int, queue: str, name: str, state: str, priority: int, run_at: int,
              group: str | None = None) -> None:
        """Put an unfinished job where it will be found: its lane, or the timer heap
        (a blocked job, or one added failed, is found by no one)."""
        if state != JobState.WAITING and state != JobState.DELAYED:
            return
        q = self.queue(queue)
        if state == JobState.DELAYED:
            self.timers.push(Timer(run_at, job_id, priority, queue, name, group))
            self.timer_moved(run_at)
            return
        q.lanes.push(q.lanes.lane(name, priority, group), pack(priority, run_at, job_id))
        self._announce(q, name)

    def _announce(self, q: QueueRuntime, name: str) -> None:
        """New waiting jobs of ``name``: wake who takes them (the dispatcher's loop
        for a name with a handler here, else the leases waiting on the queue)."""
        if self.runs_here(name):
            self.wake()
        else:
            q.wake_waiters()

    def place_job(self, job: Job) -> None:
        self.place(job.id, job.queue, job.name, job.state, job.priority, job.run_at, job.group)

    def _unplace(self, job: Job, prior: JobState) -> None:
        q = self.queue(job.queue)
        if prior is JobState.WAITING:
            q.lanes.lane(job.name, job.priority, job.group).kill(pack(job.priority, job.run_at, job.id))
        elif prior is JobState.DELAYED:
            self.timers.kill(job.run_at, job.id)

    # committed changes -------------------------------------------------------------

    def accepted(self, added: Sequence[Added]) -> None:
        """Enqueues committed: count them and put the new jobs in line."""
        if isinstance(added, AddedRun) and added.alike:
            try:
                self._accept_alike(added)
            except Exception:
                log.exception("memory could not follow a committed enqueue; re-reading its jobs",
                              extra={"event": "ledger.error", "job": added.first})
                for job_id in added.ids:
                    self.repair(job_id)
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
        self._place_alike(run, queue, name, state, priority, run_at, group)

    def _place_alike(self, run: AddedRun, queue: str, name: str, state: JobState, priority: int, run_at: int,
                     group: str | None) -> None:
        if state is JobState.DELAYED:
            for job_id in run.ids:
                self.place(job_id, queue, name, state, priority, run_at, group)
            return
        q = self.queue(queue)
        base = pack(priority, run_at, 0)
        q.lanes.push_many(q.lanes.lane(name, priority, group), [base | job_id for job_id in run.ids])
        self._announce(q, name)

    def _accept_one(self, job_id: int, queue: str, name: str, state: JobState, priority: int,
                    run_at: int, group: str | None) -> None:
        m = self.metrics.of(queue)
        m.move(None, state)
        m.added_total += 1
        self.emit("added", job_id, queue, name, state=str(state), priority=priority)
        self.place(job_id, queue, name, state, priority, run_at, group)

    def claimed(self, taken: Taken, jobs: list[Job]) -> list[ActiveJob]:
        """waiting -> active committed for ``jobs`` (of the ``taken`` ids; the others
        were no longer waiting), or waiting -> expired for those past their expiry."""
        ids = taken.ids
        self.in_flight.difference_update(ids)
        for job_id in ids:
            self.claiming_here.pop(job_id, None)
        started = []
        for job in jobs:
            if job.state is JobState.EXPIRED:
                self._guard(job.id, self._expire, job, JobState.WAITING)
                self.ended(job)  # its dependents move on by a change of their own
            elif (active := self._guard(job.id, self._activate, job)) is not None:
                started.append(active)
        lanes = taken.owner
        if lanes is not None and lanes.claimed(taken, {a.id for a in started}):
            self._room_given(self.queue(lanes.queue))
        return started

    def _activate(self, job: Job) -> ActiveJob:
        assert job.lease_token is not None and job.started_at is not None
        m = self.metrics.of(job.queue)
        m.move(JobState.WAITING, JobState.ACTIVE)
        m.waiting_time.observe(max(0, job.started_at - job.run_at))
        active = self.adopt_active(job)
        self.emit("active", job.id, job.queue, job.name, attempt=job.attempts_made)
        return active

    def adopt_active(self, job: Job, counted: bool = True) -> ActiveJob:
        """Track a job that is active in the store (claimed now, or a lease still
        valid after a restart). ``counted`` False: its group does not know it runs yet
        (it was not taken from a lane)."""
        assert job.lease_token is not None and job.started_at is not None
        deadline = None
        if job.lease_expires_at is not None:
            deadline = self.clock.monotonic_ms() + max(0, job.lease_expires_at - self.clock.now_ms())
        active = ActiveJob(job.id, job.queue, job.name, job.lease_token, job.started_at,
                           job.heartbeat_at or job.started_at, job.lease_expires_at, job.group, deadline)
        if not counted:
            self.queue(job.queue).lanes.ran(job.group, +1)
        self.active[job.id] = active
        if deadline is not None:
            self.lease_granted.set()  # the lease reaper may be asleep with no lease out
        return active

    def promoted(self, due: dict[int, Timer], ids: list[int]) -> None:
        """delayed -> waiting committed for ``ids``; the other due ids had moved on."""
        self.in_flight.difference_update(due)
        for job_id in ids:
            t = due[job_id]
            self.metrics.of(t.queue).move(JobState.DELAYED, JobState.WAITING)
            self.emit("waiting", job_id, t.queue, t.name)
            self.place(job_id, t.queue, t.name, JobState.WAITING, t.priority, t.run_at, t.group)

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
            self.wake()
        if self.events.active:
            kind, detail = _finish_event(job, counted)
            self.emit(kind, job.id, job.queue, job.name, **detail)
        _log_finish(job)
        self.followed(change)

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

    def cleaned(self, queue: str, state: JobState, removed: int) -> None:
        if queue in self.metrics.queues:
            self.metrics.of(queue).move(state, None, removed)

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
            self.repair(job_id)
            return None
