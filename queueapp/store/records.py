"""The records the store interface passes in and out: what an enqueue added, one
job's change, the rows start-up and the self-audit read, commit statistics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

from ..clock import to_iso
from ..flow import GroupLimits, GroupPolicy, KeySettings
from ..histogram import Histogram
from ..model import Job, JobState, NewJob, fresh_job


class Added:
    """One job of an enqueue: the stored job, and whether it was created (False:
    options.jobId matched a job already kept, which is returned). A created job's
    ``Job`` is built only when asked for: a bulk answered with ids never needs one."""

    __slots__ = ("_job", "created", "id", "_new", "_now", "moved")

    def __init__(self, job: Job | None, created: bool, *, new: NewJob | None = None,
                 job_id: int = 0, now: int = 0, moved: tuple[JobState, int] | None = None) -> None:
        self._job = job
        self.created = created
        self.id = job.id if job is not None else job_id
        self._new = new
        self._now = now
        # A kept job this enqueue moved (options.unique debounce): its state and due
        # time before, so that memory can take it from where it was.
        self.moved = moved

    @classmethod
    def fresh(cls, job_id: int, new: NewJob, now: int) -> Added:
        return cls(None, True, new=new, job_id=job_id, now=now)

    @property
    def job(self) -> Job:
        if self._job is None:
            assert self._new is not None
            self._job = fresh_job(self.id, self._new, self._now)
        return self._job

    def placement(self) -> tuple[int, str, str, JobState, int, int, str | None]:
        """Where the job goes in memory: id, queue, name, state, priority, due time, group."""
        if self._new is None:
            job = self.job
            return job.id, job.queue, job.name, job.state, job.priority, job.run_at, job.group
        new = self._new
        state, run_at = new.placed(self._now)
        return self.id, new.queue, new.name, state, new.priority, run_at, new.group


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
    # Jobs the change added in its transaction (a finished job's callback).
    spawned: list[Added] = field(default_factory=list)
    # Blocked jobs the change moved on (its dependents: to waiting, delayed or failed).
    settled: list[Change] = field(default_factory=list)


@dataclass(slots=True)
class QueueSettings:
    name: str
    paused: bool
    concurrency: int | None


@dataclass(slots=True)
class AuditEntry:
    """One operator change: when, who (the token's role), how (dashboard, cli, api),
    from where, in which queue, what (the action and its target: an id, a name, a
    filter), how many jobs it changed, and what else the request said."""

    at: int
    actor: str
    via: str
    address: str | None
    queue: str | None
    action: str
    target: str | None = None
    changed: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


class LogLine(NamedTuple):
    """One line of a job's log: its number (from 1), when it was written, the text."""

    seq: int
    at: int
    line: str


class PendingJob(NamedTuple):
    """What the dispatcher needs to order an unfinished job, without its payload.
    A tuple: a million of them are read at start-up."""

    id: int
    queue: str
    name: str
    state: str  # "waiting" or "delayed" (JobState values)
    priority: int
    run_at: int
    group: str | None  # options.group


@dataclass(slots=True)
class StoredGroups:
    """A queue's group settings as stored: its policy's limits (None: the config
    file's apply) and the keys with settings of their own."""

    queue: str
    limits: GroupLimits | None = None
    keys: dict[str, KeySettings] = field(default_factory=dict)

    def policy(self, default: GroupLimits) -> GroupPolicy:
        """The policy these settings make, over the config file's ``default``."""
        overrides = {k: s.limits for k, s in self.keys.items() if s.limits is not None}
        paused = {k: s.paused_until for k, s in self.keys.items() if s.paused}
        return GroupPolicy(self.limits or default, overrides, paused)


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

    # id, queue, name, state, priority, run_at, token, group
    unfinished: list[tuple[int, str, str, str, int, int, str | None, str | None]]
    counts: dict[str, dict[JobState, int]]
    # what the table keeps of itself that disagrees with its jobs (the failed group
    # counts on SQLite)
    drift: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CommitStats:
    """How often the store commits, how many changes each commit carries, how long."""

    commits: int = 0
    ops: int = 0
    last_commit_ms: float = 0.0
    total_commit_ms: float = 0.0
    latency: Histogram = field(default_factory=Histogram)


@dataclass
class ReplicaStatus:
    """What /metrics and /queues/health say of the copy."""

    folder: str
    mode: str
    generation: str = ""
    commits: int = 0  # shipped since start
    bytes: int = 0
    last_shipped_ms: int | None = None
    last_synced_ms: int | None = None
    unsynced_commits: int = 0  # copied, not yet on the folder's disk (async)
    first_unsynced_ms: int | None = None
    error: str | None = None  # the last failure to ship, until one succeeds
    failing_since_ms: int | None = None

    def lag_ms(self, now: int) -> int:
        """How far behind the copy on the folder's disk is: since the oldest commit
        not on it yet (failing: since the failures began); 0 when it has them all."""
        since = self.failing_since_ms if self.failing_since_ms is not None else self.first_unsynced_ms
        return 0 if since is None else max(0, now - since)

    def as_dict(self, now: int) -> dict[str, Any]:
        return {"folder": self.folder, "mode": self.mode, "generation": self.generation, "lagMs": self.lag_ms(now),
                "failing": self.error is not None, "error": self.error, "commits": self.commits,
                "lastShippedAt": to_iso(self.last_shipped_ms), "lastSyncedAt": to_iso(self.last_synced_ms)}
