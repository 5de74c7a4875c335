"""What a job's end changes besides its own row on PostgreSQL, in the same
transaction, as the SQLite store does (store/dependencies.py, callbacks.py, the
removal policies): its dependents move on, its callback job is added, and
removeOnComplete / removeOnFail apply. Each function takes the caller's
transaction and returns the store's ``Change`` records, so memory can follow."""

from __future__ import annotations

from typing import Any

from ...errors import Conflict, NotFound
from ...jsonfast import dumps
from ...model import DEFAULT_ATTEMPTS, FINISHED, Job, JobState
from ...retry import Failure
from ..callbacks import CALLBACK_JOB, CALLBACK_QUEUE, outcome_of
from ..dependencies import LINGERING
from ..jobs import QUALIFIED
from ..records import Added, Change
from . import jobs
from .cluster import notify
from .jobs import COLUMNS, row_to_job


async def settle(conn: Any, finished: int, state: str, now: int) -> list[Change]:
    """The dependents of job ``finished``, which ended ``state``, moved on: waiting
    or delayed when it was their last unfinished dependency (or failures are
    allowed), else failed with it, and theirs in turn."""
    changes: list[Change] = []
    pending = [(finished, state)]
    while pending:
        dep_id, dep_state = pending.pop()
        rows = await conn.fetch("DELETE FROM job_dependencies WHERE depends_on = $1 RETURNING job_id", dep_id)
        for job_id in sorted(r[0] for r in rows):
            row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE id = $1 AND state = 'blocked' FOR UPDATE",
                                      job_id)
            if row is None:
                continue
            if dep_state == "completed" or row_to_job(row).options.get("allowDependencyFailure"):
                if await conn.fetchval("SELECT 1 FROM job_dependencies WHERE job_id = $1 LIMIT 1", job_id) is None:
                    row = await conn.fetchrow(
                        "UPDATE jobs SET state = CASE WHEN run_at > $1 THEN 'delayed' ELSE 'waiting' END,"
                        f" run_at = greatest(run_at, $1) WHERE id = $2 RETURNING {COLUMNS}", now, job_id)
                    changes.append(Change(row_to_job(row), JobState.BLOCKED))
                continue
            await conn.execute("DELETE FROM job_dependencies WHERE job_id = $1", job_id)
            row = await conn.fetchrow(
                f"UPDATE jobs SET state = 'failed', finished_at = $1, error = $2 WHERE id = $3 RETURNING {COLUMNS}",
                now, f"dependency {dep_id} {dep_state}", job_id)
            changes.append(Change(row_to_job(row), JobState.BLOCKED))
            pending.append((job_id, "failed"))
    return changes


async def tell(conn: Any, job: Job, change: Change, now: int) -> None:
    """``job``'s callback (options.callbackUrl), when it completed or failed for
    good, added to ``change.spawned``."""
    url = job.options.get("callbackUrl")
    if not url or job.state not in (JobState.COMPLETED, JobState.FAILED):
        return
    data = {"url": url, "method": "POST", "body": outcome_of(job), "sign": True}
    row = await conn.fetchrow(
        "INSERT INTO jobs (queue, name, state, priority, data, options, attempts, created_at, run_at)"
        f" VALUES ($1, $2, 'waiting', 3, $3::jsonb, '{{}}', $4, $5, $5) RETURNING {COLUMNS}",
        CALLBACK_QUEUE, CALLBACK_JOB, dumps(data), DEFAULT_ATTEMPTS[1], now)
    await notify(conn, CALLBACK_QUEUE)
    change.spawned.append(Added(row_to_job(row), created=True))


async def follow(conn: Any, change: Change, ended: str, now: int) -> Change:
    """A change that ended a job: its callback, its dependents moved on (and the
    callbacks of those it failed)."""
    await tell(conn, change.job, change, now)
    change.settled.extend(await settle(conn, change.job.id, ended, now))
    for moved in change.settled:
        await tell(conn, moved.job, change, now)
    return change


async def _removal(conn: Any, change: Change, policy: bool | int) -> None:
    """removeOnComplete / removeOnFail: True removes the job itself; N keeps the
    newest N finished jobs of that state in the queue."""
    job = change.job
    if policy is True:
        await conn.execute("DELETE FROM jobs WHERE id = $1", job.id)
        change.deleted = True
    elif policy is not False and isinstance(policy, int):
        status = await conn.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = $2"
            " ORDER BY finished_at DESC, id DESC OFFSET $3)", job.queue, job.state.value, policy)
        removed = int(status.rsplit(" ", 1)[-1])
        if removed:
            change.pruned[job.state] = removed


async def complete(conn: Any, job_id: int, token: str, result: Any, now: int) -> Change | None:
    job = await jobs.complete_job(conn, job_id, token, result, now)
    if job is None:
        return None
    change = await follow(conn, Change(job, JobState.ACTIVE), "completed", now)
    await _removal(conn, change, job.options.get("removeOnComplete", False))
    return change


