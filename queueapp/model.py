"""The job: its states, its priorities, and the record the store keeps.

This module depends on nothing else in the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from .jsonfast import dumps  # noqa: F401 - re-exported for the store and the API


class JobState(StrEnum):
    WAITING = "waiting"
    """Enqueued and due. The dispatcher hands it to a worker (in-process or leased)."""
    DELAYED = "delayed"
    """Due later: enqueued with a delay or a time, or waiting out a retry backoff.
    The dispatcher's timer moves it to waiting when due."""
    ACTIVE = "active"
    """Claimed by a worker. Its worker completes or fails it; recovery moves it back to
    waiting (or to failed) when the process died or the lease expired."""
    COMPLETED = "completed"
    """Done. Only cleaning removes it."""
    FAILED = "failed"
    """Dead letter: attempts spent, or failed with retry off. A retry moves it to waiting."""
    CANCELLED = "cancelled"
    """Cancelled before it ran. A retry moves it to waiting."""
    EXPIRED = "expired"
    """Not started by its expiry time (options.expireInMs). A retry moves it to waiting."""
    BLOCKED = "blocked"
    """Waiting for its dependencies (options.dependsOn) to complete; then waiting or
    delayed. A dependency that fails for good fails it too."""


UNFINISHED = frozenset({JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.BLOCKED})
FINISHED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})

# Which state may follow which. The store enforces each edge with a guarded UPDATE;
# this table documents them and lets tests check the store against it.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.WAITING: frozenset({JobState.ACTIVE, JobState.CANCELLED, JobState.EXPIRED}),
    JobState.DELAYED: frozenset({JobState.WAITING, JobState.CANCELLED, JobState.EXPIRED}),
    JobState.ACTIVE: frozenset(
        {JobState.COMPLETED, JobState.DELAYED, JobState.WAITING, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset({JobState.WAITING}),
    JobState.CANCELLED: frozenset({JobState.WAITING}),
    JobState.EXPIRED: frozenset({JobState.WAITING}),
    JobState.BLOCKED: frozenset({JobState.WAITING, JobState.DELAYED, JobState.FAILED, JobState.CANCELLED}),
}


class Priority(IntEnum):
    CRITICAL = 1
    HIGH = 2
    NORMAL = 3
    LOW = 4
    BACKGROUND = 5


# The seed's rule: more important jobs get more attempts.
DEFAULT_ATTEMPTS: dict[int, int] = {1: 5, 2: 4, 3: 3, 4: 2, 5: 1}


@dataclass(frozen=True, slots=True)
class Unique:
    """options.unique of a job to enqueue (see options.UniqueOptions)."""

    key: str
    ttl_ms: int
    mode: str  # reject, replace, debounce
    states: tuple[str, ...]


@dataclass(slots=True)
class NewJob:
    """A job to enqueue, already validated."""

    queue: str
    name: str
    data: dict[str, Any]
    priority: int
    attempts: int
    run_at: int
    options: dict[str, Any] = field(default_factory=dict)
    job_key: str | None = None
    unique: Unique | None = None
    expire_at: int | None = None  # not started after this time (ms)
    depends_on: tuple[str, ...] = ()  # job ids, or "#n": the n-th job of the same bulk

    @property
    def group(self) -> str | None:
        """options.group: the key its flow control counts it under."""
        return self.options.get("group")

    def placed(self, now: int) -> tuple[JobState, int]:
        """The state and due time the job is stored with when added at ``now``."""
        if self.run_at > now:
            return JobState.DELAYED, self.run_at
        return JobState.WAITING, now


@dataclass(slots=True)
class Job:
    """A job as stored. Times are milliseconds since the epoch."""

    id: int
    queue: str
    name: str
    state: JobState
    priority: int
    data: dict[str, Any]
    options: dict[str, Any]
    attempts: int
    attempts_made: int
    progress: Any
    result: Any
    error: str | None
    errors: list[dict[str, Any]]
    job_key: str | None
    created_at: int
    run_at: int
    started_at: int | None
    finished_at: int | None
    lease_token: str | None = None
    lease_expires_at: int | None = None
    heartbeat_at: int | None = None
    # who ran the latest attempt: a leasing worker's name or address, or the appliance
    worker: str | None = None

    @property
    def timeout_ms(self) -> int | None:
        return self.options.get("timeout")

    @property
    def group(self) -> str | None:
        return self.options.get("group")


def fresh_job(job_id: int, new: NewJob, now: int) -> Job:
    """The job ``new`` becomes when stored under ``job_id`` at ``now``."""
    state, run_at = new.placed(now)
    return Job(job_id, new.queue, new.name, state, new.priority, new.data, new.options, new.attempts,
               0, 0, None, None, [], new.job_key, now, run_at, None, None)


@dataclass(slots=True)
class Schedule:
    """A recurring schedule: enqueues ``job_name`` by ``cron`` (in ``timezone``) or
    every ``every_ms``. Times are milliseconds since the epoch."""

    queue: str
    name: str
    job_name: str
    data: dict[str, Any]
    options: dict[str, Any]
    cron: str | None
    timezone: str
    every_ms: int | None
    missed: str  # "skip": one run for any number missed; "all": each missed run (capped)
    overlap: bool  # False: no new run while the previous run's job is unfinished
    enabled: bool
    anchor_at: int
    next_run_at: int | None
    last_run_at: int | None = None
    last_job_id: int | None = None
    created_at: int = 0
    updated_at: int = 0
