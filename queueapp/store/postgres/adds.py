"""Enqueues with keys on PostgreSQL: ``options.jobId``, ``options.unique`` and
``options.dependsOn``, decided in the enqueue's own transaction as in the SQLite
store, and safe across nodes:

- a jobId is inserted with ``ON CONFLICT DO NOTHING`` on its unique index, so two
  nodes adding one key make one job, and the loser answers the winner's;
- a unique key is looked up under a transaction-scoped advisory lock on (queue,
  key), so concurrent enqueues of one key on any nodes are decided one at a time,
  and its holder's row is locked, so no other change of it falls between the look
  and the update;
- a dependent is inserted blocked with an edge per unfinished dependency, its
  dependencies' rows locked (``FOR SHARE``) so none can finish between the look and
  the edge.
"""

from __future__ import annotations

from typing import Any

from ...fingerprint import error_group
from ...jsonfast import dumps
from ...model import Job, JobState, NewJob
from .. import transitions
from ..dependencies import placement, resolve
from ..sql.dialect import POSTGRES
from ..sql.jobs import COLUMNS, row_to_job
from ..sql.plan import row as one_row
from ..unique import job_key_query
from .statements import drive, execute

_INSERT = (
    "INSERT INTO jobs (queue, name, state, priority, data, options, attempts, job_key, created_at, run_at,"
    " unique_key, expire_at, group_key, finished_at, error, error_group)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    f" ON CONFLICT (queue, job_key) WHERE job_key IS NOT NULL DO NOTHING RETURNING {COLUMNS}"
)


class Kept:
    """One job of a keyed enqueue: the job stored or kept, whether it was created,
    and for a debounced kept job its state and due time before (for memory)."""

    __slots__ = ("job", "created", "moved")

    def __init__(self, job: Job, created: bool, moved: tuple[JobState, int] | None = None) -> None:
        self.job, self.created, self.moved = job, created, moved

    @property
    def id(self) -> int:
        return self.job.id


async def add_keyed(conn: Any, jobs: list[NewJob], now: int) -> list[Kept]:
    """Each job in order (a later one may name an earlier one by "#n" or share its
    key); all or none (the caller's transaction)."""
    results: list[Kept] = []
    for index, new in enumerate(jobs):
        kept = await _kept_by_unique(conn, new, now) if new.unique is not None else None
        if kept is None:
            kept = await _insert(conn, new, now, resolve(new.depends_on, index, results))
        results.append(kept)
    return results


async def _insert(conn: Any, new: NewJob, now: int, deps: list[int]) -> Kept:
    state, run_at = new.placed(now)
    finished, error, blocking, options = None, None, [], new.options
    if deps:
        rows = await conn.fetch("SELECT id, state FROM jobs WHERE id = ANY($1::bigint[]) FOR SHARE", deps)
        p = placement(new, deps, {r[0]: r[1] for r in rows}, now)
        state, run_at, finished, error, blocking, options = (p.state, p.run_at, p.finished_at, p.error, p.blocking,
                                                             p.options)
    row = await conn.fetchrow(
        _INSERT, new.queue, new.name, state.value, new.priority, dumps(new.data), dumps(options), new.attempts,
        new.job_key, now, run_at, None if new.unique is None else new.unique.key, new.expire_at, new.group,
        finished, error, error_group(error))
    if row is None:  # its jobId is kept: that job answers
        query, params = job_key_query(new)
        return Kept(row_to_job(await execute(conn, one_row(query, *params))), created=False)
    if blocking:
        await conn.executemany("INSERT INTO job_dependencies (depends_on, job_id) VALUES ($1, $2)",
                               [(d, row[0]) for d in blocking])
    return Kept(row_to_job(row), created=True)


async def _kept_by_unique(conn: Any, new: NewJob, now: int) -> Kept | None:
    """The job ``new``'s unique key (or jobId) keeps, replaced or debounced as its mode
    says (transitions.kept), or None: insert ``new``. The key's lock is held until the
    transaction ends."""
    found = await drive(conn, transitions.kept(POSTGRES, new, now))
    return None if found is None else Kept(found.job, found.created, found.moved)
