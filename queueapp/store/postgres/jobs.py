"""The job lifecycle on PostgreSQL, over an asyncpg connection: enqueue, the claim
that several nodes share, completion, failure, promotion and the rescue of leases
that ran out. Each state change is one guarded UPDATE, as in the SQLite store, so a
stale caller changes nothing.

The claim is where PostgreSQL differs: nodes share no memory, so the next jobs are
chosen by the database, in (priority, due time, id) order through the ``jobs_claim``
index, and ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers on any node pass over
each other's rows instead of waiting: no job is handed out twice.
"""

from __future__ import annotations

from typing import Any

from ...clock import to_iso
from ...jsonfast import dumps
from ...model import FINISHED, Job, JobState, NewJob
from ...retry import Failure, after_failure
from ..jobs import COLUMNS, QUALIFIED, row_to_job  # a row reads the same off either engine
from .cluster import NOTIFY_ROWS

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


# The jobs to start, chosen by the database: the best waiting ones of the queue (of
# ``names`` only, when given), skipping rows another claimer holds. One past its
# expiry is ended instead of started, in the same statement.
def _start_or_expire(now: str, lease_ms: str, node: str) -> str:
    """The SET of a claim, with these placeholders: active from ``now`` on ``node``
    (leased through it for ``lease_ms``, or run by its handlers when that is null), or,
    for a job past its expiry, expired instead."""
    late = f"expire_at <= {now}"
    return (
        f"UPDATE jobs SET state = CASE WHEN {late} THEN 'expired' ELSE 'active' END,"
        f" finished_at = CASE WHEN {late} THEN {now} END,"
        f" started_at = CASE WHEN {late} THEN started_at ELSE {now} END,"
        f" heartbeat_at = CASE WHEN {late} THEN heartbeat_at ELSE {now} END,"
        f" attempts_made = attempts_made + CASE WHEN {late} THEN 0 ELSE 1 END,"
        f" lease_token = CASE WHEN {late} THEN NULL ELSE replace(gen_random_uuid()::text, '-', '') END,"
        f" lease_expires_at = CASE WHEN {late} OR {lease_ms}::bigint IS NULL THEN NULL"
        f" ELSE {now} + {lease_ms}::bigint END,"
        f" node = {node}"
    )


_RETURNING = f" RETURNING {QUALIFIED}"
def _claim_sql(named: bool, condition: str = "") -> str:
    """The claim, of the names in $2 (``named``: a statement of its own, whose plan
    reads those names' waiting jobs through ``jobs_claim_named``) or of any name
    ($2 ignored: through ``jobs_claim``); a paused queue gives nothing (a one-time
    filter of the plan, not a join per row), nor one where ``condition`` (on $1, the
    queue) is false."""
    names = "name = ANY($2::text[])" if named else "$2::text[] IS NULL"
    return (
        f"WITH picked AS (SELECT id FROM jobs WHERE queue = $1 AND state = 'waiting' AND {names}"
        " AND NOT name = ANY($7::text[])"
        f" AND NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = $1 AND paused){condition}"
        " ORDER BY priority, run_at, id LIMIT $3"
        f" FOR UPDATE SKIP LOCKED) {_start_or_expire('$4', '$5', '$6')}"
        f" FROM picked WHERE jobs.id = picked.id{_RETURNING}"
    )


# Only while the queue has no stored group settings: the common claim in one round trip.
_UNGOVERNED = (" AND NOT EXISTS (SELECT 1 FROM group_policies WHERE queue = $1)"
               " AND NOT EXISTS (SELECT 1 FROM group_keys WHERE queue = $1)")
_CLAIMS = {(named, ungoverned): _claim_sql(named, _UNGOVERNED if ungoverned else "")
           for named in (False, True) for ungoverned in (False, True)}


async def claim_next(
    conn: Any, queue: str, names: list[str] | None, limit: int, now: int, lease_ms: int | None, node: str,
    excluded: list[str] | None = None, ungoverned: bool = False,
) -> list[Job]:
    """Up to ``limit`` waiting jobs, best first (of ``names`` when given, never of
    ``excluded``), made active (leased for ``lease_ms``, or owned by ``node``'s
    handlers when None); those past their expiry come back expired instead. Nothing
    while the queue is paused, nor (``ungoverned``) while it has group settings."""
    sql = _CLAIMS[names is not None, ungoverned]
    rows = await conn.fetch(sql, queue, names, limit, now, lease_ms, node, excluded or [])
    jobs = [row_to_job(r) for r in rows]
    jobs.sort(key=lambda j: (j.priority, j.run_at, j.id))
    return jobs


