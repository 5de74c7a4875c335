"""The ledger of a node in a cluster: the same hooks as one appliance's ledger
(dispatch/ledger.py), turning this node's committed changes into its memory, but
that memory holds no waiting job, since the database chooses the next job for
whichever node asks. What stays: this node's running jobs (its handlers' tasks),
the due times of the delayed jobs this node made (so it promotes them on time; the
leader catches any other), metrics windows of what finished here, events, and the
queues it heard of. Counts come from the database (see view.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..dispatch import ActiveJob, Ledger
from ..dispatch.timers import Timer
from ..metrics import Metrics
from ..model import Job, JobState
from ..store import Added, AddedRun
from ..store.shared import FlowRules


class ClusterLedger(Ledger):
    # Queues that gained waiting jobs by this node's changes other than enqueues
    # (an enqueue wakes the other nodes in its own statement), with their names: the
    # dispatcher tells the other nodes after each turn.
    woken: dict[str, set[str]]
    node: str | None = None  # set by the dispatcher
    _accepting = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = Metrics(moves=False)  # counts are the database's
        self.woken = {}
        self.fresh: set[str] = set()  # queues with new waiting jobs since the dispatcher last looked

    def place(self, job_id: int, queue: str, name: str, state: str, priority: int, run_at: int,
              group: str | None = None) -> None:
        q = self.queue(queue)
        if state == JobState.DELAYED:
            self.timers.push(Timer(run_at, job_id, priority, queue, name, group))
            self.timer_moved(run_at)
        elif state == JobState.WAITING:
            q.wake_waiters()
            if self.runs_here(name):
                self.fresh.add(queue)
                self.wake()
            if not self._accepting:
                self.woken.setdefault(queue, set()).add(name)

    def rules(self, queue: str) -> FlowRules:
        """What a claim of ``queue`` must respect: the config file's group limits, its
        aging, and whether the group settings stored when the view last read them
        govern it (the claim reads them itself unless they did not: then a queue that
        gained settings since claims nothing until the view sees them)."""
        policy = self.policies.get(queue)
        stored = policy is not None and bool(policy.default.limited or policy.overrides or policy.paused)
        return self.group_defaults(queue), self.aging_for(queue), stored

    def heard(self, queue: str, names: list[str] | None) -> None:
        """Another node told of new waiting jobs in ``queue``, of these ``names`` (None:
        any): the long polls on it look, and this node's handlers when they run one."""
        self.queue(queue).wake_waiters()
        if names is None or any(self.runs_here(name) for name in names):
            self.fresh.add(queue)
            self.wake()

    def _unplace(self, job: Job, prior: JobState) -> None:
        if prior is JobState.DELAYED:
            self.timers.kill(job.run_at, job.id)

    def accepted(self, added: Sequence[Added]) -> None:
        self._accepting = True
        try:
            super().accepted(added)
        finally:
            self._accepting = False

    def _place_alike(self, run: AddedRun, queue: str, name: str, state: JobState, priority: int, run_at: int,
                     group: str | None) -> None:
        """A large enqueue: delayed jobs are timed one by one, waiting ones announced once."""
        for job_id in run.ids if state is JobState.DELAYED else run.ids[:1]:
            self.place(job_id, queue, name, state, priority, run_at, group)

    def started(self, jobs: list[Job], here: bool) -> list[ActiveJob]:
        """Claims committed through this node: active (``here``: for this node's
        handlers, whose running jobs memory keeps), or expired instead."""
        actives = []
        for job in jobs:
            if job.state is JobState.EXPIRED:
                self._guard(job.id, self._expire, job, JobState.WAITING)
                self.ended(job)
                continue
            assert job.started_at is not None
            self.metrics.of(job.queue).waiting_time.observe(max(0, job.started_at - job.run_at))
            self.emit("active", job.id, job.queue, job.name, attempt=job.attempts_made)
            if here:
                active = self.adopt_active(job)
                active.node = self.node
                actives.append(active)
        return actives

    def drop_active(self, job_id: int) -> ActiveJob | None:
        return self.active.pop(job_id, None)
