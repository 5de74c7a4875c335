"""The writes on PostgreSQL besides the jobs', each inside the ordered writer's
transaction (writer.py): queue and group settings, schedules, and the metrics
history. Each does what the SQLite store's module of the same
concern does (actions.py, groups.py, schedules.py, history.py)."""

from __future__ import annotations

from typing import Any

from ...flow import GroupLimits, KeyChange, KeySettings
from ...history import HOUR_MS, MINUTE_MS, Tally
from ...jsonfast import dumps
from ...model import Schedule
from ..groups import key_change_queries, key_settings
from ..history import COLUMNS as HISTORY_COLUMNS
from ..history import by_hour, tally
from ..schedules import COLUMNS as SCHEDULE_COLUMNS
from ..schedules import row_to_schedule
from ..sql.dialect import numbered


async def set_paused(conn: Any, queue: str, paused: bool, now: int) -> None:
    await conn.execute("INSERT INTO queues (name, paused, created_at) VALUES ($1, $2, $3)"
                       " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused", queue, paused, now)


async def ensure_queue(conn: Any, queue: str, now: int) -> None:
    await conn.execute("INSERT INTO queues (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                       queue, now)


async def set_group_policy(conn: Any, queue: str, limits: GroupLimits | None, now: int) -> None:
    if limits is None:
        await conn.execute("DELETE FROM group_policies WHERE queue = $1", queue)
        return
    await conn.execute(
        "INSERT INTO group_policies (queue, concurrency, rate_max, rate_per_ms, updated_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, rate_max = excluded.rate_max,"
        " rate_per_ms = excluded.rate_per_ms, updated_at = excluded.updated_at",
        queue, limits.concurrency, limits.rate_max, limits.rate_per_ms, now)


async def set_group_key(conn: Any, queue: str, key: str, change: KeyChange, now: int) -> KeySettings:
    """Change ``key``'s settings as ``change`` says (store/groups.py); its settings now."""
    (upsert, upsert_args), (forget, forget_args) = key_change_queries(queue, key, change, now)
    settings = key_settings(await conn.fetchrow(numbered(upsert), *upsert_args))
    await conn.execute(numbered(forget), *forget_args)
    return settings


async def upsert_schedule(conn: Any, s: Schedule, now: int) -> Schedule:
    """Insert, or replace the schedule of the same queue and name (keeping its
    creation time and the record of its last run)."""
    row = await conn.fetchrow(
        numbered(f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?::jsonb, ?::jsonb, ?, ?, ?, ?, ?,"
                 " ?, ?, ?, NULL, NULL, ?, ?) ON CONFLICT (queue, name) DO UPDATE SET job_name = excluded.job_name,"
                 " data = excluded.data, options = excluded.options, cron = excluded.cron,"
                 " timezone = excluded.timezone, every_ms = excluded.every_ms, missed = excluded.missed,"
                 " overlap = excluded.overlap, enabled = excluded.enabled, anchor_at = excluded.anchor_at,"
                 f" next_run_at = excluded.next_run_at, updated_at = excluded.updated_at RETURNING {SCHEDULE_COLUMNS}"),
        s.queue, s.name, s.job_name, dumps(s.data), dumps(s.options), s.cron, s.timezone, s.every_ms, s.missed,
        s.overlap, s.enabled, s.anchor_at, s.next_run_at, now, now)
    return row_to_schedule(row)


async def delete_schedule(conn: Any, queue: str, name: str) -> bool:
    return await conn.execute("DELETE FROM schedules WHERE queue = $1 AND name = $2", queue, name) == "DELETE 1"


async def set_schedule_enabled(conn: Any, queue: str, name: str, enabled: bool, next_run_at: int | None,
                               now: int) -> Schedule | None:
    row = await conn.fetchrow(
        "UPDATE schedules SET enabled = $1, next_run_at = $2, updated_at = $3"
        f" WHERE queue = $4 AND name = $5 RETURNING {SCHEDULE_COLUMNS}", enabled, next_run_at, now, queue, name)
    return None if row is None else row_to_schedule(row)


async def init_schedule_next_run(conn: Any, queue: str, name: str, next_run_at: int) -> None:
    await conn.execute("UPDATE schedules SET next_run_at = $1 WHERE queue = $2 AND name = $3"
                       " AND next_run_at IS NULL", next_run_at, queue, name)


async def _add_history(conn: Any, queue: str, span_ms: int, start: int, add: Tally) -> None:
    row = await conn.fetchrow(f"SELECT {HISTORY_COLUMNS} FROM metrics_history WHERE queue = $1 AND span_ms = $2"
                              " AND start_at = $3 FOR UPDATE", queue, span_ms, start)
    if row is not None:
        merged = tally(row)
        merged.merge(add)
        add = merged
    await conn.execute(
        "INSERT INTO metrics_history (queue, span_ms, start_at, enqueued, completed, failed, took_ms, took_n,"
        " buckets) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) ON CONFLICT (queue, span_ms, start_at)"
        " DO UPDATE SET enqueued = excluded.enqueued, completed = excluded.completed, failed = excluded.failed,"
        " took_ms = excluded.took_ms, took_n = excluded.took_n, buckets = excluded.buckets",
        queue, span_ms, start, add.enqueued, add.completed, add.failed, add.took_ms, add.took_n,
        dumps(add.buckets_text()))


async def record_history(conn: Any, minute: int, tallies: list[tuple[str, Tally]]) -> None:
    for queue, each in tallies:
        await _add_history(conn, queue, MINUTE_MS, minute, each)


async def roll_up_history(conn: Any, before: int) -> int:
    """Minutes that started before ``before`` become (part of) their hour's row."""
    rows = await conn.fetch(f"DELETE FROM metrics_history WHERE span_ms = $1 AND start_at < $2"
                            f" RETURNING queue, start_at, {HISTORY_COLUMNS}", MINUTE_MS, before)
    for (queue, hour), each in by_hour(rows):
        await _add_history(conn, queue, HOUR_MS, hour, each)
    return len(rows)


async def prune_history(conn: Any, before: int) -> int:
    status = await conn.execute("DELETE FROM metrics_history WHERE start_at < $1", before)
    return int(status.rsplit(" ", 1)[-1])
