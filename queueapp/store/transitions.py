"""Every change of a job's state, written once for both stores as plans
(sql/plan.py): each yields the statements of sql/jobs.py and sql/dependencies.py
and decides on their answers, and each store runs it in its own writer (SQLite:
store/sqlite/run.py; PostgreSQL: store/postgres/run.py), inside that writer's
transaction. What one change does besides its own row is here too, so that it is
the same on both engines: a finished job's dependents move on, its callback job is
added (options.callbackUrl), and removeOnComplete / removeOnFail apply.
"""

from __future__ import annotations

from typing import Any

from ..clock import to_iso
from ..errors import Conflict, NotFound
from ..model import DEFAULT_ATTEMPTS, FINISHED, Job, JobState, NewJob
from ..retry import Failure, after_failure
from .actions import ELIGIBLE, Acted, Selection, chosen, key_of, window_end_query
from .records import Added, Change
from .sql import dependencies as edges
from .sql import jobs as sql
from .sql.dialect import Dialect
from .sql.jobs import row_to_job
from .sql.plan import AddJobs, Plan, Statement, row, rows
from .unique import held_key, job_key_query, kept_from_retry, unique_holder_query, unique_keys_query, unique_moved

CALLBACK_QUEUE = "queueapp.callbacks"
CALLBACK_JOB = "http"

# A completion: job id, lease token, result as JSON text, time.
Completion = tuple[int, str, str, int]


def _query(query: tuple[str, tuple[Any, ...]]) -> Statement:
    return rows(query[0], *query[1])


# -- enqueues with keys --------------------------------------------------------------------


def kept(d: Dialect, new: NewJob, now: int) -> Plan[Added | None]:
    """The job kept instead of ``new``: the one with its jobId, or the one its unique
    key holds, replaced or debounced as its mode says; None: insert ``new``. With
    several writers the unique key is locked until the transaction ends (enqueues of
    one key on any node are decided one at a time), and so is its holder's row (a
    claim, a cancel or an expiry elsewhere must not change it between this look and
    its update: a cancelled job debounced back to waiting)."""
    if new.unique is not None and d.key_locks:
        yield sql.lock_key(d, new.queue, new.unique.key)
    if new.job_key is not None:
        query, params = job_key_query(new)
        found = yield row(query, *params)
        if found is not None:
            return Added(row_to_job(found), created=False)
    if new.unique is None:
        return None
    query, params = unique_holder_query(new, now)
    found = yield row(f"{query}{d.lock_rows}", *params)
    if found is None:
        return None
    holder = row_to_job(found)
    update = sql.unique_update(d, new, holder, now)
    if update is None:
        return Added(holder, created=False)
    stored = yield update
    return Added(row_to_job(stored), created=False, moved=unique_moved(new, holder))


# -- starting -------------------------------------------------------------------------


def claim(d: Dialect, ids: list[int], now: int, lease_ms: int | None, node: str | None, worker: str,
          taken_at: list[int] | None = None) -> Plan[list[Job]]:
    """waiting -> active for those of ``ids`` still waiting (and still due at
    ``taken_at``, when given), run by ``worker``, in the order of ``ids``; those past
    their expiry become expired instead (returned in that state)."""
    found = yield sql.claim_taken(d, ids, taken_at, now, lease_ms, node, worker)
    by_id = {r[0]: row_to_job(r) for r in found}
    return [by_id[job_id] for job_id in ids if job_id in by_id]


def promote_taken(d: Dialect, due: list[tuple[int, int]]) -> Plan[list[int]]:
    """delayed -> waiting for those of ``due`` (id, due time) still delayed until then."""
    found = yield sql.promote_taken(d, due)
    return [r[0] for r in found]