async def complete_merged(conn: Any, calls: list[tuple[Any, ...]]) -> list[Change | None]:
    """Several callers' single completions ((id, token, result, now) each), neighbours
    in the writer's batch, as one ``complete_many``."""
    return await complete_many(conn, [(c[0], c[1], c[2]) for c in calls], [c[3] for c in calls])


async def fail(conn: Any, job_id: int, token: str, failure: Failure, now: int) -> Change | None:
    job = await jobs.fail_job(conn, job_id, token, failure, now)
    if job is None:
        return None
    change = Change(job, JobState.ACTIVE)
    if job.state in (JobState.FAILED, JobState.CANCELLED):  # for good
        await follow(conn, change, str(job.state), now)
    if job.state is JobState.FAILED:
        await _removal(conn, change, job.options.get("removeOnFail", False))
    return change


async def cancel(conn: Any, job_id: int, now: int) -> Change:
    """A job that has not started: cancelled, and its dependents moved on. For a
    running job nothing is stored (its runner stops it: a failure with ``cancel``)
    and the change says ACTIVE to ACTIVE."""
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    if row is None:
        raise NotFound(f"no job with id {job_id}")
    job = row_to_job(row)
    if job.state in FINISHED:
        raise Conflict(f"job {job_id} has already finished ({job.state})")
    if job.state is JobState.ACTIVE:
        return Change(job, JobState.ACTIVE)
    cancelled = await jobs.cancel_waiting(conn, job_id, now)
    assert cancelled is not None  # the row is locked
    return await follow(conn, Change(cancelled, job.state), "cancelled", now)


async def expire_due(conn: Any, now: int, limit: int) -> list[Change]:
    """The sweep: waiting or delayed jobs past their expiry end expired (rows another
    node is sweeping are skipped), and their dependents move on."""
    rows = await conn.fetch(
        "WITH due AS (SELECT id, state FROM jobs WHERE expire_at <= $1 AND state IN ('waiting', 'delayed')"
        " ORDER BY expire_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE jobs SET state = 'expired', finished_at = $1 FROM due WHERE jobs.id = due.id"
        f" RETURNING due.state, {QUALIFIED}", now, limit)
    changes = []
    for row in rows:
        change = Change(row_to_job(row[1:]), JobState(row[0]))
        changes.append(await follow(conn, change, "expired", now))
    return changes


async def complete_many(conn: Any, items: list[tuple[int, str, Any]], now: int | list[int]) -> list[Change | None]:
    """``complete`` for each (job id, token, result), in one statement, finished at
    ``now`` (or each at its own time); then what follows for the few jobs that have it
    to do (dependents, a callback, removal). One job twice among them: one by one, so
    that only its live token counts."""
    ids = [item[0] for item in items]
    times = now if isinstance(now, list) else [now] * len(items)
    if len(set(ids)) < len(ids):
        return [await complete(conn, job_id, token, result, at)
                for (job_id, token, result), at in zip(items, times, strict=True)]
    done = await jobs.complete_jobs(conn, items, times)
    awaited = {r[0] for r in await conn.fetch(
        "SELECT DISTINCT depends_on FROM job_dependencies WHERE depends_on = ANY($1::bigint[])", list(done))}
    changes: list[Change | None] = []
    for job_id, at in zip(ids, times, strict=True):
        job = done.get(job_id)
        if job is None:
            changes.append(None)
            continue
        change = Change(job, JobState.ACTIVE)
        if job_id in awaited or job.options.get("callbackUrl"):
            await follow(conn, change, "completed", at)
        await _removal(conn, change, job.options.get("removeOnComplete", False))
        changes.append(change)
    return changes


async def rescue(conn: Any, now: int, failure: Failure, leases: list[tuple[int, str]]) -> list[Change]:
    """The attempt of each job still active under the token given with it fails:
    its worker is gone. A job heartbeated or finished meanwhile is left alone."""
    changes = []
    for job_id, token in leases:
        change = await fail(conn, job_id, token, failure, now)
        if change is not None:
            changes.append(change)
    return changes


async def rescue_expired(conn: Any, now: int, message: str, limit: int) -> list[Change]:
    """The attempt of each leased job whose lease ran out by ``now`` fails (its worker
    is gone): retried with backoff while attempts remain, and what follows a failure
    for good (dependents, callback, removal) as for any failure."""
    return await rescue(conn, now, Failure(message), await jobs.expired_leases(conn, now, limit))


async def settle_lingering(conn: Any, now: int) -> int:
    """At start-up: edges whose dependency ended (or is gone) without them being
    settled (a crash between the two transactions that do it). How many moved."""
    rows = await conn.fetch(LINGERING)
    return sum([len(await settle(conn, dep_id, state, now)) for dep_id, state in rows])
