"""The store interface: everything the rest of the appliance may ask of storage.

Nothing outside ``queueapp.store`` writes SQL. A second implementation (for
example on PostgreSQL, so that several nodes share one database) implements this
class and nothing else has to change.

Every write method returns only after its change is durable (committed), and each
state change is guarded by the state it expects, so a stale caller changes nothing
and gets ``None`` (or an error) back. Write methods take ``then``: the hook that turns
the committed result into memory state, run whether or not the caller still waits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

from ..histogram import Histogram
from ..model import Job, JobState, NewJob, Schedule, fresh_job
from ..retry import Failure
from ..search import JobFilter

# A write's post-commit hook: called once with the write's result, in the event loop's
# thread, after the commit and before the caller is answered, even when the caller has
# stopped waiting. It must not await; the dispatcher's ledger is the one user.
Then = Callable[[Any], Any] | None


class Added:
    """One job of an enqueue: the stored job, and whether it was created (False:
    options.jobId matched a job already kept, which is returned). A created job's
    ``Job`` is built only when asked for: a bulk answered with ids never needs one."""

    __slots__ = ("_job", "created", "id", "_new", "_now")

    def __init__(self, job: Job | None, created: bool, *, new: NewJob | None = None,
                 job_id: int = 0, now: int = 0) -> None:
        self._job = job
        self.created = created
        self.id = job.id if job is not None else job_id
        self._new = new
        self._now = now

    @classmethod
    def fresh(cls, job_id: int, new: NewJob, now: int) -> Added:
        return cls(None, True, new=new, job_id=job_id, now=now)

    @property
    def job(self) -> Job:
        if self._job is None:
            assert self._new is not None
            self._job = fresh_job(self.id, self._new, self._now)
        return self._job

    def placement(self) -> tuple[int, str, str, JobState, int, int]:
        """Where the job goes in memory: id, queue, name, state, priority, due time."""
        if self._new is None:
            job = self.job
            return job.id, job.queue, job.name, job.state, job.priority, job.run_at
        new = self._new
        state, run_at = new.placed(self._now)
        return self.id, new.queue, new.name, state, new.priority, run_at


class AddedRun(Sequence[Added]):
    """The jobs a large enqueue created, with consecutive ids from ``first``: what
    the caller and the ledger need is read from the jobs as given, and an ``Added``
    is made only for an item asked for."""

    __slots__ = ("first", "jobs", "now", "alike")

    def __init__(self, first: int, jobs: list[NewJob], now: int, alike: bool) -> None:
        self.first = first
        self.jobs = jobs
        self.now = now
        self.alike = alike  # every job the same but for its data

    def __len__(self) -> int:
        return len(self.jobs)

    @overload
    def __getitem__(self, index: int) -> Added: ...
    @overload
    def __getitem__(self, index: slice) -> list[Added]: ...
    def __getitem__(self, index: int | slice) -> Added | list[Added]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.jobs)))]
        if index < 0:
            index += len(self.jobs)
        return Added.fresh(self.first + index, self.jobs[index], self.now)

    @property
    def ids(self) -> range:
        return range(self.first, self.first + len(self.jobs))


def added_ids(added: Sequence[Added]) -> Iterable[int]:
    """The ids of an enqueue's jobs, in the order given."""
    return added.ids if isinstance(added, AddedRun) else (a.id for a in added)


def added_jobs(added: Sequence[Added]) -> list[Job]:
    """The jobs of an enqueue, in the order given."""
    if isinstance(added, AddedRun):
        first, now = added.first, added.now
        return [fresh_job(first + index, new, now) for index, new in enumerate(added.jobs)]
    return [a.job for a in added]


@dataclass(slots=True)
class Change:
    """One job's move from ``prior`` to ``job.state``."""

    job: Job
    prior: JobState
    deleted: bool = False  # removeOnComplete/removeOnFail removed the job's own row
    # Other finished jobs removed by a keep-newest-N policy, per state.
    pruned: dict[JobState, int] = field(default_factory=dict)
    # The due time before the change, where it moved (a promoted job).
    prior_run_at: int | None = None


@dataclass(slots=True)
class QueueSettings:
    name: str
    paused: bool
    concurrency: int | None