def expire(d: Dialect, now: int, limit: int) -> Plan[list[Change]]:
    """Waiting and delayed jobs past their expiry time -> expired (the sweep), and
    their dependents moved on."""
    due = yield sql.expiring(d, now, limit)
    if not due:
        return []
    prior = {r[0]: r[1] for r in due}
    done = yield sql.expire(d, list(prior), now)
    changes = [Change(row_to_job(r), sql.state_of(prior[r[0]])) for r in sorted(done, key=lambda r: r[0])]
    for change in changes:
        yield from follow(d, change, "expired", now)
    return changes


# -- the end of an attempt --------------------------------------------------------------


def complete(d: Dialect, items: list[Completion]) -> Plan[list[Change | None]]:
    """Completions (one or many callers'), in one statement; then what follows for
    the jobs that have something to follow (dependents, a callback) and each job's
    removal policy, in the order given. One job twice among them: one by one, so that
    only its live token counts."""
    ids = [item[0] for item in items]
    if len(items) == 1 or len(set(ids)) < len(ids):
        answers: list[Change | None] = []
        for job_id, token, result, at in items:
            found = yield sql.complete(d, job_id, token, result, at)
            answers.append(None if found is None else (yield from _completed(d, row_to_job(found), True)))
        return answers
    done: dict[int, Job] = {r[0]: row_to_job(r) for r in (yield sql.complete_many(d, items))}
    awaited = {r[0] for r in (yield edges.awaited(d, list(done)))} if done else set()
    answers = []
    for job_id in ids:
        job = done.get(job_id)
        answers.append(None if job is None else (yield from _completed(d, job, job_id in awaited)))
    return answers


def _completed(d: Dialect, job: Job, awaited: bool) -> Plan[Change]:
    change = Change(job, JobState.ACTIVE)
    if awaited or job.options.get("callbackUrl"):
        yield from follow(d, change, "completed", job.finished_at or 0)
    yield from _removal(d, change, job.options.get("removeOnComplete", False))
    return change


def fail(d: Dialect, job_id: int, token: str, failure: Failure, now: int) -> Plan[Change | None]:
    """Fail the attempt of the job active under ``token``: back in line with its
    backoff, or failed (or cancelled) for good, and what follows that."""
    found = yield sql.get_active(d, job_id, token)
    if found is None:
        return None
    job = row_to_job(found)
    state, run_at = after_failure(job.name, job.options, job.attempts, job.attempts_made, now, failure)
    entry: dict[str, Any] = {"attempt": job.attempts_made, "message": failure.message, "at": to_iso(now)}
    if job.started_at is not None:  # when this attempt began: its duration is at - startedAt
        entry["startedAt"] = to_iso(job.started_at)
    if job.worker is not None:
        entry["worker"] = job.worker
    if failure.stack:
        entry["stack"] = failure.stack
    job.errors.append(entry)
    stored = yield sql.fail(d, job_id, state, run_at, now if state in FINISHED else None, failure.message, job.errors)
    change = Change(row_to_job(stored), JobState.ACTIVE)
    if state in FINISHED:
        yield from follow(d, change, str(state), now)
    if state == JobState.FAILED:
        yield from _removal(d, change, job.options.get("removeOnFail", False))
    return change


def rescue(d: Dialect, now: int, failure: Failure, leases: list[tuple[int, str]]) -> Plan[list[Change]]:
    """Fail the attempt of each job still active under the lease token given with it:
    its worker is gone. A job heartbeated or finished meanwhile is left alone."""
    changes = []
    for job_id, token in leases:
        change = yield from fail(d, job_id, token, failure, now)
        if change is not None:
            changes.append(change)
    return changes


def release(d: Dialect, job_id: int, token: str, now: int) -> Plan[Change | None]:
    """active -> waiting, the attempt not counted."""
    found = yield sql.release(d, job_id, token, now)
    return None if found is None else Change(row_to_job(found), JobState.ACTIVE)


def heartbeat(d: Dialect, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any) -> Plan[Job | None]:
    found = yield sql.heartbeat(d, job_id, token, now, lease_ms, progress)
    return None if found is None else row_to_job(found)


