"""SQL for the jobs table. Write functions run in the writer thread (first
argument: the connection, inside the writer's transaction); each state change is
one guarded UPDATE that also sets that state's timestamp."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from ..clock import to_iso
from ..errors import Conflict, NotFound
from ..jsonfast import loads
from ..model import FINISHED, Job, JobState, dumps
from ..retry import Failure, after_failure
from .records import Change, TableSnapshot
from .unique import held_key, kept_from_retry, unique_keys_query

_STATES = {s.value: s for s in JobState}
MAX_KEEP = 2**62  # the largest keep-newest-N count SQLite's OFFSET takes

COLUMNS = (
    "id, queue, name, state, priority, data, options, attempts, attempts_made, progress,"
    " result, error, errors, job_key, created_at, run_at, started_at, finished_at,"
    " lease_token, lease_expires_at, heartbeat_at"
)
COLUMN_NAMES = tuple(c.strip() for c in COLUMNS.split(","))
QUALIFIED = ", ".join("jobs." + c for c in COLUMN_NAMES)  # COLUMNS where an UPDATE ... FROM names another table


def row_to_job(r: tuple[Any, ...]) -> Job:
    return Job(
        id=r[0],
        queue=r[1],
        name=r[2],
        state=_STATES[r[3]],
        priority=r[4],
        data=loads(r[5]),
        options=loads(r[6]),
        attempts=r[7],
        attempts_made=r[8],
        progress=loads(r[9]),
        result=None if r[10] is None else loads(r[10]),
        error=r[11],
        errors=loads(r[12]),
        job_key=r[13],
        created_at=r[14],
        run_at=r[15],
        started_at=r[16],
        finished_at=r[17],
        lease_token=r[18],
        lease_expires_at=r[19],
        heartbeat_at=r[20],
    )


def _select_one(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row_to_job(row)


# -- running --------------------------------------------------------------------------


# One statement claims a whole batch: pairs of a job id and the due time it was taken
# at (null: any), so a job moved since it was taken (a debounced unique job) is not
# claimed at its old place. The lease token is 24 hex digits from SQLite's random
# source (ChaCha20, seeded by the OS), drawn for each row.
_TAKEN = ("(SELECT json_extract(value, '$[0]') AS taken_id, json_extract(value, '$[1]') AS taken_at"
          " FROM json_each(?1)) AS taken")
_AS_TAKEN = "jobs.id = taken.taken_id AND (taken.taken_at IS NULL OR jobs.run_at = taken.taken_at)"
_CLAIM = (
    "UPDATE jobs SET state = 'active', started_at = ?2, heartbeat_at = ?2,"
    " attempts_made = attempts_made + 1, lease_token = lower(hex(randomblob(12))),"
    f" lease_expires_at = ?3, finished_at = NULL FROM {_TAKEN}"
    f" WHERE {_AS_TAKEN} AND jobs.state = 'waiting' RETURNING {QUALIFIED}"
)


# A job past its expiry is never started: the claim ends it instead.
_EXPIRE_TAKEN = (
    f"UPDATE jobs SET state = 'expired', finished_at = ?2 FROM {_TAKEN}"
    f" WHERE {_AS_TAKEN} AND jobs.state = 'waiting' AND jobs.expire_at <= ?2"
    f" RETURNING {QUALIFIED}"
)


def claim_jobs(
    conn: sqlite3.Connection, ids: list[int], now: int, lease_ms: int | None,
    taken_at: list[int] | None = None,
) -> list[Job]:
    """waiting -> active for those of ``ids`` still waiting (and still due at
    ``taken_at``, when given), in the order of ``ids``; those past their expiry
    become expired instead (returned in that state)."""
    expires = None if lease_ms is None else now + lease_ms
    encoded = dumps([[job_id, None] for job_id in ids] if taken_at is None else list(zip(ids, taken_at, strict=True)))
    rows = conn.execute(_EXPIRE_TAKEN, (encoded, now)).fetchall()
    rows += conn.execute(_CLAIM, (encoded, now, expires)).fetchall()
    by_id = {row[0]: row for row in rows}
    return [row_to_job(by_id[job_id]) for job_id in ids if job_id in by_id]


def expire_jobs(conn: sqlite3.Connection, now: int, limit: int) -> list[Change]:
    """Waiting and delayed jobs past their expiry time -> expired (the sweep)."""
    rows = conn.execute(
        "SELECT id, state FROM jobs WHERE expire_at IS NOT NULL AND (state = 'waiting' OR state = 'delayed')"
        " AND expire_at <= ? ORDER BY expire_at LIMIT ?", (now, limit),
    ).fetchall()
    if not rows:
        return []
    prior = dict(rows)
    done = conn.execute(
        "UPDATE jobs SET state = 'expired', finished_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))"
        f" AND (state = 'waiting' OR state = 'delayed') RETURNING {COLUMNS}", (dumps(list(prior)), now),
    ).fetchall()
    return [Change(row_to_job(row), _STATES[prior[row[0]]]) for row in sorted(done)]


def promote_jobs(conn: sqlite3.Connection, due: list[tuple[int, int]], now: int) -> list[int]:
    """delayed -> waiting for those of ``due`` (id, due time) still delayed until
    that time: a job moved since (a debounced unique job) waits for its new time.
    One statement (many small ones inside one savepoint slow down as the
    savepoint's journal grows)."""
    rows = conn.execute(
        "UPDATE jobs SET state = 'waiting' FROM (SELECT json_extract(value, '$[0]') AS due_id,"
        " json_extract(value, '$[1]') AS due_at FROM json_each(?)) AS due"
        " WHERE jobs.id = due.due_id AND jobs.run_at = due.due_at AND jobs.state = 'delayed' RETURNING jobs.id",
        (dumps(due),),
    ).fetchall()
    return [row[0] for row in rows]


_COMPLETE = (
    "UPDATE jobs SET state = 'completed', finished_at = ?, result = ?, progress = "
    " CASE WHEN json_type(progress) IN ('integer', 'real') THEN '100' ELSE progress END,"
    " lease_token = NULL, lease_expires_at = NULL"
    f" WHERE id = ? AND state = 'active' AND lease_token = ? RETURNING {COLUMNS}"
)

# A completion as the writer merges them: job id, lease token, result as JSON text, time.
Completion = tuple[int, str, str, int]


# Many completions in one statement, from a JSON array of [id, token, result, time].
_COMPLETE_MANY = (
    "UPDATE jobs SET state = 'completed', finished_at = c.at, result = c.answer, progress ="
    " CASE WHEN json_type(progress) IN ('integer', 'real') THEN '100' ELSE progress END,"
    " lease_token = NULL, lease_expires_at = NULL"
    " FROM (SELECT json_extract(value, '$[0]') AS job, json_extract(value, '$[1]') AS token_given,"
    " json_extract(value, '$[2]') AS answer, json_extract(value, '$[3]') AS at FROM json_each(?1)) AS c"
    " WHERE jobs.id = c.job AND jobs.state = 'active' AND jobs.lease_token = c.token_given"
    f" RETURNING {COLUMNS}"
)


class AfterFinish(Protocol):
    """What a finished job may add in its own transaction (callbacks.Callbacks)."""

    def after(self, conn: sqlite3.Connection, change: Change, now: int) -> None: ...


def complete_jobs(
    conn: sqlite3.Connection, items: list[Completion], after: AfterFinish | None = None
) -> list[Change | None]:
    """Many callers' completions in one go (the result is JSON text already, so
    nothing here can fail but the store itself): one statement, then each job's
    removal policy in the order given, as one completion after another would."""
    ids = [item[0] for item in items]
    if len(items) == 1 or len(set(ids)) < len(ids):  # a job twice: one by one decides
        return [_complete(conn, *item, after=after) for item in items]
    rows = conn.execute(_COMPLETE_MANY, (dumps(items),)).fetchall()
    done = {row[0]: row for row in rows}
    changes: list[Change | None] = []
    for job_id in ids:
        row = done.get(job_id)
        if row is None:
            changes.append(None)
            continue
        changes.append(_completed(conn, row, after))
    return changes


def _complete(conn: sqlite3.Connection, job_id: int, token: str, result: str, now: int, *,
              after: AfterFinish | None = None) -> Change | None:
    row = conn.execute(_COMPLETE, (now, result, job_id, token)).fetchone()
    return None if row is None else _completed(conn, row, after)


def _completed(conn: sqlite3.Connection, row: tuple[Any, ...], after: AfterFinish | None) -> Change:
    """A completion's change, from the row it returned, with the job's callback added
    and its removeOnComplete applied."""
    change = Change(row_to_job(row), JobState.ACTIVE)
    if after is not None:
        after.after(conn, change, change.job.finished_at or 0)
    _apply_removal(conn, change, change.job.options.get("removeOnComplete", False))
    return change


def fail_job(
    conn: sqlite3.Connection, job_id: int, token: str, failure: Failure, now: int,
    after: AfterFinish | None = None,
) -> Change | None:
    """Fail the current attempt of the job active under ``token``."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE id = ? AND state = 'active' AND lease_token = ?",
        (job_id, token),
    ).fetchone()
    if row is None:
        return None
    job = row_to_job(row)
    state, run_at = after_failure(
        job.name, job.options, job.attempts, job.attempts_made, now, failure
    )
    job.errors.append({"attempt": job.attempts_made, "message": failure.message, "at": to_iso(now)})
    finished = now if state in FINISHED else None
    row = conn.execute(
        "UPDATE jobs SET state = ?, run_at = ?, finished_at = ?, error = ?, errors = ?,"
        " lease_token = NULL, lease_expires_at = NULL"
        f" WHERE id = ? AND state = 'active' RETURNING {COLUMNS}",
        (state, run_at, finished, failure.message, dumps(job.errors), job_id),
    ).fetchone()
    change = Change(row_to_job(row), JobState.ACTIVE)
    if after is not None and state in FINISHED:  # failed for good, or cancelled while running
        after.after(conn, change, now)
    if state == JobState.FAILED:
        _apply_removal(conn, change, job.options.get("removeOnFail", False))
    return change


def _apply_removal(conn: sqlite3.Connection, change: Change, policy: bool | int) -> None:
    """removeOnComplete / removeOnFail: True removes the job itself; a number N keeps
    only the newest N finished jobs of that state in the queue (as Bull does)."""
    job = change.job
    if policy is True:
        conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
        change.deleted = True
    elif policy is not False and isinstance(policy, int):
        policy = min(policy, MAX_KEEP)  # options are bounded at the edge; this guards the SQL
        cursor = conn.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = ? AND state = ?"
            " ORDER BY finished_at DESC, id DESC LIMIT -1 OFFSET ?)",
            (job.queue, job.state, policy),
        )
        if cursor.rowcount > 0:
            change.pruned[job.state] = cursor.rowcount


def cancel_job(conn: sqlite3.Connection, job_id: int, now: int) -> Change:
    job = _select_one(conn, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    if job.state in FINISHED:
        raise Conflict(f"job {job_id} has already finished ({job.state})")
    if job.state is JobState.ACTIVE:
        return Change(job, JobState.ACTIVE)
    row = conn.execute(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?"
        f" WHERE id = ? AND state = ? RETURNING {COLUMNS}",
        (now, job_id, job.state),
    ).fetchone()
    return Change(row_to_job(row), job.state)


def retry_job(conn: sqlite3.Connection, job_id: int, now: int) -> Change:
    job = _select_one(conn, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    if job.state not in (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED):
        raise Conflict(f"only failed, cancelled or expired jobs can be retried; job {job_id} is {job.state}")
    if kept_from_retry(conn.execute(*unique_keys_query([job_id])).fetchall()):
        raise Conflict(held_key(job_id, job.options["unique"]["key"]))
    row = conn.execute(
        "UPDATE jobs SET state = 'waiting', attempts_made = 0, run_at = ?, started_at = NULL,"
        " finished_at = NULL, result = NULL, progress = '0', expire_at = NULL"
        f" WHERE id = ? AND state = ? RETURNING {COLUMNS}",
        (now, job_id, job.state),
    ).fetchone()
    return Change(row_to_job(row), job.state)


def promote_job(conn: sqlite3.Connection, job_id: int, now: int) -> Change:
    job = _select_one(conn, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    if job.state is not JobState.DELAYED:
        raise Conflict(f"only delayed jobs can be promoted; job {job_id} is {job.state}")
    row = conn.execute(
        f"UPDATE jobs SET state = 'waiting', run_at = ? WHERE id = ? AND state = 'delayed' RETURNING {COLUMNS}",
        (now, job_id),
    ).fetchone()
    return Change(row_to_job(row), JobState.DELAYED, prior_run_at=job.run_at)


def release_job(conn: sqlite3.Connection, job_id: int, token: str, now: int) -> Change | None:
    """active -> waiting without counting the attempt: the worker hands the job back
    unstarted or stopping (a graceful shutdown), not failed."""
    row = conn.execute(
        "UPDATE jobs SET state = 'waiting', attempts_made = max(attempts_made - 1, 0),"
        " started_at = NULL, run_at = ?, lease_token = NULL, lease_expires_at = NULL"
        f" WHERE id = ? AND state = 'active' AND lease_token = ? RETURNING {COLUMNS}",
        (now, job_id, token),
    ).fetchone()
    return None if row is None else Change(row_to_job(row), JobState.ACTIVE)


def heartbeat(
    conn: sqlite3.Connection, job_id: int, token: str, now: int, lease_ms: int | None,
    progress: Any,
) -> Job | None:
    sets = ["heartbeat_at = ?"]
    params: list[Any] = [now]
    if lease_ms is not None:
        sets.append("lease_expires_at = ?")
        params.append(now + lease_ms)
    if progress is not None:
        sets.append("progress = ?")
        params.append(dumps(progress))
    row = conn.execute(
        f"UPDATE jobs SET {', '.join(sets)}"
        f" WHERE id = ? AND state = 'active' AND lease_token = ? RETURNING {COLUMNS}",
        (*params, job_id, token),
    ).fetchone()
    return None if row is None else row_to_job(row)


def rescue_active(
    conn: sqlite3.Connection, now: int, failure: Failure, leases: list[tuple[int, str]],
    after: AfterFinish | None = None,
) -> list[Change]:
    """Fail the attempt of each job still active under the lease token given with
    it: its worker is gone. A job heartbeated or finished meanwhile has another
    token (or none) and is left alone."""
    changes = []
    for job_id, token in leases:
        change = fail_job(conn, job_id, token, failure, now, after)
        if change is not None:
            changes.append(change)
    return changes


def unowned_active(conn: sqlite3.Connection, now: int) -> tuple[list[Job], list[Job]]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE state = 'active'").fetchall()
    jobs = [row_to_job(r) for r in rows]
    valid = [j for j in jobs if j.lease_expires_at is not None and j.lease_expires_at > now]
    return [j for j in jobs if j not in valid], valid


def clean(
    conn: sqlite3.Connection, queue: str, state: JobState, finished_before: int,
    limit: int | None,
) -> int:
    cursor = conn.execute(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = ? AND state = ?"
        " AND finished_at <= ? ORDER BY finished_at LIMIT ?)",
        (queue, state, finished_before, -1 if limit is None else limit),
    )
    return cursor.rowcount


def snapshot(conn: sqlite3.Connection) -> TableSnapshot:
    unfinished = conn.execute(
        "SELECT id, queue, name, state, priority, run_at, lease_token, group_key FROM jobs"
        " WHERE state IN ('waiting', 'delayed', 'active')"
    ).fetchall()
    counts: dict[str, dict[JobState, int]] = {}
    for queue, state, n in conn.execute("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"):
        counts.setdefault(queue, {})[_STATES[state]] = n
    return TableSnapshot(unfinished, counts)
