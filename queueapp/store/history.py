"""SQL for the metrics history (history.py): minutes written from memory, rolled up
into hours as they age, pruned after a week. Write functions run in the writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ..history import HOUR_MS, MINUTE_MS, Tally
from ..jsonfast import loads
from ..model import dumps
from .job_reads import Query

COLUMNS = "enqueued, completed, failed, took_ms, took_n, buckets"


def tally(row: Sequence[Any]) -> Tally:
    """A row of COLUMNS (from either engine) as a Tally."""
    enqueued, completed, failed, took_ms, took_n, buckets = row
    return Tally.of_row(enqueued, completed, failed, took_ms, took_n, loads(buckets))


def _add(conn: sqlite3.Connection, queue: str, span_ms: int, start: int, add: Tally) -> None:
    """Add ``add`` to the row of that queue, span and start (made when missing)."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM metrics_history WHERE queue = ? AND span_ms = ? AND start_at = ?",
        (queue, span_ms, start),
    ).fetchone()
    if row is not None:
        merged = tally(row)
        merged.merge(add)
        add = merged
    conn.execute(
        "INSERT OR REPLACE INTO metrics_history (queue, span_ms, start_at, enqueued, completed, failed,"
        " took_ms, took_n, buckets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (queue, span_ms, start, add.enqueued, add.completed, add.failed, add.took_ms,
         add.took_n, dumps(add.buckets_text())),
    )


def record(conn: sqlite3.Connection, minute: int, tallies: list[tuple[str, Tally]]) -> None:
    for queue, each in tallies:
        _add(conn, queue, MINUTE_MS, minute, each)


def roll_up(conn: sqlite3.Connection, before: int) -> int:
    """Minutes that started before ``before`` become (part of) their hour's row."""
    rows = conn.execute(
        f"DELETE FROM metrics_history WHERE span_ms = ? AND start_at < ? RETURNING queue, start_at, {COLUMNS}",
        (MINUTE_MS, before),
    ).fetchall()
    for (queue, hour), each in by_hour(rows):
        _add(conn, queue, HOUR_MS, hour, each)
    return len(rows)


def by_hour(rows: Iterable[Sequence[Any]]) -> list[tuple[tuple[str, int], Tally]]:
    """Minute rows (queue, start, COLUMNS...) merged into their hours, in order."""
    hours: dict[tuple[str, int], Tally] = {}
    for row in rows:
        hours.setdefault((row[0], row[1] - row[1] % HOUR_MS), Tally()).merge(tally(row[2:]))
    return sorted(hours.items())


def prune(conn: sqlite3.Connection, before: int) -> int:
    return conn.execute("DELETE FROM metrics_history WHERE start_at < ?", (before,)).rowcount


def read_query(queue: str, since: int) -> Query:
    """A queue's rows from ``since`` on, by the primary key (minutes and hours never
    cover the same time: a minute's row is gone once its hour has it)."""
    return (f"SELECT start_at, {COLUMNS} FROM metrics_history WHERE queue = ? AND span_ms IN (?, ?)"
            " AND start_at >= ? ORDER BY start_at", (queue, MINUTE_MS, HOUR_MS, since))


def rows_to_tallies(rows: list[tuple[Any, ...]]) -> list[tuple[int, Tally]]:
    return [(row[0], tally(row[1:])) for row in rows]