# -- moves asked for ----------------------------------------------------------------------


def _existing(d: Dialect, job_id: int) -> Plan[Job]:
    found = yield sql.get(d, job_id, lock=True)
    if found is None:
        raise NotFound(f"no job with id {job_id}")
    return row_to_job(found)


def cancel(d: Dialect, job_id: int, now: int) -> Plan[Change]:
    """A job that has not started: cancelled, and its dependents moved on. For a
    running job nothing is stored (its runner stops it: a failure with ``cancel``)
    and the change says ACTIVE to ACTIVE."""
    job = yield from _existing(d, job_id)
    if job.state in FINISHED:
        raise Conflict(f"job {job_id} has already finished ({job.state})")
    if job.state is JobState.ACTIVE:
        return Change(job, JobState.ACTIVE)
    found = yield sql.cancel(d, job_id, now)
    change = Change(row_to_job(found), job.state)
    yield from follow(d, change, "cancelled", now)
    return change


def retry(d: Dialect, job_id: int, now: int) -> Plan[Change]:
    """failed, cancelled or expired -> waiting, unless its unique key is held."""
    if d.key_locks:
        yield sql.lock_keys_of(d, [job_id])
    job = yield from _existing(d, job_id)
    if job.state.value not in ELIGIBLE["retry"]:
        raise Conflict(f"only failed, cancelled or expired jobs can be retried; job {job_id} is {job.state}")
    if kept_from_retry((yield _query(unique_keys_query([job_id], d)))):
        raise Conflict(held_key(job_id, job.options["unique"]["key"]))
    found = yield sql.retry(d, job_id, now)
    return Change(row_to_job(found), job.state)


def promote(d: Dialect, job_id: int, now: int) -> Plan[Change]:
    """delayed -> waiting now."""
    job = yield from _existing(d, job_id)
    if job.state is not JobState.DELAYED:
        raise Conflict(f"only delayed jobs can be promoted; job {job_id} is {job.state}")
    found = yield sql.promote(d, job_id, now)
    return Change(row_to_job(found), JobState.DELAYED, prior_run_at=job.run_at)


def clean(d: Dialect, queue: str, state: JobState, finished_before: int, limit: int | None) -> Plan[int]:
    removed = yield sql.clean(d, queue, state, finished_before, limit)
    return removed


def act(d: Dialect, action: str, selection: Selection, now: int, limit: int) -> Plan[Acted]:
    """Apply ``action`` to up to ``limit`` chosen jobs, in one statement."""
    query = chosen(action, selection, limit + 1, d)
    if query is None:
        return Acted([], None)
    found = list((yield _query(query)))
    more = len(found) > limit
    found = found[:limit]
    next_cursor = key_of(selection.search, tuple(found[-1])) if more else None
    if not more and selection.search.scans and selection.ids is None:
        end = yield _query(window_end_query(action, selection, d))
        next_cursor = key_of(selection.search, tuple(end[0])) if end else None
    if not found:
        return Acted([], next_cursor)
    prior = {r[0]: (r[1], r[2]) for r in found}
    if action == "retry":
        if d.key_locks:
            yield sql.lock_keys_of(d, list(prior))
        for job_id in kept_from_retry((yield _query(unique_keys_query(list(prior), d)))):
            del prior[job_id]
    done = yield sql.act(d, action, list(prior), ELIGIBLE[action], now)
    changes = []
    for job in sorted((row_to_job(r) for r in done), key=lambda j: j.id):
        state, run_at = prior[job.id]
        changes.append(Change(job, JobState(state), deleted=action == "delete", prior_run_at=run_at))
    if action in ("cancel", "delete"):
        for change in changes:
            yield from follow(d, change, "deleted" if change.deleted else "cancelled", now)
    return Acted(changes, next_cursor)


# -- what an end changes besides --------------------------------------------------------------


