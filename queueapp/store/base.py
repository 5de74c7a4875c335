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
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ..access import ApiKey
from ..flow import GroupLimits, KeyChange, KeySettings
from ..history import Tally
from ..model import Job, JobState, NewJob, Schedule
from ..retry import Failure
from ..search import JobPage, JobSearch
from .actions import Acted, Selection
from .records import (
    Added,
    AddedRun,
    AuditEntry,
    Change,
    CommitStats,
    FinishedSample,
    LogLine,
    NameFigures,
    PendingJob,
    QueueSettings,
    ReplicaStatus,
    Report,
    StoredGroups,
    TableSnapshot,
    added_ids,
    added_jobs,
)
from .shared import SharedStore
from .standbys import StandbyGate

__all__ = ["Added", "AddedRun", "AuditEntry", "Change", "CommitStats", "FinishedSample", "LogLine", "NameFigures",
           "PendingJob", "QueueSettings", "Report", "Store", "StoredGroups", "TableSnapshot", "Then", "added_ids",
           "added_jobs"]

# A write's post-commit hook: called once with the write's result, in the event loop's
# thread, after the commit and before the caller is answered, even when the caller has
# stopped waiting. It must not await; the dispatcher's ledger is the one user.
Then = Callable[[Any], Any] | None


class Store(ABC):
    # What several nodes on one database need besides (shared.py); None: a store one
    # process serves alone.
    shared: SharedStore | None = None
    # How the copy of a replicated database is doing, and the standbys that follow
    # it; None: no replica.
    replica: ReplicaStatus | None = None
    standbys: StandbyGate | None = None

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
        self, ids: list[int], now: int, lease_ms: int | None, *, worker: str, taken_at: list[int] | None = None,
        then: Then = None,
    ) -> list[Job]:
        """waiting -> active for those of ``ids`` still waiting (and, given
        ``taken_at``, still due at the time each was taken at: one moved since is
        left alone); counts the attempt and gives each a fresh lease token.
        ``lease_ms`` None: owned by this process. ``worker``: who runs them. One
        past its expiry time is never started: it comes back expired."""

    @abstractmethod
    async def expire_jobs(self, now: int, limit: int, *, then: Then = None) -> list[Change]:
        """Waiting and delayed jobs whose expiry time has come -> expired (at most
        ``limit``, the earliest first)."""

    @abstractmethod
    async def settle_ended(self, job_id: int, state: str, now: int, *, then: Then = None) -> list[Change]:
        """Move on the jobs blocked on job ``job_id``, which ended ``state`` (as
        every change that ends a job does in its own transaction)."""

    @abstractmethod
    async def settle_lingering(self, now: int) -> int:
        """At start-up: settle the blocked jobs whose dependency ended without it."""

    @abstractmethod
    async def promote_jobs(self, due: list[tuple[int, int]], now: int, *, then: Then = None) -> list[int]:
        """delayed -> waiting for (id, due time) pairs; returns the ids still delayed
        until that time (a job moved since keeps its new time)."""

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
        """Enqueue a run and advance the schedule atomically; see store/changes.py (fire_schedule)."""

    @abstractmethod
    async def run_schedule_now(self, queue: str, name: str, job: NewJob, now: int, *,
                               then: Then = None) -> tuple[list[Added], bool] | None:
        """One run of a schedule now, recorded as its last run; None: no such schedule."""

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

    @abstractmethod
    async def record_audit(self, entry: AuditEntry) -> None:
        """Keep an operator change in the audit trail."""

    @abstractmethod
    async def prune_audit(self, before: int) -> int:
        """Remove the audit entries older than ``before``; how many."""

    @abstractmethod
    async def read_audit(self, queue: str | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        """The newest audit entries (of ``queue``) numbered before ``before_id``."""

    @abstractmethod
    async def api_keys(self) -> list[ApiKey]:
        """Every API key, revoked ones too, oldest first."""

    @abstractmethod
    async def save_api_key(self, key: ApiKey) -> None:
        """Keep a new key. Raises Conflict when a key not revoked has its name, or
        when there are too many."""

    @abstractmethod
    async def revoke_api_key(self, key_id: str, now: int) -> ApiKey | None:
        """Revoke the key (once: a second revoke keeps the first's time); None: no such key."""

    @abstractmethod
    async def rotate_api_key(self, key_id: str, secret_hash: str, previous_until: int | None,
                             now: int) -> ApiKey | None:
        """A new secret for a key not revoked, the old one good until ``previous_until``
        (None: no longer); None: no such key, or it is revoked."""

    @abstractmethod
    async def append_log(self, job_id: int, token: str, lines: list[str], now: int, keep: int) -> int | None:
        """Append ``lines`` to the log of the job active under ``token``, keeping its
        newest ``keep``; the number of its last line, or None when the job is not
        active under that token."""

    # reads -------------------------------------------------------------------
    @abstractmethod
    async def get_job(self, job_id: int) -> Job | None: ...

    @abstractmethod
    async def dependents(self, job_id: int, limit: int) -> list[tuple[int, str, str]]:
        """(id, name, state) of the jobs waiting on ``job_id`` (options.dependsOn)."""

    @abstractmethod
    async def read_log(self, job_id: int, after_seq: int, limit: int) -> list[LogLine]:
        """The job's log lines numbered after ``after_seq``, in order."""

    @abstractmethod
    async def search_jobs(self, search: JobSearch) -> JobPage:
        """A page of the jobs ``search`` finds (see search.py), in id order after its
        cursor, with the cursor of the next page."""

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

    # group flow control ---------------------------------------------------------
    @abstractmethod
    async def group_settings(self) -> list[StoredGroups]:
        """Every queue's stored group policy and keys' settings."""

    @abstractmethod
    async def group_starts(self, since: int) -> list[tuple[str, str, int]]:
        """(queue, key, started_at) of grouped jobs started at ``since`` or later."""

    @abstractmethod
    async def set_group_policy(self, queue: str, limits: GroupLimits | None, now: int, *,
                               then: Then = None) -> None:
        """Store a queue's group limits (None: drop them; the config file's apply)."""

    @abstractmethod
    async def set_group_key(self, queue: str, key: str, change: KeyChange, now: int, *,
                            then: Then = None) -> KeySettings:
        """Change one key's own limits or pause, only what ``change`` names (nothing
        of its own left: forget it); the key's settings as they now stand."""

    # the dashboard ------------------------------------------------------------
    @abstractmethod
    async def act_on_jobs(
        self, action: str, selection: Selection, now: int, limit: int, *, then: Then = None
    ) -> Acted:
        """Apply ``action`` (retry, cancel, promote, delete) to up to ``limit`` of the
        chosen jobs in their eligible states (actions.ELIGIBLE), in one transaction."""

    @abstractmethod
    async def failure_groups(self, queue: str, limit: int) -> list[dict[str, Any]]:
        """Failed jobs grouped by error message, the commonest first: error, count,
        firstSeen and lastSeen (ms), names."""

    @abstractmethod
    async def count_action(self, action: str, selection: Selection) -> int:
        """How many jobs ``act_on_jobs`` would change, over every call (a dry run)."""

    @abstractmethod
    async def record_history(self, minute: int, tallies: list[tuple[str, Tally]]) -> None:
        """Add what each queue did in the minute starting at ``minute``."""

    @abstractmethod
    async def roll_up_history(self, before: int) -> int:
        """Minutes that started before ``before`` become hours; how many minutes."""

    @abstractmethod
    async def prune_history(self, before: int) -> int:
        """Remove history that started before ``before``; how many rows."""

    @abstractmethod
    async def read_history(self, queue: str, since: int) -> list[tuple[int, Tally]]:
        """A queue's history from ``since`` on: (start, tally), oldest first."""
