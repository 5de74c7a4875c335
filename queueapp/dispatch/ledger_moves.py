"""The moves of jobs that flow control and actions on many jobs commit (a debounced
unique job, expiry, blocked jobs moving on, deletes, bulk actions): part of the
ledger (ledger.py), kept apart so that each part stays readable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..clock import to_iso
from ..metrics import Metrics
from ..model import Job, JobState
from ..store import Acted, Added, Change


class FlowMoves:
    metrics: Metrics
    ended: Callable[[Job], None]  # a job ended outside a settling change (set by the dispatcher)

    if TYPE_CHECKING:  # given by Ledger
        def emit(self, kind: str, job_id: int, queue: str, name: str, **detail: Any) -> None: ...
        def _unplace(self, job: Job, prior: JobState) -> None: ...
        def place_job(self, job: Job) -> None: ...
        def _guard(self, job_id: int, step: Callable[..., Any], *args: Any) -> Any: ...
        def retried(self, change: Change) -> None: ...
        def withdrawn(self, change: Change) -> None: ...
        def brought_forward(self, change: Change) -> None: ...
        def accepted(self, added: Sequence[Added]) -> None: ...

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

    def expired(self, changes: list[Change]) -> None:
        """waiting or delayed -> expired committed by the expiry sweep."""
        for change in changes:
            self._guard(change.job.id, self._unplace, change.job, change.prior)
            self._guard(change.job.id, self._expire, change.job, change.prior)
            self.followed(change)

    def _expire(self, job: Job, prior: JobState) -> None:
        self.metrics.of(job.queue).move(prior, JobState.EXPIRED)
        self.emit("expired", job.id, job.queue, job.name)

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

    def removed(self, change: Change) -> None:
        """A job that was not active deleted."""
        job = change.job
        self._unplace(job, change.prior)
        self.metrics.of(job.queue).move(change.prior, None)
        self.emit("removed", job.id, job.queue, job.name)
        self.followed(change)

    def acted(self, action: str, acted: Acted) -> None:
        """A bulk action committed (store/actions.py): each job as its own action would."""
        step = {"retry": self.retried, "cancel": self.withdrawn, "promote": self.brought_forward,
                "delete": self.removed}[action]
        for change in acted.changes:  # each step moves the job's dependents on too
            self._guard(change.job.id, step, change)
