"""Statements on the jobs table, for either engine (``d``: its dialect). Each state
change is one guarded UPDATE that also sets that state's timestamps, so a stale
caller (an old lease token, a job that moved meanwhile) changes nothing. The
transitions that compose them are in store/transitions.py."""

from __future__ import annotations

from typing import Any

from ...fingerprint import error_group
from ...jsonfast import loads
from ...model import Job, JobState, NewJob, dumps
from .dialect import Dialect
from .plan import Statement, count, row, rows, run, value

_STATES = {s.value: s for s in JobState}
MAX_KEEP = 2**62  # the largest keep-newest-N count SQLite's OFFSET takes

COLUMNS = (
    "id, queue, name, state, priority, data, options, attempts, attempts_made, progress,"
    " result, error, errors, job_key, created_at, run_at, started_at, finished_at,"
    " lease_token, lease_expires_at, heartbeat_at, worker"
)
COLUMN_NAMES = tuple(c.strip() for c in COLUMNS.split(","))
QUALIFIED = ", ".join("jobs." + c for c in COLUMN_NAMES)  # COLUMNS where an UPDATE ... FROM names another table
# What every end of an attempt clears.
_UNLEASED = "lease_token = NULL, lease_expires_at = NULL, node = NULL"


def row_to_job(r: Any) -> Job:
    """A row of COLUMNS (a tuple from SQLite, a record from asyncpg, which gives
    JSON columns as text too)."""
    return Job(
        id=r[0], queue=r[1], name=r[2], state=_STATES[r[3]], priority=r[4], data=loads(r[5]),
        options=loads(r[6]), attempts=r[7], attempts_made=r[8], progress=loads(r[9]),
        result=None if r[10] is None else loads(r[10]), error=r[11], errors=loads(r[12]), job_key=r[13],
        created_at=r[14], run_at=r[15], started_at=r[16], finished_at=r[17], lease_token=r[18],
        lease_expires_at=r[19], heartbeat_at=r[20], worker=r[21],
    )


def state_of(name: str) -> JobState:
    return _STATES[name]


# -- reading one ----------------------------------------------------------------------


def get(d: Dialect, job_id: int, *, lock: bool = False) -> Statement:
    """The job (its row locked until the transaction ends, with ``lock``: another
    writer must not change it between this look and the update)."""
    return row(f"SELECT {COLUMNS} FROM jobs WHERE id = ?1{d.lock_rows if lock else ''}", job_id)


def get_active(d: Dialect, job_id: int, token: str) -> Statement:
    """The job while it is active under ``token``, locked."""
    return row(f"SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND state = 'active' AND lease_token = ?2{d.lock_rows}",
               job_id, token)


# -- starting -------------------------------------------------------------------------


def started(d: Dialect, now: str, lease_ms: str, node: str, worker: str) -> str:
    """The SET of a claim, with these placeholders: active from ``now`` for ``node``
    (leased for ``lease_ms``, or run by its handlers when that is null) and run by
    ``worker``, or, for a job past its expiry, expired instead: a job past its expiry
    is never started."""
    late = f"expire_at <= {now}"
    return (
        f"UPDATE jobs SET state = CASE WHEN {late} THEN 'expired' ELSE 'active' END,"
        f" finished_at = CASE WHEN {late} THEN {now} END,"
        f" started_at = CASE WHEN {late} THEN started_at ELSE {now} END,"
        f" heartbeat_at = CASE WHEN {late} THEN heartbeat_at ELSE {now} END,"
        f" attempts_made = attempts_made + CASE WHEN {late} THEN 0 ELSE 1 END,"
        f" lease_token = CASE WHEN {late} THEN NULL ELSE {d.new_token} END,"
        f" lease_expires_at = CASE WHEN {late} OR {lease_ms}{d.bigint} IS NULL THEN NULL"
        f" ELSE {now} + {lease_ms}{d.bigint} END,"
        f" node = {node}, worker = CASE WHEN {late} THEN worker ELSE {worker} END"
    )


