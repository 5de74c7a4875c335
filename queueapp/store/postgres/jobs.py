"""What PostgreSQL does with jobs its own way, over an asyncpg connection: the enqueue
(one statement of arrays, waking the other nodes), the claim that several nodes
share, and the reads of the leader's sweeps. Every other change of a job is a
transition of store/transitions.py, run by run.py.

The claim is where PostgreSQL differs: nodes share no memory, so the next jobs are
chosen by the database, in (priority, due time, id) order through the ``jobs_claim``
index, and ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers on any node pass over
each other's rows instead of waiting: no job is handed out twice.
"""

from __future__ import annotations

from typing import Any

from ...jsonfast import dumps
from ...model import Job, NewJob
from ..sql import jobs as sql
from ..sql.dialect import POSTGRES, numbered
from ..sql.jobs import COLUMNS, claim_best, row_to_job
from .cluster import NOTIFY_ROWS
from .statements import execute

_INSERT = (
    "INSERT INTO jobs (queue, name, state, priority, data, options, attempts, created_at, run_at, group_key,"
    " expire_at) SELECT queue, name, state, priority, data, options, attempts, created_at, run_at, group_key,"
    " expire_at FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::jsonb[],"
    " $6::jsonb[], $7::smallint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[])"
    " WITH ORDINALITY AS given(queue, name, state, priority, data, options, attempts, created_at, run_at,"
    " group_key, expire_at, n) ORDER BY n RETURNING id, queue, name"
)
# The insert and its wake-up in one statement (one round trip): a NOTIFY per queue
# added to with the names added, sent at commit. Ids are drawn in the order given,
# so ORDER BY id is it.
_ADD = (
    f"WITH added AS ({_INSERT}),"
    f" told AS (SELECT count({NOTIFY_ROWS}) AS n FROM (SELECT queue,"
    " string_agg(DISTINCT name, chr(31)) AS names FROM added GROUP BY queue) AS queues)"
    " SELECT added.id FROM added, told ORDER BY added.id"
)


async def add_jobs(conn: Any, jobs: list[NewJob], now: int) -> list[int]:
    """Jobs without keys (jobId, unique, dependencies), all or none, in one
    statement; their ids in the order given. Listening nodes are woken at commit."""
    return (await add_job_groups(conn, [(jobs, now)]))[0]


async def add_job_groups(conn: Any, groups: list[tuple[list[NewJob], int]]) -> list[list[int]]:
    """Several callers' enqueues (their jobs, and when each came) in one statement:
    each caller's ids, in its order."""
    rows: list[tuple[NewJob, int, Any, int]] = []
    for jobs, now in groups:
        for job in jobs:
            state, run_at = job.placed(now)
            rows.append((job, now, state.value, run_at))
    columns = (
        [j.queue for j, *_ in rows], [j.name for j, *_ in rows], [state for _, _, state, _ in rows],
        [j.priority for j, *_ in rows], [dumps(j.data) for j, *_ in rows], [dumps(j.options) for j, *_ in rows],
        [j.attempts for j, *_ in rows], [now for _, now, _, _ in rows], [run_at for *_, run_at in rows],
        [j.group for j, *_ in rows], [j.expire_at for j, *_ in rows],
    )
    ids = [row[0] for row in await conn.fetch(_ADD, *columns)]
    split, start = [], 0
    for jobs, _ in groups:
        split.append(ids[start:start + len(jobs)])
        start += len(jobs)
    return split


_UNGOVERNED = (" AND NOT EXISTS (SELECT 1 FROM group_policies WHERE queue = ?1)"
               " AND NOT EXISTS (SELECT 1 FROM group_keys WHERE queue = ?1)")
_CLAIMS = {(named, ungoverned): numbered(claim_best(POSTGRES, named, _UNGOVERNED if ungoverned else ""))
           for named in (False, True) for ungoverned in (False, True)}


async def claim_next(
    conn: Any, queue: str, names: list[str] | None, limit: int, now: int, lease_ms: int | None, node: str,
    worker: str, excluded: list[str] | None = None, ungoverned: bool = False,
) -> list[Job]:
    """Up to ``limit`` waiting jobs, best first (of ``names`` when given, never of
    ``excluded``), made active (leased for ``lease_ms``, or owned by ``node``'s
    handlers when None) and run by ``worker``; those past their expiry come back
    expired instead. Nothing while the queue is paused, nor (``ungoverned``) while
    it has group settings."""
    claim = _CLAIMS[names is not None, ungoverned]
    rows = await conn.fetch(claim, queue, names, limit, now, lease_ms, node, excluded or [], worker)
    jobs = [row_to_job(r) for r in rows]
    jobs.sort(key=lambda j: (j.priority, j.run_at, j.id))
    return jobs


async def promote_due(conn: Any, now: int, limit: int) -> list[int]:
    """delayed -> waiting for up to ``limit`` jobs due by ``now``, skipping rows
    another node is promoting (the leader's sweep)."""
    return [r[0] for r in await execute(conn, sql.promote_due(POSTGRES, now, limit))]


async def expired_leases(conn: Any, now: int, limit: int) -> list[tuple[int, str]]:
    """(id, lease token) of leased jobs whose lease ran out by ``now``, the earliest first."""
    rows = await conn.fetch("SELECT id, lease_token FROM jobs WHERE state = 'active' AND lease_expires_at <= $1"
                            " ORDER BY lease_expires_at LIMIT $2", now, limit)
    return [(r[0], r[1]) for r in rows]


async def get_job(conn: Any, job_id: int) -> Job | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE id = $1", job_id)
    return None if row is None else row_to_job(row)


async def orphans(conn: Any, now: int, gone_ms: int) -> list[Job]:
    """Jobs run by the handlers of a node not seen for ``gone_ms``: nothing will
    finish them (a lease that runs out is the reaper's; a live node's own jobs are
    its own). Liveness is read in the same statement: a node that joined a moment ago
    and claimed at once is alive."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM jobs WHERE state = 'active' AND lease_expires_at IS NULL"
        " AND (node IS NULL OR node NOT IN (SELECT id FROM nodes WHERE seen_at > $1::bigint - $2::bigint))",
        now, gone_ms)
    return [row_to_job(r) for r in rows]
