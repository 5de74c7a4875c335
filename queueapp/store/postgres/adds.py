"""Enqueues with keys on PostgreSQL: ``options.jobId``, ``options.unique`` and
``options.dependsOn``, decided in the enqueue's own transaction as in the SQLite
store, and safe across nodes:

- a jobId is inserted with ``ON CONFLICT DO NOTHING`` on its unique index, so two
  nodes adding one key make one job, and the loser answers the winner's;
- a unique key is looked up under a transaction-scoped advisory lock on (queue,
  key), so concurrent enqueues of one key on any nodes are decided one at a time;
- a dependent is inserted blocked with an edge per unfinished dependency, its
  dependencies' rows locked (``FOR SHARE``) so none can finish between the look and
  the edge.
"""

from __future__ import annotations

from typing import Any

from ...errors import NotFound
from ...jsonfast import dumps
from ...model import Job, JobState, NewJob
from .jobs import COLUMNS, row_to_job

_UNFINISHED = ("waiting", "delayed", "active", "blocked")
_INSERT = (
    "INSERT INTO jobs (queue, name, state, priority, data, options, attempts, job_key, created_at, run_at,"
    " unique_key, expire_at, group_key, finished_at, error)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    f" ON CONFLICT (queue, job_key) WHERE job_key IS NOT NULL DO NOTHING RETURNING {COLUMNS}"
)


class Kept:
    """One job of a keyed enqueue: the job stored or kept, whether it was created,
    and for a debounced kept job its state and due time before (for memory)."""

    __slots__ = ("job", "created", "moved")

    def __init__(self, job: Job, created: bool, moved: tuple[JobState, int] | None = None) -> None:
        self.job, self.created, self.moved = job, created, moved


async def add_keyed(conn: Any, jobs: list[NewJob], now: int) -> list[Kept]:
    """Each job in order (a later one may name an earlier one by "#n" or share its
    key); all or none (the caller's transaction)."""
    results: list[Kept] = []
    for index, new in enumerate(jobs):
        kept = await _kept_by_unique(conn, new, now) if new.unique is not None else None
        if kept is None:
            kept = await _insert(conn, new, now, _resolve(new.depends_on, index, results))
        results.append(kept)
    return results


def _resolve(refs: tuple[str, ...], index: int, earlier: list[Kept]) -> list[int]:
    ids = []
    for ref in refs:
        if ref.startswith("#"):
            n = int(ref[1:])
            if n >= index:
                raise NotFound(f"dependsOn {ref}: no earlier job #{n} in this request (a job may depend on an"
                               " earlier job of its request, or on a job by id)")
            ids.append(earlier[n].job.id)
        else:
            ids.append(int(ref))
    return list(dict.fromkeys(ids))


async def _insert(conn: Any, new: NewJob, now: int, deps: list[int]) -> Kept:
    state, run_at = new.placed(now)
    finished, error, blocking = None, None, []
    options = new.options
    if deps:
        rows = await conn.fetch("SELECT id, state FROM jobs WHERE id = ANY($1::bigint[]) FOR SHARE", deps)
        states = {r[0]: r[1] for r in rows}
        missing = [d for d in deps if d not in states]
        if missing:
            raise NotFound(f"dependsOn names job {missing[0]}, which does not exist")
        failed = [d for d in deps if states[d] not in _UNFINISHED and states[d] != "completed"]
        blocking = [d for d in deps if states[d] in _UNFINISHED]
        if failed and not options.get("allowDependencyFailure"):
            state, finished, error = JobState.FAILED, now, f"dependency {failed[0]} {states[failed[0]]}"
        elif blocking:
            state = JobState.BLOCKED
        options = {**options, "dependsOn": [str(d) for d in deps]}  # "#n" said as the job it named
    row = await conn.fetchrow(
        _INSERT, new.queue, new.name, state.value, new.priority, dumps(new.data), dumps(options), new.attempts,
        new.job_key, now, run_at, None if new.unique is None else new.unique.key, new.expire_at, new.group,
        finished, error)
    if row is None:  # its jobId is kept: that job answers
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE queue = $1 AND job_key = $2",
                                  new.queue, new.job_key)
        return Kept(row_to_job(row), created=False)
    if state is JobState.BLOCKED:
        await conn.executemany("INSERT INTO job_dependencies (depends_on, job_id) VALUES ($1, $2)",
                               [(d, row[0]) for d in blocking])
    return Kept(row_to_job(row), created=True)


async def _kept_by_unique(conn: Any, new: NewJob, now: int) -> Kept | None:
    """The job ``new``'s unique key holds (replaced or debounced as its mode says),
    or None: insert ``new``. The key's lock is held until the transaction ends."""
    unique = new.unique
    assert unique is not None
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(length($1) || ':' || $1 || $2, 0))",
                       new.queue, unique.key)
    if new.job_key is not None:
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE queue = $1 AND job_key = $2",
                                  new.queue, new.job_key)
        if row is not None:
            return Kept(row_to_job(row), created=False)
    held = [*unique.states, "blocked"] if "waiting" in unique.states else list(unique.states)
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM jobs WHERE queue = $1 AND unique_key = $2 AND (state = ANY($3::text[])"
        " OR (state IN ('completed', 'failed', 'cancelled', 'expired') AND finished_at > $4))"
        " ORDER BY id DESC LIMIT 1", new.queue, unique.key, held, now - unique.ttl_ms)
    if row is None:
        return None
    kept = row_to_job(row)
    if unique.mode == "reject" or kept.state not in (JobState.WAITING, JobState.DELAYED):
        return Kept(kept, created=False)
    if unique.mode == "replace":
        row = await conn.fetchrow(f"UPDATE jobs SET data = $1::jsonb WHERE id = $2 RETURNING {COLUMNS}",
                                  dumps(new.data), kept.id)
        return Kept(row_to_job(row), created=False)
    state, run_at = new.placed(now)  # debounce: it runs when the new job would have
    row = await conn.fetchrow(
        f"UPDATE jobs SET data = $1::jsonb, state = $2, run_at = $3 WHERE id = $4 RETURNING {COLUMNS}",
        dumps(new.data), state.value, run_at, kept.id)
    return Kept(row_to_job(row), created=False, moved=(kept.state, kept.run_at))
