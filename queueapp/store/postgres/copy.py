"""``queueapp copy --from FILE --to postgresql://...``: moving an appliance from its
SQLite file to PostgreSQL, with both stopped. Jobs keep their ids (and ids stay
never reused: the identity continues after the file's high-water mark), and so do
schedules, queue settings, group settings, dependency edges and the metrics
history. The target must be empty; the counts are compared at the end, and the
whole copy is one transaction, so a failed copy leaves the target as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..lock import DatabaseLock
from ..sqlite.connection import connect
from ..sqlite.migrate import migrate as migrate_sqlite
from .migrate import migrate as migrate_postgres

BATCH = 10_000
_BOOL = bool

# table: (columns, converters of the columns SQLite keeps as integers or text that
# PostgreSQL keeps as booleans)
TABLES: dict[str, tuple[tuple[str, ...], dict[str, Callable[[Any], Any]]]] = {
    "queues": (("name", "paused", "concurrency", "created_at"), {"paused": _BOOL}),
    "jobs": (("id", "queue", "name", "state", "priority", "data", "options", "attempts", "attempts_made",
              "progress", "result", "error", "errors", "job_key", "created_at", "run_at", "started_at",
              "finished_at", "lease_token", "lease_expires_at", "heartbeat_at", "unique_key", "expire_at",
              "group_key"), {}),
    "job_dependencies": (("depends_on", "job_id"), {}),
    "job_logs": (("job_id", "seq", "at", "line"), {}),
    "schedules": (("queue", "name", "job_name", "data", "options", "cron", "timezone", "every_ms", "missed",
                   "overlap", "enabled", "anchor_at", "next_run_at", "last_run_at", "last_job_id", "created_at",
                   "updated_at"), {"overlap": _BOOL, "enabled": _BOOL}),
    "metrics_history": (("queue", "span_ms", "start_at", "enqueued", "completed", "failed", "took_ms", "took_n",
                         "buckets"), {}),
    "group_policies": (("queue", "concurrency", "rate_max", "rate_per_ms", "updated_at"), {}),
    "group_keys": (("queue", "key", "custom", "concurrency", "rate_max", "rate_per_ms", "paused", "paused_until",
                    "updated_at"), {"custom": _BOOL, "paused": _BOOL}),
}


def _rows(conn: sqlite3.Connection, table: str) -> Iterator[list[tuple[Any, ...]]]:
    columns, convert = TABLES[table]
    cursor = conn.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while batch := cursor.fetchmany(BATCH):
        if convert:
            at = {i: convert[c] for i, c in enumerate(columns) if c in convert}
            batch = [tuple(at[i](v) if i in at and v is not None else v for i, v in enumerate(row))
                     for row in batch]
        yield batch


async def _empty(pg: Any) -> bool:
    """No job, queue, group setting or history; schedules none but the built-in cleanup."""
    for table in ("jobs", "queues", "group_policies", "group_keys", "metrics_history"):
        if await pg.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            return False
    return not await pg.fetchval("SELECT EXISTS (SELECT 1 FROM schedules WHERE name <> 'cleanup')")


async def copy(source: Path, url: str) -> dict[str, int]:
    """Copy the appliance's database at ``source`` into the empty PostgreSQL database
    at ``url``; the rows copied per table. ValueError when the target is not empty
    or the counts differ (nothing is left copied then)."""
    import asyncpg

    from .store import check_free

    if not source.is_file():
        raise ValueError(f"{source} does not exist")
    await check_free(url)
    with DatabaseLock(source):
        lite = connect(source)
        try:
            migrate_sqlite(lite)  # the file at the schema this version copies
            pg = await asyncpg.connect(url)
            try:
                await migrate_postgres(pg)
                async with pg.transaction():
                    if not await _empty(pg):
                        raise ValueError("the target database is not empty: copy into an empty database")
                    await pg.execute("DELETE FROM schedules")  # the source's schedules replace the default
                    copied = {table: await _copy_table(lite, pg, table) for table in TABLES}
                    high = lite.execute("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'),"
                                        " 0), coalesce((SELECT max(id) FROM jobs), 0))").fetchone()[0]
                    if high:
                        await pg.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), $1)", high)
                    await _compare(lite, pg)
                return copied
            finally:
                await pg.close()
        finally:
            lite.close()


async def _copy_table(lite: sqlite3.Connection, pg: Any, table: str) -> int:
    columns = TABLES[table][0]
    count = 0
    for batch in _rows(lite, table):
        await pg.copy_records_to_table(table, records=batch, columns=list(columns))
        count += len(batch)
    return count


async def _compare(lite: sqlite3.Connection, pg: Any) -> None:
    """The same rows per table, and the same jobs per queue and state."""
    for table in TABLES:
        here = lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        there = await pg.fetchval(f"SELECT count(*) FROM {table}")
        if here != there:
            raise ValueError(f"{table}: {here} rows in the file, {there} copied")
    here_states = sorted(lite.execute("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state").fetchall())
    there_states = sorted(tuple(r) for r in await pg.fetch(
        "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"))
    if here_states != there_states:
        raise ValueError("the jobs per queue and state differ after the copy")