def follow(d: Dialect, change: Change, ended: str, now: int) -> Plan[Change]:
    """A change that ended a job (``ended``: how): its callback, its dependents moved
    on (into ``change.settled``), and the callbacks of those it failed."""
    yield from _tell(d, change.job, change, now)
    change.settled.extend((yield from settle(d, change.job.id, ended, now)))
    for moved in change.settled:
        yield from _tell(d, moved.job, change, now)
    return change


def settle(d: Dialect, finished: int, state: str, now: int) -> Plan[list[Change]]:
    """The dependents of job ``finished``, which ended ``state`` (completed, failed,
    cancelled, expired or deleted), moved on: waiting or delayed when it was their
    last unfinished dependency (or failures are allowed), else failed with it, and
    theirs in turn."""
    changes: list[Change] = []
    pending = [(finished, state)]
    while pending:
        dep_id, dep_state = pending.pop()
        for job_id in sorted(r[0] for r in (yield edges.take_edges(d, dep_id))):
            found = yield sql.blocked(d, job_id)
            if found is None:
                continue
            if dep_state == "completed" or row_to_job(found).options.get("allowDependencyFailure"):
                if (yield edges.waits(d, job_id)) is None:
                    moved = yield sql.unblock(d, job_id, now)
                    changes.append(Change(row_to_job(moved), JobState.BLOCKED))
                continue
            yield edges.drop_edges(d, job_id)
            failed = yield sql.fail_blocked(d, job_id, now, f"dependency {dep_id} {dep_state}")
            changes.append(Change(row_to_job(failed), JobState.BLOCKED))
            pending.append((job_id, "failed"))
    return changes


def settle_lingering(d: Dialect, now: int) -> Plan[int]:
    """At start-up: edges whose dependency ended (or is gone) without them being
    settled (a crash between the two transactions that do it). How many moved."""
    moved = 0
    for dep_id, state in list((yield edges.lingering(d))):
        moved += len((yield from settle(d, dep_id, state, now)))
    return moved


def outcome_of(job: Job) -> dict[str, object]:
    """What a callback says of a finished job."""
    told: dict[str, object] = {"id": str(job.id), "queue": job.queue, "name": job.name, "state": str(job.state),
                               "attempts": job.attempts, "attemptsMade": job.attempts_made,
                               "finishedAt": to_iso(job.finished_at)}
    if job.state == "completed":
        told["result"] = job.result
    else:
        told["error"] = job.error
    return told


def _tell(d: Dialect, job: Job, change: Change, now: int) -> Plan[None]:
    """options.callbackUrl: when ``job`` completed or failed for good, an ``http`` job
    that POSTs its outcome, added in the same transaction (so a crash cannot lose
    it) to ``change.spawned``. The ``http`` job signs the body when it sends it
    (workers/http_call.py), in the callbacks' queue only."""
    url = job.options.get("callbackUrl")
    if not url or job.state not in (JobState.COMPLETED, JobState.FAILED):
        return
    data = {"url": url, "method": "POST", "body": outcome_of(job), "sign": True}
    # The callback goes on in the finished job's trace, whose traceparent it sends.
    traced = {"telemetry": job.options["telemetry"]} if "telemetry" in job.options else {}
    new = NewJob(CALLBACK_QUEUE, CALLBACK_JOB, data, priority=3, attempts=DEFAULT_ATTEMPTS[1], run_at=now,
                 options=traced)
    added: list[Added] = yield AddJobs([new], now)
    change.spawned.extend(added)


def _removal(d: Dialect, change: Change, policy: bool | int) -> Plan[None]:
    """removeOnComplete / removeOnFail: True removes the job itself; a number N keeps
    only the newest N finished jobs of that state in the queue (as Bull does)."""
    job = change.job
    if policy is True:
        yield sql.delete(d, job.id)
        change.deleted = True
    elif policy is not False and isinstance(policy, int):
        removed = yield sql.keep_newest(d, job.queue, job.state, policy)
        if removed:
            change.pruned[job.state] = removed
