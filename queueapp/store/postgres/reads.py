"""Reads on PostgreSQL, over a connection of the read pool: the same queries as the
SQLite store's (job_reads.py, built from the same searches, in PostgreSQL's
dialect), and the rows start-up and the self-audit need."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ...access import ApiKey
from ...history import Tally
from ...model import Job, JobState, Schedule
from ...search import MAX_SCAN, JobPage, JobSearch
from .. import changes
from .. import job_reads as reads
from ..records import (
    AuditEntry,
    FinishedSample,
    LogLine,
    NameFigures,
    PendingJob,
    QueueSettings,
    Report,
    StoredGroups,
    TableSnapshot,
)
from ..sql import audit, history, keys, logs, schedules
from ..sql import dependencies as edges
from ..sql.dialect import POSTGRES, numbered
from .jobs import COLUMNS, row_to_job
from .statements import drive, execute

_STATES = {s.value: s for s in JobState}


async def fetch(conn: Any, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """A query written with ``?`` placeholders, run in PostgreSQL's numbering."""
    return list(await conn.fetch(numbered(query), *params))


async def get_job(conn: Any, job_id: int) -> Job | None:
    rows = await fetch(conn, *reads.get_query(job_id))
    return row_to_job(rows[0]) if rows else None


async def search_jobs(conn: Any, search: JobSearch) -> JobPage:
    jobs = [row_to_job(r) for r in await fetch(conn, *reads.search_query(search, POSTGRES))]
    last = search.key_of(jobs[-1]) if len(jobs) == search.limit else None
    if not search.scans:
        return JobPage(jobs, last)
    (scanned,), = await fetch(conn, *reads.scanned_query(search, last))
    if last is not None or scanned < MAX_SCAN:
        return JobPage(jobs, last, scanned)
    edge = await fetch(conn, *reads.window_end_query(search))
    return JobPage(jobs, tuple(edge[0]) if edge else None, scanned)


async def failed_jobs(conn: Any, queue: str, limit: int) -> list[Job]:
    return [row_to_job(r) for r in await fetch(conn, *reads.failed_query(queue, limit))]


async def active_jobs(conn: Any, queue: str) -> list[Job]:
    return [row_to_job(r) for r in await fetch(conn, *reads.active_query(queue))]


async def all_active(conn: Any) -> list[Job]:
    return [row_to_job(r) for r in await conn.fetch(f"SELECT {COLUMNS} FROM jobs WHERE state = 'active'")]


async def count_states(conn: Any) -> dict[str, dict[JobState, int]]:
    """Counted from the table (start-up and repairs; metrics read memory)."""
    counts: dict[str, dict[JobState, int]] = {}
    for queue, state, n in await conn.fetch("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"):
        counts.setdefault(queue, {})[_STATES[state]] = n
    return counts


async def pending_jobs(conn: Any, batch: int) -> AsyncIterator[list[PendingJob]]:
    """Every waiting and delayed job, in batches by id (keyset pages)."""
    after = 0
    while True:
        rows = await conn.fetch(
            "SELECT id, queue, name, state, priority, run_at, group_key FROM jobs"
            " WHERE state IN ('waiting', 'delayed') AND id > $1 ORDER BY id LIMIT $2", after, batch)
        if not rows:
            return
        yield [PendingJob._make(tuple(r)) for r in rows]
        after = rows[-1][0]


async def finished_since(conn: Any, since: int) -> list[FinishedSample]:
    rows = await conn.fetch(
        "SELECT queue, state, started_at, finished_at FROM jobs WHERE state IN ('completed', 'failed')"
        " AND finished_at >= $1", since)
    return [FinishedSample(q, _STATES[s], started, finished) for q, s, started, finished in rows]


async def queue_settings(conn: Any) -> list[QueueSettings]:
    rows = await conn.fetch("SELECT name, paused, concurrency FROM queues ORDER BY name")
    return [QueueSettings(name, paused, concurrency) for name, paused, concurrency in rows]


async def report(conn: Any, queue: str, since: int, until: int) -> Report:
    by_name, reasons, states = reads.report_queries(queue, since, until)
    return Report(
        [NameFigures(n, c, f, None if avg is None else round(float(avg), 1), mx)
         for n, c, f, avg, mx in await fetch(conn, *by_name)],
        [(e, n) for e, n in await fetch(conn, *reasons)],
        {state: n for state, n in await fetch(conn, *states)},
    )


async def failure_groups(conn: Any, queue: str, limit: int) -> list[dict[str, Any]]:
    grouped_query, legacy_query = reads.failure_groups_queries(queue, limit, POSTGRES)
    return reads.failure_groups(await fetch(conn, *grouped_query), await fetch(conn, *legacy_query), limit)


async def snapshot(conn: Any) -> TableSnapshot:
    """The unfinished jobs and the counts (in the writer's transaction: no write of
    this store commits between the two)."""
    unfinished = [tuple(r) for r in await conn.fetch(
        "SELECT id, queue, name, state, priority, run_at, lease_token, group_key FROM jobs"
        " WHERE state IN ('waiting', 'delayed', 'active')")]
    return TableSnapshot(unfinished, await count_states(conn))


async def list_schedules(conn: Any, queue: str | None) -> list[Schedule]:
    return [schedules.row_to_schedule(r) for r in await execute(conn, schedules.listed(POSTGRES, queue))]


async def get_schedule(conn: Any, queue: str, name: str) -> Schedule | None:
    found = await execute(conn, schedules.one(POSTGRES, queue, name))
    return None if found is None else schedules.row_to_schedule(found)


async def group_settings(conn: Any) -> list[StoredGroups]:
    return await drive(conn, changes.read_groups(POSTGRES))


async def group_starts(conn: Any, since: int) -> list[tuple[str, str, int]]:
    rows = await conn.fetch("SELECT queue, group_key, started_at FROM jobs WHERE group_key IS NOT NULL"
                            " AND started_at >= $1", since)
    return [(q, k, at) for q, k, at in rows]


async def read_history(conn: Any, queue: str, since: int) -> list[tuple[int, Tally]]:
    return history.rows_to_tallies(await execute(conn, history.read(POSTGRES, queue, since)))


async def read_log(conn: Any, job_id: int, after_seq: int, limit: int) -> list[LogLine]:
    return [LogLine(*r) for r in await execute(conn, logs.read(POSTGRES, job_id, after_seq, limit))]


async def dependents(conn: Any, job_id: int, limit: int) -> list[tuple[int, str, str]]:
    return [tuple(r) for r in await execute(conn, edges.dependents(POSTGRES, job_id, limit))]


async def api_keys(conn: Any) -> list[ApiKey]:
    return [keys.row_to_key(r) for r in await execute(conn, keys.every(POSTGRES))]


async def read_audit(conn: Any, queue: str | None, before_id: int | None, limit: int) -> list[AuditEntry]:
    return [audit.row_to_entry(r) for r in await execute(conn, audit.page(POSTGRES, queue, before_id, limit))]
