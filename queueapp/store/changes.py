"""Every change besides a job's (transitions.py), written once for both stores as plans
(sql/plan.py) over the statements of sql/: a queue's pause, group settings,
schedules and their runs, the metrics history. Each store runs them in its writer
(store/sqlite/run.py, store/postgres/run.py)."""

from __future__ import annotations

from typing import Any

from ..access import MAX_KEYS, ApiKey
from ..errors import Conflict
from ..flow import GroupLimits, KeyChange, KeySettings
from ..history import HOUR_MS, MINUTE_MS, Tally
from ..model import UNFINISHED, NewJob, Schedule
from .records import Added, AuditEntry, StoredGroups
from .sql import audit, groups, history, jobs, keys, logs, queues, schedules
from .sql.dialect import Dialect
from .sql.plan import AddJobs, Plan

# -- queues -------------------------------------------------------------------------------


def set_paused(d: Dialect, queue: str, paused: bool, now: int) -> Plan[None]:
    yield queues.set_paused(d, queue, paused, now)


def ensure_queue(d: Dialect, queue: str, now: int) -> Plan[None]:
    yield queues.ensure(d, queue, now)


# -- the audit trail --------------------------------------------------------------------------------


def record_audit(d: Dialect, entry: AuditEntry) -> Plan[None]:
    yield audit.record(d, entry)


def prune_audit(d: Dialect, before: int) -> Plan[int]:
    removed: int = yield audit.prune(d, before)
    return removed


# -- API keys ------------------------------------------------------------------------------------


def save_api_key(d: Dialect, key: ApiKey) -> Plan[None]:
    """Keep a new key; Conflict when a key not revoked has its name, or when there
    are MAX_KEYS of them."""
    if int((yield keys.live_count(d))) >= MAX_KEYS:
        raise Conflict(f"there are {MAX_KEYS} keys not revoked already: revoke some first")
    if (yield keys.insert(d, key)) is None:
        raise Conflict(f"a key named {key.name!r} exists: revoke it first, or choose another name")


def revoke_api_key(d: Dialect, key_id: str, now: int) -> Plan[ApiKey | None]:
    found = yield keys.revoke(d, key_id, now)
    return None if found is None else keys.row_to_key(found)


def rotate_api_key(d: Dialect, key_id: str, secret_hash: str, previous_until: int | None,
                   now: int) -> Plan[ApiKey | None]:
    found = yield keys.rotate(d, key_id, secret_hash, previous_until, now)
    return None if found is None else keys.row_to_key(found)


# -- a job's log ---------------------------------------------------------------------------------


def append_log(d: Dialect, job_id: int, token: str, lines: list[str], now: int, keep: int) -> Plan[int | None]:
    """``lines`` after the log of the job active under ``token``, the newest ``keep``
    kept; the number of its last line, or None when the job is not active under it."""
    if (yield jobs.get_active(d, job_id, token)) is None:
        return None
    last = int((yield logs.last_seq(d, job_id)))
    yield logs.append(d, job_id, last + 1, lines, now)
    last += len(lines)
    if last > keep:
        yield logs.keep_newest(d, job_id, last - keep)
    return last


# -- group settings ---------------------------------------------------------------------------


def read_groups(d: Dialect) -> Plan[list[StoredGroups]]:
    """Every queue's stored group settings (read in the writer's order: start-up)."""
    return groups.stored_groups((yield groups.policies(d)), (yield groups.keys(d)))


def set_group_policy(d: Dialect, queue: str, limits: GroupLimits | None, now: int) -> Plan[None]:
    """The limits of every key of ``queue`` (None: back to the config file's)."""
    yield groups.forget_policy(d, queue) if limits is None else groups.set_policy(d, queue, limits, now)


def set_group_key(d: Dialect, queue: str, key: str, change: KeyChange, now: int) -> Plan[KeySettings]:
    """Change only what ``change`` names of ``key``'s settings; its settings now (a key
    left with nothing of its own is forgotten)."""
    settings = groups.key_settings((yield groups.change_key(d, queue, key, change, now)))
    yield groups.forget_key(d, queue, key)
    return settings


