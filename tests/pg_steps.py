"""The transitions of store/transitions.py run on a bare asyncpg connection, as the
PostgreSQL store's writer runs them, answering as the tests of the PostgreSQL
statements read them: the job, or None when the change did not apply."""

from __future__ import annotations

from typing import Any

from queueapp.errors import Conflict
from queueapp.jsonfast import dumps
from queueapp.model import Job, JobState
from queueapp.retry import Failure
from queueapp.store import transitions
from queueapp.store.postgres.jobs import expired_leases
from queueapp.store.postgres.run import run
from queueapp.store.records import Change


async def complete(conn: Any, job_id: int, token: str, result: Any, now: int) -> Change | None:
    return (await run(conn, transitions.complete, [(job_id, token, dumps(result), now)]))[0]


async def complete_job(conn: Any, job_id: int, token: str, result: Any, now: int) -> Job | None:
    change = await complete(conn, job_id, token, result, now)
    return None if change is None else change.job


async def fail(conn: Any, job_id: int, token: str, failure: Failure, now: int) -> Change | None:
    return await run(conn, transitions.fail, job_id, token, failure, now)


async def fail_job(conn: Any, job_id: int, token: str, failure: Failure, now: int) -> Job | None:
    change = await fail(conn, job_id, token, failure, now)
    return None if change is None else change.job


async def release_job(conn: Any, job_id: int, token: str, now: int) -> Job | None:
    change = await run(conn, transitions.release, job_id, token, now)
    return None if change is None else change.job


async def heartbeat(conn: Any, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any) -> Job | None:
    return await run(conn, transitions.heartbeat, job_id, token, now, lease_ms, progress)


async def _moved(conn: Any, transition: Any, *args: Any) -> Job | None:
    try:
        return (await run(conn, transition, *args)).job
    except Conflict:
        return None


async def retry_job(conn: Any, job_id: int, now: int) -> Job | None:
    return await _moved(conn, transitions.retry, job_id, now)


async def promote_job(conn: Any, job_id: int, now: int) -> Job | None:
    return await _moved(conn, transitions.promote, job_id, now)


async def cancel_waiting(conn: Any, job_id: int, now: int) -> Job | None:
    job = await _moved(conn, transitions.cancel, job_id, now)
    return None if job is None or job.state is not JobState.CANCELLED else job


async def cancel(conn: Any, job_id: int, now: int) -> Change:
    return await run(conn, transitions.cancel, job_id, now)


async def clean(conn: Any, queue: str, state: JobState, finished_before: int, limit: int | None) -> int:
    return await run(conn, transitions.clean, queue, state, finished_before, limit)


async def expire_due(conn: Any, now: int, limit: int) -> list[Change]:
    return await run(conn, transitions.expire, now, limit)


async def rescue_expired(conn: Any, now: int, message: str, limit: int) -> list[Change]:
    return await run(conn, transitions.rescue, now, Failure(message), await expired_leases(conn, now, limit))