def claim_taken(d: Dialect, ids: list[int], taken_at: list[int] | None, now: int, lease_ms: int | None,
                node: str | None, worker: str) -> Statement:
    """The jobs memory took, by id and the due time each was taken at (null: any; one
    moved since, a debounced unique job, is left alone), made active; one past its
    expiry ended instead."""
    dues: list[Any] = taken_at if taken_at is not None else [None] * len(ids)
    return rows(
        f"{started(d, '?1', '?2', '?3', '?4')} FROM {d.rows('taken', ('id', 'due'), 5)}"
        " WHERE jobs.id = taken.id AND jobs.state = 'waiting' AND (taken.due IS NULL OR jobs.run_at = taken.due)"
        f" RETURNING {QUALIFIED}", now, lease_ms, node, worker, *d.row_params(list(zip(ids, dues, strict=True)), 2))


def claim_best(d: Dialect, named: bool, condition: str = "") -> str:
    """The claim of several writers (PostgreSQL): the best waiting jobs of queue ?1 (of
    the names in ?2 when ``named``: a statement of its own, whose plan reads those
    names' waiting jobs through ``jobs_claim_named``; else through ``jobs_claim``),
    never of the names in ?7, skipping rows another claimer holds, up to ?3, started
    at ?4 for ?5 ms on node ?6 by worker ?8. A paused queue gives nothing (a one-time filter of the
    plan, not a join per row), nor one where ``condition`` (on ?1) is false."""
    assert d.skip_locked, "a claim by the database is for an engine with several writers"
    names = "name = ANY(?2::text[])" if named else "?2::text[] IS NULL"
    return (
        f"WITH picked AS (SELECT id FROM jobs WHERE queue = ?1 AND state = 'waiting' AND {names}"
        " AND NOT name = ANY(?7::text[])"
        f" AND NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = ?1 AND paused){condition}"
        f" ORDER BY priority, run_at, id LIMIT ?3{d.skip_locked}) {started(d, '?4', '?5', '?6', '?8')}"
        f" FROM picked WHERE jobs.id = picked.id RETURNING {QUALIFIED}"
    )


def promote_taken(d: Dialect, due: list[tuple[int, int]]) -> Statement:
    """delayed -> waiting for (id, due time) pairs still delayed until that time: a
    job moved since (a debounced unique job) waits for its new time."""
    return rows(f"UPDATE jobs SET state = 'waiting' FROM {d.rows('due', ('id', 'at'), 1)}"
                " WHERE jobs.id = due.id AND jobs.run_at = due.at AND jobs.state = 'delayed' RETURNING jobs.id",
                *d.row_params(due, 2))


def promote_due(d: Dialect, now: int, limit: int) -> Statement:
    """delayed -> waiting for up to ``limit`` jobs due by ``now``, skipping rows
    another writer is promoting."""
    return rows("UPDATE jobs SET state = 'waiting' WHERE id IN (SELECT id FROM jobs WHERE state = 'delayed'"
                f" AND run_at <= ?1 ORDER BY run_at LIMIT ?2{d.skip_locked}) RETURNING id", now, limit)


# -- finishing an attempt ---------------------------------------------------------------


def complete(d: Dialect, job_id: int, token: str, result: str, now: int) -> Statement:
    """active -> completed for the job active under ``token`` (``result``: JSON text)."""
    return row(
        f"UPDATE jobs SET state = 'completed', finished_at = ?3, result = ?4{d.json},"
        f" progress = CASE WHEN {d.is_number.format('progress')} THEN '100' ELSE progress END, {_UNLEASED}"
        f" WHERE id = ?1 AND state = 'active' AND lease_token = ?2 RETURNING {COLUMNS}", job_id, token, now, result)


def complete_many(d: Dialect, items: list[tuple[int, str, str, int]]) -> Statement:
    """``complete`` for each (id, token, result as JSON text, time), ids distinct."""
    return rows(
        "UPDATE jobs SET state = 'completed', finished_at = done.at, result = done.result,"
        f" progress = CASE WHEN {d.is_number.format('progress')} THEN '100' ELSE progress END, {_UNLEASED}"
        f" FROM {d.rows('done', ('id', 'token', 'result', 'at'), 1)}"
        f" WHERE jobs.id = done.id AND jobs.state = 'active' AND jobs.lease_token = done.token RETURNING {QUALIFIED}",
        *d.row_params(items, 4))


def fail(d: Dialect, job_id: int, state: str, run_at: int, finished_at: int | None, error: str,
         errors: list[dict[str, Any]]) -> Statement:
    """An active job's attempt failed: back in line at ``run_at``, or ``state`` for good."""
    return row(
        f"UPDATE jobs SET state = ?2, run_at = ?3, finished_at = ?4, error = ?5, errors = ?6{d.json},"
        f" error_group = ?7, {_UNLEASED} WHERE id = ?1 AND state = 'active' RETURNING {COLUMNS}",
        job_id, str(state), run_at, finished_at, error, dumps(errors), error_group(error))