# -- schedules ------------------------------------------------------------------------------------


def upsert_schedule(d: Dialect, s: Schedule, now: int) -> Plan[Schedule]:
    return schedules.row_to_schedule((yield schedules.upsert(d, s, now)))


def delete_schedule(d: Dialect, queue: str, name: str) -> Plan[bool]:
    removed = yield schedules.delete(d, queue, name)
    return bool(removed == 1)


def set_schedule_enabled(d: Dialect, queue: str, name: str, enabled: bool, next_run_at: int | None,
                         now: int) -> Plan[Schedule | None]:
    found = yield schedules.set_enabled(d, queue, name, enabled, next_run_at, now)
    return None if found is None else schedules.row_to_schedule(found)


def init_schedule_next_run(d: Dialect, queue: str, name: str, next_run_at: int) -> Plan[None]:
    yield schedules.set_next_run(d, queue, name, next_run_at)


def run_schedule_now(d: Dialect, queue: str, name: str, job: NewJob, now: int) -> Plan[tuple[list[Added], bool] | None]:
    """One run of schedule ``name`` now, besides its rule, recorded as its last run;
    None when there is no such schedule. Answers as fire_schedule does."""
    if (yield schedules.one(d, queue, name)) is None:
        return None
    added: list[Added] = yield AddJobs([job], now)
    yield schedules.ran_now(d, queue, name, added[-1].id, now)
    return added, False


def fire_schedule(d: Dialect, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int,
                  now: int, guard: str = "", *guarded: Any) -> Plan[tuple[list[Added], bool] | None]:
    """Run schedule ``name`` due at ``expected_next`` (its ``jobs``: one, or one per
    missed run) and move it to ``next_run_at``, only while ``guard`` holds (a cluster's
    leader and term, see store/postgres/shared.py). None: not fired (a stale or double
    tick, the schedule gone or disabled, the guard false). Otherwise the jobs added
    (one whose "<schedule>@<time>" key already had a job is that job) and whether the
    run was skipped because the previous run's job is unfinished (overlap off)."""
    current = yield schedules.due(d, queue, name, expected_next)
    if current is None:
        return None
    overlap, last_job_id = current
    skipped = False
    if not overlap and last_job_id is not None:
        skipped = (yield schedules.job_state(d, last_job_id)) in UNFINISHED
    moved = yield schedules.advance(d, queue, name, expected_next, next_run_at, None if skipped else now, guard,
                                    *guarded)
    if moved != 1:
        return None
    if skipped or not jobs:
        return [], skipped
    added: list[Added] = yield AddJobs(jobs, now)
    yield schedules.ran(d, queue, name, added[-1].id)
    return added, False


# -- the metrics history ------------------------------------------------------------------------------


def _add_history(d: Dialect, queue: str, span_ms: int, start: int, add: Tally) -> Plan[None]:
    """Add ``add`` to the row of that queue, span and start (made when missing)."""
    found = yield history.get(d, queue, span_ms, start)
    if found is not None:
        merged = history.tally(found)
        merged.merge(add)
        add = merged
    yield history.put(d, queue, span_ms, start, add)


def record_history(d: Dialect, minute: int, tallies: list[tuple[str, Tally]]) -> Plan[None]:
    for queue, each in tallies:
        yield from _add_history(d, queue, MINUTE_MS, minute, each)


def roll_up_history(d: Dialect, before: int) -> Plan[int]:
    """Minutes that started before ``before`` become (part of) their hour's row."""
    minutes = list((yield history.take_minutes(d, before)))
    for (queue, hour), each in history.by_hour(minutes):
        yield from _add_history(d, queue, HOUR_MS, hour, each)
    return len(minutes)


def prune_history(d: Dialect, before: int) -> Plan[int]:
    removed: int = yield history.prune(d, before)
    return removed