class PendingJob(NamedTuple):
    """What the dispatcher needs to order an unfinished job, without its payload.
    A tuple: a million of them are read at start-up."""

    id: int
    queue: str
    name: str
    state: str  # "waiting" or "delayed" (JobState values)
    priority: int
    run_at: int


@dataclass(slots=True)
class FinishedSample:
    queue: str
    state: JobState
    started_at: int | None
    finished_at: int


@dataclass(slots=True)
class NameFigures:
    name: str
    completed: int
    failed: int
    avg_processing_ms: float | None
    max_processing_ms: int | None


@dataclass(slots=True)
class Report:
    """Figures for one queue over a window (generate-report jobs)."""

    by_name: list[NameFigures]
    failure_reasons: list[tuple[str, int]]  # error, count; the commonest first
    counts: dict[str, int]  # by state, now


@dataclass(slots=True)
class TableSnapshot:
    """The unfinished jobs and the counts, as one transaction sees them (self-audit)."""

    unfinished: list[tuple[int, str, str, str, int, int, str | None]]  # id, queue, name, state, priority, run_at, token
    counts: dict[str, dict[JobState, int]]


@dataclass(slots=True)
class CommitStats:
    """How often the store commits, how many changes each commit carries, how long."""

    commits: int = 0
    ops: int = 0
    last_commit_ms: float = 0.0
    total_commit_ms: float = 0.0
    latency: Histogram = field(default_factory=Histogram)


