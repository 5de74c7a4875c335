"""options.dependsOn: a job blocked until its dependencies have completed. An edge
per unfinished dependency lives in ``job_dependencies``; when a dependency finishes,
its edges go in the same transaction, and each dependent moves on: to waiting (or
delayed) when it has no edge left, or to failed when the dependency failed for good
and the dependent does not ``allowDependencyFailure`` (which fails its own
dependents in turn). Write functions run in the writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import NotFound
from ..model import Job, JobState, NewJob, dumps
from . import jobs
from .jobs import COLUMNS, row_to_job
from .records import Added, Change

UNFINISHED_STATES = ("waiting", "delayed", "active", "blocked")
_INSERT = (
    "INSERT INTO jobs (id, queue, name, state, priority, data, options, attempts, job_key, created_at, run_at,"
    " unique_key, expire_at, finished_at, error, group_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" RETURNING {COLUMNS}"
)


class HasId(Protocol):
    @property
    def id(self) -> int: ...


def resolve(refs: tuple[str, ...], index: int, earlier: Sequence[HasId | None]) -> list[int]:
    """Job ids of ``refs``: an id, or "#n", the n-th job of the same request (an
    earlier one: a job cannot wait for itself or a later one)."""
    ids = []
    for ref in refs:
        if ref.startswith("#"):
            n = int(ref[1:])
            if n >= index or earlier[n] is None:
                raise NotFound(f"dependsOn {ref}: no earlier job #{n} in this request (a job may depend on an"
                               " earlier job of its request, or on a job by id)")
            added = earlier[n]
            assert added is not None
            ids.append(added.id)
        else:
            ids.append(int(ref))
    return list(dict.fromkeys(ids))


@dataclass(frozen=True, slots=True)
class Placement:
    """How a job with dependencies is stored: its state (blocked while any is
    unfinished, failed when one ended otherwise than completed, unless allowed), and
    the edges it waits on."""

    state: JobState
    run_at: int
    finished_at: int | None
    error: str | None
    blocking: list[int]
    options: dict[str, Any]


def placement(new: NewJob, deps: list[int], states: dict[int, str], now: int) -> Placement:
    """``new``'s placement given its dependencies' ``states`` (by id, from either
    engine). Raises NotFound for a dependency that does not exist."""
    missing = [d for d in deps if d not in states]
    if missing:
        raise NotFound(f"dependsOn names job {missing[0]}, which does not exist")
    failed = [d for d in deps if states[d] not in UNFINISHED_STATES and states[d] != "completed"]
    blocking = [d for d in deps if states[d] in UNFINISHED_STATES]
    state, run_at = new.placed(now)
    finished, error = None, None
    if failed and not new.options.get("allowDependencyFailure"):
        state, finished, error = JobState.FAILED, now, f"dependency {failed[0]} {states[failed[0]]}"
    elif blocking:
        state = JobState.BLOCKED
    options = {**new.options, "dependsOn": [str(d) for d in deps]}  # "#n" said as the job it named
    return Placement(state, run_at, finished, error, blocking if state is JobState.BLOCKED else [], options)


def add_dependent(conn: sqlite3.Connection, job_id: int, new: NewJob, deps: list[int], now: int) -> Added:
    """Insert ``new`` as ``job_id`` as its placement says, with its edges."""
    marks = ", ".join("?" * len(deps))
    states = dict(conn.execute(f"SELECT id, state FROM jobs WHERE id IN ({marks})", deps).fetchall())
    p = placement(new, deps, states, now)
    row = conn.execute(_INSERT, (
        job_id, new.queue, new.name, p.state.value, new.priority, dumps(new.data), dumps(p.options), new.attempts,
        new.job_key, now, p.run_at, None if new.unique is None else new.unique.key, new.expire_at, p.finished_at,
        p.error, new.group,
    )).fetchone()
    conn.executemany("INSERT INTO job_dependencies (depends_on, job_id) VALUES (?, ?)",
                     [(d, job_id) for d in p.blocking])
    return Added(row_to_job(row), created=True)


def settle(conn: sqlite3.Connection, finished: int, state: str, now: int) -> list[Change]:
    """The dependents of job ``finished``, which ended ``state`` (completed, failed,
    cancelled, expired or deleted), moved on, and theirs in turn when they fail."""
    changes: list[Change] = []
    pending = [(finished, state)]
    while pending:
        dep_id, dep_state = pending.pop()
        rows = conn.execute("DELETE FROM job_dependencies WHERE depends_on = ? RETURNING job_id", (dep_id,))
        for (job_id,) in sorted(rows.fetchall()):
            row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ? AND state = 'blocked'", (job_id,)).fetchone()
            if row is None:
                continue
            job = row_to_job(row)
            if dep_state == "completed" or job.options.get("allowDependencyFailure"):
                left = conn.execute("SELECT 1 FROM job_dependencies WHERE job_id = ? LIMIT 1", (job_id,)).fetchone()
                if left is None:
                    row = conn.execute(
                        "UPDATE jobs SET state = CASE WHEN run_at > ?1 THEN 'delayed' ELSE 'waiting' END,"
                        f" run_at = max(run_at, ?1) WHERE id = ?2 AND state = 'blocked' RETURNING {COLUMNS}",
                        (now, job_id)).fetchone()
                    changes.append(Change(row_to_job(row), JobState.BLOCKED))
                continue
            conn.execute("DELETE FROM job_dependencies WHERE job_id = ?", (job_id,))
            row = conn.execute(
                "UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ? AND state = 'blocked'"
                f" RETURNING {COLUMNS}", (now, f"dependency {dep_id} {dep_state}", job_id)).fetchone()
            changes.append(Change(row_to_job(row), JobState.BLOCKED))
            pending.append((job_id, "failed"))
    return changes


# Edges whose dependency has ended or is gone: (dependency, how it ended).
LINGERING = (
    "SELECT DISTINCT d.depends_on, coalesce(j.state, 'deleted') FROM job_dependencies d"
    " LEFT JOIN jobs j ON j.id = d.depends_on"
    " WHERE j.id IS NULL OR j.state NOT IN ('waiting', 'delayed', 'active', 'blocked')"
)


def settle_lingering(conn: sqlite3.Connection, now: int) -> int:
    """At start-up: edges whose dependency finished (or is gone) without them being
    settled (a crash between the two transactions that do it: an expiry found by a
    claim, say). How many blocked jobs moved."""
    rows = conn.execute(LINGERING).fetchall()
    return sum(len(settle(conn, dep_id, state, now)) for dep_id, state in rows)


class Teller(Protocol):
    """Adds a finished job's callback (callbacks.Callbacks)."""

    def tell(self, conn: sqlite3.Connection, job: Job, change: Change, now: int) -> None: ...


def follow(conn: sqlite3.Connection, change: Change, ended: str, now: int, teller: Teller | None) -> None:
    """The dependents of the job ``change`` ended (``ended``: how) moved on, into
    ``change.settled``, and the callbacks of those it failed added."""
    settled = settle(conn, change.job.id, ended, now)
    change.settled.extend(settled)
    if teller is not None:
        for moved in settled:
            teller.tell(conn, moved.job, change, now)


def settled_changes(conn: sqlite3.Connection, changes: list[Change], now: int,
                    teller: Teller | None = None) -> list[Change]:
    """``changes`` (jobs that ended: cancelled, expired, deleted), each followed."""
    for change in changes:
        if change.job.state is not JobState.ACTIVE:
            follow(conn, change, "deleted" if change.deleted else str(change.job.state), now, teller)
    return changes


def cancel_job(conn: sqlite3.Connection, job_id: int, now: int, teller: Teller | None = None) -> Change:
    return settled_changes(conn, [jobs.cancel_job(conn, job_id, now)], now, teller)[0]


def expire_jobs(conn: sqlite3.Connection, now: int, limit: int, teller: Teller | None = None) -> list[Change]:
    return settled_changes(conn, jobs.expire_jobs(conn, now, limit), now, teller)