def release(d: Dialect, job_id: int, token: str, now: int) -> Statement:
    """active -> waiting without counting the attempt: handed back unstarted, or a
    graceful stop, not a failure."""
    return row(
        f"UPDATE jobs SET state = 'waiting', attempts_made = {d.greatest}(attempts_made - 1, 0), started_at = NULL,"
        f" run_at = ?3, {_UNLEASED} WHERE id = ?1 AND state = 'active' AND lease_token = ?2 RETURNING {COLUMNS}",
        job_id, token, now)


def heartbeat(d: Dialect, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any) -> Statement:
    """The lease runs from ``now`` (for ``lease_ms`` when given; a job run by handlers
    has no lease), with the progress when given."""
    return row(
        f"UPDATE jobs SET heartbeat_at = ?3, lease_expires_at = CASE WHEN ?4{d.bigint} IS NULL"
        f" OR lease_expires_at IS NULL THEN lease_expires_at ELSE ?3 + ?4{d.bigint} END,"
        f" progress = coalesce(?5{d.json}, progress)"
        f" WHERE id = ?1 AND state = 'active' AND lease_token = ?2 RETURNING {COLUMNS}",
        job_id, token, now, lease_ms, None if progress is None else dumps(progress))


# -- moves asked for --------------------------------------------------------------------


def cancel(d: Dialect, job_id: int, now: int) -> Statement:
    """waiting, delayed or blocked -> cancelled (a running job is stopped by its runner)."""
    return row(f"UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 AND state IN"
               f" ('waiting', 'delayed', 'blocked') RETURNING {COLUMNS}", job_id, now)


def retry(d: Dialect, job_id: int, now: int) -> Statement:
    """failed, cancelled or expired -> waiting, attempts from zero."""
    return row(f"{_APPLY['retry']} WHERE id = ?1 AND state IN ('failed', 'cancelled', 'expired') RETURNING {COLUMNS}",
               job_id, now)


def promote(d: Dialect, job_id: int, now: int) -> Statement:
    """delayed -> waiting now."""
    return row(f"{_APPLY['promote']} WHERE id = ?1 AND state = 'delayed' RETURNING {COLUMNS}", job_id, now)


# An action on many jobs (store/actions.py chooses them): ?1 the ids, ?2 now. A retry
# keeps the last error and its group but names error_group: a job leaving 'failed'
# must, for SQLite's failed group counts (migration 0015) to see it leave.
_APPLY = {
    "retry": "UPDATE jobs SET state = 'waiting', attempts_made = 0, run_at = ?2, started_at = NULL,"
             " finished_at = NULL, result = NULL, progress = '0', expire_at = NULL, error_group = error_group",
    "cancel": "UPDATE jobs SET state = 'cancelled', finished_at = ?2",
    "promote": "UPDATE jobs SET state = 'waiting', run_at = ?2",
}


def act(d: Dialect, action: str, ids: list[int], states: tuple[str, ...], now: int) -> Statement:
    """``action`` (retry, cancel, promote, delete) for those of ``ids`` in ``states``."""
    eligible = ", ".join(f"'{s}'" for s in states)
    where = f"WHERE {d.one_of('id', 1)} AND state IN ({eligible}) RETURNING {COLUMNS}"
    if action == "delete":
        return rows(f"DELETE FROM jobs {where}", d.ids(ids))
    return rows(f"{_APPLY[action]} {where}", d.ids(ids), now)


def expiring(d: Dialect, now: int, limit: int) -> Statement:
    """(id, state) of waiting and delayed jobs past their expiry time, earliest first."""
    return rows(f"SELECT id, state FROM jobs WHERE expire_at IS NOT NULL AND {d.not_started}"
                f" AND expire_at <= ?1 ORDER BY expire_at LIMIT ?2{d.skip_locked}", now, limit)


def expire(d: Dialect, ids: list[int], now: int) -> Statement:
    """waiting or delayed -> expired for ``ids``."""
    return rows(f"UPDATE jobs SET state = 'expired', finished_at = ?2 WHERE {d.one_of('id', 1)}"
                f" AND state IN ('waiting', 'delayed') RETURNING {COLUMNS}", d.ids(ids), now)