class Store(ABC):
    commit_stats: CommitStats
    # lifecycle ---------------------------------------------------------------
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # writes ------------------------------------------------------------------
    @abstractmethod
    async def add_jobs(self, jobs: list[NewJob], now: int, *, then: Then = None) -> Sequence[Added]:
        """All or none. A job whose ``job_key`` is already kept in its queue is not
        added; the kept job is returned with ``created=False``."""

    @abstractmethod
    async def claim_jobs(
        self, ids: list[int], now: int, lease_ms: int | None, *, then: Then = None
    ) -> list[Job]:
        """waiting -> active for those of ``ids`` still waiting; counts the attempt and
        gives each a fresh lease token. ``lease_ms`` None: owned by this process."""

    @abstractmethod
    async def promote_jobs(self, ids: list[int], now: int, *, then: Then = None) -> list[int]:
        """delayed -> waiting; returns the ids that were still delayed."""

    @abstractmethod
    async def complete_job(
        self, job_id: int, token: str, result: Any, now: int, *, durable: bool = True,
        then: Then = None,
    ) -> Change | None:
        """active -> completed, if ``token`` is the job's current lease token.
        ``durable=False``: no caller is told, so the commit need not wait for an
        fsync (an in-process handler's outcome; at worst the job runs again)."""

    @abstractmethod
    async def complete_jobs(
        self, items: list[tuple[int, str, Any]], now: int, *, then: Then = None
    ) -> list[Change | None]:
        """``complete_job`` for many (job id, token, result) at once, in one change;
        each gets its own answer (None: not active under that token)."""

    @abstractmethod
    async def fail_job(
        self, job_id: int, token: str, failure: Failure, now: int, *,
        durable: bool = True, then: Then = None,
    ) -> Change | None:
        """active -> delayed/waiting (retry), failed or cancelled, as
        ``retry.after_failure`` decides, if ``token`` is current. The error is appended
        to the job's errors."""

    @abstractmethod
    async def release_job(self, job_id: int, token: str, now: int, *, then: Then = None) -> Change | None:
        """active -> waiting without counting the attempt, if ``token`` is current."""

    @abstractmethod
    async def cancel_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        """waiting/delayed -> cancelled. For an active job nothing is stored and the
        Change has prior == job.state == ACTIVE. Raises NotFound, or Conflict when
        the job has finished."""

    @abstractmethod
    async def retry_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        """failed/cancelled -> waiting with a fresh set of attempts.
        Raises NotFound or Conflict."""

    @abstractmethod
    async def promote_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        """delayed -> waiting, due now. Raises NotFound, or Conflict when not delayed."""

    @abstractmethod
    async def heartbeat(
        self, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any, *,
        then: Then = None,
    ) -> Job | None:
        """Record a sign of life (and progress) for an active job with that token."""

    @abstractmethod
    async def rescue_active(
        self, now: int, failure: Failure, leases: list[tuple[int, str]], *, then: Then = None
    ) -> list[Change]:
        """Jobs whose worker is gone fail their attempt with ``failure``: each of
        ``leases`` (id, lease token) that is still active under that token."""

    @abstractmethod
    async def unowned_active(self, now: int) -> tuple[list[Job], list[Job]]:
        """At start-up: the active jobs no living worker can hold (run by the previous
        process itself, or leased with a lease that has run out), and the leased ones
        whose lease is still valid (their external worker may still finish them)."""

    @abstractmethod
    async def set_paused(self, queue: str, paused: bool, now: int) -> None: ...

    @abstractmethod
    async def clean(
        self, queue: str, state: JobState, finished_before: int, limit: int | None, *,
        then: Then = None,
    ) -> int:
        """Remove finished jobs of ``state`` that finished before the given time."""

    # schedules -----------------------------------------------------------------
    @abstractmethod
    async def upsert_schedule(self, schedule: Schedule, now: int) -> Schedule:
        """Insert, or replace the schedule with the same queue and name."""

    @abstractmethod
    async def delete_schedule(self, queue: str, name: str) -> bool: ...

    @abstractmethod
    async def set_schedule_enabled(
        self, queue: str, name: str, enabled: bool, next_run_at: int | None, now: int
    ) -> Schedule | None: ...

    @abstractmethod
    async def init_schedule_next_run(self, queue: str, name: str, next_run_at: int) -> None:
        """Set next_run_at where it is still unset (schedules seeded by a migration)."""

    @abstractmethod
    async def fire_schedule(
        self, queue: str, name: str, expected_next: int, jobs: list[NewJob],
        next_run_at: int, now: int, *, then: Then = None,
    ) -> tuple[list[Added], bool] | None:
        """Enqueue a run and advance the schedule atomically; see store/schedules.py."""

    @abstractmethod
    async def list_schedules(self, queue: str | None) -> list[Schedule]: ...

    @abstractmethod
    async def get_schedule(self, queue: str, name: str) -> Schedule | None: ...

    @abstractmethod
    async def snapshot(self, *, then: Then = None) -> TableSnapshot:
        """Unfinished jobs and counts, read in the writer's order: ``then`` sees the
        table exactly as the changes committed before it left it."""

    # maintenance ---------------------------------------------------------------
    @abstractmethod
    async def backup_to(self, path: str) -> int:
        """A consistent copy of the whole store at ``path`` while it keeps serving;
        returns its size in bytes."""

    @abstractmethod
    async def report(self, queue: str, since: int, until: int) -> Report:
        """Figures for jobs of ``queue`` finished in ``[since, until]``: per job name
        counts and processing times, the commonest failure reasons; and the queue's
        current counts by state."""

    # reads -------------------------------------------------------------------
    @abstractmethod
    async def get_job(self, job_id: int) -> Job | None: ...

    @abstractmethod
    async def list_jobs(
        self,
        queue: str,
        state: JobState | None,
        name: str | None,
        limit: int,
        after_id: int | None,
        search: JobFilter | None = None,
    ) -> list[Job]:
        """A page of jobs in id order after ``after_id`` (the cursor), of those that
        meet ``search`` (see search.py) when given."""

    @abstractmethod
    async def failed_jobs(self, queue: str, limit: int) -> list[Job]:
        """Newest failure first."""

    @abstractmethod
    async def active_jobs(self, queue: str) -> list[Job]: ...

    @abstractmethod
    def pending_jobs(self, batch: int = 10_000) -> AsyncIterator[list[PendingJob]]:
        """Every waiting and delayed job, in batches, for rebuilding the dispatcher
        without holding them all in memory twice."""

    @abstractmethod
    async def count_states(self) -> dict[str, dict[JobState, int]]:
        """Per queue, the number of jobs in each state."""

    @abstractmethod
    async def finished_since(self, since: int) -> list[FinishedSample]:
        """Completed and failed jobs finished at or after ``since`` (metrics windows)."""

    @abstractmethod
    async def queue_settings(self) -> list[QueueSettings]: ...

    @abstractmethod
    async def ensure_queue(self, queue: str, now: int) -> None: ...