# The jobs this node's memory took, by id and the due time each was taken at (one
# moved since is left alone), made active; one past its expiry ended instead.
_CLAIM_IDS = (
    f"{_start_or_expire('$2', '$3', '$4')} FROM unnest($1::bigint[], $5::bigint[]) AS taken(id, due)"
    " WHERE jobs.id = taken.id AND jobs.state = 'waiting' AND (taken.due IS NULL OR jobs.run_at = taken.due)"
    f"{_RETURNING}"
)


async def claim_ids(conn: Any, ids: list[int], now: int, lease_ms: int | None, node: str,
                    taken_at: list[int] | None = None) -> list[Job]:
    """Those of ``ids`` still waiting (and still due at ``taken_at``), in the order
    of ``ids``: active, or expired when past their expiry."""
    dues = taken_at if taken_at is not None else [None] * len(ids)
    by_id = {r[0]: row_to_job(r) for r in await conn.fetch(_CLAIM_IDS, ids, now, lease_ms, node, dues)}
    return [by_id[job_id] for job_id in ids if job_id in by_id]


_COMPLETE = (
    "UPDATE jobs SET state = 'completed', finished_at = $3, result = $4::jsonb,"
    " progress = CASE WHEN jsonb_typeof(progress) = 'number' THEN '100'::jsonb ELSE progress END,"
    " lease_token = NULL, lease_expires_at = NULL, node = NULL"
    f" WHERE id = $1 AND state = 'active' AND lease_token = $2 RETURNING {COLUMNS}"
)


_COMPLETE_MANY = (
    "UPDATE jobs SET state = 'completed', finished_at = done.at, result = done.result,"
    " progress = CASE WHEN jsonb_typeof(progress) = 'number' THEN '100'::jsonb ELSE progress END,"
    " lease_token = NULL, lease_expires_at = NULL, node = NULL"
    " FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::bigint[]) AS done(id, token, result, at)"
    " WHERE jobs.id = done.id AND jobs.state = 'active' AND jobs.lease_token = done.token"
    f" RETURNING {QUALIFIED}"
)


async def complete_jobs(conn: Any, items: list[tuple[int, str, Any]], now: int | list[int]) -> dict[int, Job]:
    """active -> completed in one statement for each (id, token, result) active
    under that token (ids distinct), finished at ``now`` (or each at its own time);
    the jobs completed, by id."""
    times = now if isinstance(now, list) else [now] * len(items)
    rows = await conn.fetch(_COMPLETE_MANY, [i[0] for i in items], [i[1] for i in items],
                            [dumps(i[2]) for i in items], times)
    return {r[0]: row_to_job(r) for r in rows}


async def complete_job(conn: Any, job_id: int, token: str, result: Any, now: int) -> Job | None:
    """active -> completed for the job active under ``token``; None when it is not."""
    row = await conn.fetchrow(_COMPLETE, job_id, token, now, dumps(result))
    return None if row is None else row_to_job(row)