def unique_update(d: Dialect, new: NewJob, kept: Job, now: int) -> Statement | None:
    """What ``new``'s unique mode changes of the ``kept`` job: ``replace`` its data,
    ``debounce`` its data and run time (when the new job would have run); None:
    ``reject``, or a kept job already running or finished, answered as it is. A
    blocked kept job counts as waiting: it takes the new data (and, debounced, the new
    time, at which it runs once its dependencies are done) and stays blocked."""
    assert new.unique is not None
    if new.unique.mode == "reject" or kept.state not in (JobState.WAITING, JobState.DELAYED, JobState.BLOCKED):
        return None
    if new.unique.mode == "replace":
        return row(f"UPDATE jobs SET data = ?1{d.json} WHERE id = ?2 RETURNING {COLUMNS}", dumps(new.data), kept.id)
    state, run_at = new.placed(now)
    if kept.state is JobState.BLOCKED:
        state = JobState.BLOCKED
    return row(f"UPDATE jobs SET data = ?1{d.json}, state = ?2, run_at = ?3 WHERE id = ?4 RETURNING {COLUMNS}",
               dumps(new.data), state.value, run_at, kept.id)


# -- dependents moving on (store/transitions.settle) -----------------------------------


def blocked(d: Dialect, job_id: int) -> Statement:
    """The job while it is blocked, locked."""
    return row(f"SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND state = 'blocked'{d.lock_rows}", job_id)


def unblock(d: Dialect, job_id: int, now: int) -> Statement:
    """blocked -> waiting, or delayed while its own time has not come."""
    return row(f"UPDATE jobs SET state = CASE WHEN run_at > ?1 THEN 'delayed' ELSE 'waiting' END,"
               f" run_at = {d.greatest}(run_at, ?1) WHERE id = ?2 AND state = 'blocked' RETURNING {COLUMNS}",
               now, job_id)


def fail_blocked(d: Dialect, job_id: int, now: int, error: str) -> Statement:
    """blocked -> failed with a dependency."""
    return row(f"UPDATE jobs SET state = 'failed', finished_at = ?1, error = ?2, error_group = ?4 WHERE id = ?3"
               f" AND state = 'blocked' RETURNING {COLUMNS}", now, error, job_id, error_group(error))


# -- removal ----------------------------------------------------------------------------


def delete(d: Dialect, job_id: int) -> Statement:
    return run("DELETE FROM jobs WHERE id = ?1", job_id)


def keep_newest(d: Dialect, queue: str, state: JobState, keep: int) -> Statement:
    """Remove the finished jobs of ``state`` in ``queue`` but the newest ``keep``."""
    return count("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = ?1 AND state = ?2"
                 " ORDER BY finished_at DESC, id DESC LIMIT ?3 OFFSET ?4)",
                 queue, state.value, d.no_limit, min(keep, MAX_KEEP))


def clean(d: Dialect, queue: str, state: JobState, finished_before: int, limit: int | None) -> Statement:
    """Remove finished jobs of ``state`` finished by ``finished_before``, oldest first."""
    return count("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = ?1 AND state = ?2"
                 " AND finished_at <= ?3 ORDER BY finished_at LIMIT ?4)",
                 queue, state.value, finished_before, d.no_limit if limit is None else limit)


# -- unique keys under several writers -----------------------------------------------------

_KEY_LOCK = "pg_advisory_xact_lock(hashtextextended(length({q}) || ':' || {q} || {k}, 0))"


def lock_key(d: Dialect, queue: str, key: str) -> Statement:
    """A unique key locked until the transaction ends, so that enqueues and retries of
    one key on any node are decided one at a time."""
    assert d.key_locks
    return value(f"SELECT {_KEY_LOCK.format(q='?1', k='?2')}", queue, key)


def lock_keys_of(d: Dialect, ids: list[int]) -> Statement:
    """The unique keys of jobs about to be retried, locked as an enqueue locks its key
    (in one order, so two retries cannot wait on each other)."""
    assert d.key_locks
    lock = _KEY_LOCK.format(q="queue", k="unique_key")
    return run(f"SELECT {lock} FROM (SELECT DISTINCT queue, unique_key FROM jobs WHERE {d.one_of('id', 1)}"
               " AND unique_key IS NOT NULL ORDER BY queue, unique_key) AS keys", d.ids(ids))