async def fail_job(conn: Any, job_id: int, token: str, failure: Failure, now: int) -> Job | None:
    """Fail the attempt of the job active under ``token``: back in line with its
    backoff, or failed for good when its attempts are spent."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM jobs WHERE id = $1 AND state = 'active' AND lease_token = $2 FOR UPDATE",
            job_id, token)
        if row is None:
            return None
        job = row_to_job(row)
        state, run_at = after_failure(job.name, job.options, job.attempts, job.attempts_made, now, failure)
        job.errors.append({"attempt": job.attempts_made, "message": failure.message, "at": to_iso(now)})
        row = await conn.fetchrow(
            "UPDATE jobs SET state = $2, run_at = $3, finished_at = $4, error = $5, errors = $6::jsonb,"
            f" lease_token = NULL, lease_expires_at = NULL, node = NULL WHERE id = $1 RETURNING {COLUMNS}",
            job_id, state, run_at, now if state in FINISHED else None, failure.message, dumps(job.errors))
        return row_to_job(row)


async def promote_taken(conn: Any, due: list[tuple[int, int]]) -> list[int]:
    """delayed -> waiting for (id, due time) pairs still delayed until that time."""
    rows = await conn.fetch(
        "UPDATE jobs SET state = 'waiting' FROM unnest($1::bigint[], $2::bigint[]) AS due(id, at)"
        " WHERE jobs.id = due.id AND jobs.run_at = due.at AND jobs.state = 'delayed' RETURNING jobs.id",
        [d[0] for d in due], [d[1] for d in due])
    return [r[0] for r in rows]


async def promote_due(conn: Any, now: int, limit: int) -> list[int]:
    """delayed -> waiting for up to ``limit`` jobs due by ``now``, skipping rows
    another node is promoting."""
    rows = await conn.fetch(
        "UPDATE jobs SET state = 'waiting' WHERE id IN (SELECT id FROM jobs WHERE state = 'delayed'"
        " AND run_at <= $1 ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id", now, limit)
    return [r[0] for r in rows]


async def expired_leases(conn: Any, now: int, limit: int) -> list[tuple[int, str]]:
    """(id, lease token) of leased jobs whose lease ran out by ``now``, the earliest first."""
    rows = await conn.fetch("SELECT id, lease_token FROM jobs WHERE state = 'active' AND lease_expires_at <= $1"
                            " ORDER BY lease_expires_at LIMIT $2", now, limit)
    return [(r[0], r[1]) for r in rows]


async def get_job(conn: Any, job_id: int) -> Job | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE id = $1", job_id)
    return None if row is None else row_to_job(row)


async def release_job(conn: Any, job_id: int, token: str, now: int) -> Job | None:
    """active -> waiting without counting the attempt (handed back unstarted, or a
    graceful stop), for the job active under ``token``."""
    row = await conn.fetchrow(
        "UPDATE jobs SET state = 'waiting', attempts_made = greatest(attempts_made - 1, 0), started_at = NULL,"
        " run_at = $3, lease_token = NULL, lease_expires_at = NULL, node = NULL"
        f" WHERE id = $1 AND state = 'active' AND lease_token = $2 RETURNING {COLUMNS}", job_id, token, now)
    return None if row is None else row_to_job(row)


async def heartbeat(conn: Any, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any) -> Job | None:
    """The lease runs from ``now`` (for ``lease_ms`` when given; a job run by a
    node's handlers has no lease), with the progress."""
    row = await conn.fetchrow(
        "UPDATE jobs SET heartbeat_at = $3, lease_expires_at = CASE WHEN $4::bigint IS NULL OR lease_expires_at IS NULL"
        " THEN lease_expires_at"
        " ELSE $3 + $4::bigint END, progress = coalesce($5::jsonb, progress)"
        f" WHERE id = $1 AND state = 'active' AND lease_token = $2 RETURNING {COLUMNS}",
        job_id, token, now, lease_ms, None if progress is None else dumps(progress))
    return None if row is None else row_to_job(row)


async def retry_job(conn: Any, job_id: int, now: int) -> Job | None:
    """failed, cancelled or expired -> waiting, attempts from zero; None when the job
    is in none of those states."""
    row = await conn.fetchrow(
        "UPDATE jobs SET state = 'waiting', attempts_made = 0, run_at = $2, started_at = NULL, finished_at = NULL,"
        " result = NULL, progress = '0', expire_at = NULL"
        f" WHERE id = $1 AND state IN ('failed', 'cancelled', 'expired') RETURNING {COLUMNS}", job_id, now)
    return None if row is None else row_to_job(row)


async def promote_job(conn: Any, job_id: int, now: int) -> Job | None:
    """delayed -> waiting now; None when the job is not delayed."""
    row = await conn.fetchrow(
        f"UPDATE jobs SET state = 'waiting', run_at = $2 WHERE id = $1 AND state = 'delayed' RETURNING {COLUMNS}",
        job_id, now)
    return None if row is None else row_to_job(row)


async def cancel_waiting(conn: Any, job_id: int, now: int) -> Job | None:
    """waiting, delayed or blocked -> cancelled; None when the job is in none of
    those (a running job is stopped by its node first)."""
    row = await conn.fetchrow(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2"
        f" WHERE id = $1 AND state IN ('waiting', 'delayed', 'blocked') RETURNING {COLUMNS}", job_id, now)
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


async def clean(conn: Any, queue: str, state: JobState, finished_before: int, limit: int | None) -> int:
    """Remove finished jobs of ``state`` finished by ``finished_before``, oldest first."""
    status = await conn.execute(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = $2 AND finished_at <= $3"
        " ORDER BY finished_at LIMIT $4)", queue, state.value, finished_before, limit)
    return int(status.rsplit(" ", 1)[-1])
