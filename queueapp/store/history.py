"""SQL for the metrics history (history.py): minutes written from memory, rolled up
into hours as they age, pruned after a week. Write functions run in the writer."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..history import HOUR_MS, MINUTE_MS, Tally
from ..jsonfast import loads
from ..model import dumps
from .job_reads import Query

_COLUMNS = "enqueued, completed, failed, took_ms, took_n, buckets"


def _tally(row: tuple[Any, ...]) -> Tally:
    enqueued, completed, failed, took_ms, took_n, buckets = row
    return Tally.of_row(enqueued, completed, failed, took_ms, took_n, loads(buckets))


def _add(conn: sqlite3.Connection, queue: str, span_ms: int, start: int, tally: Tally) -> None:
    """Add ``tally`` to the row of that queue, span and start (made when missing)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM metrics_history WHERE queue = ? AND span_ms = ? AND start_at = ?",
        (queue, span_ms, start),
    ).fetchone()
    if row is not None:
        merged = _tally(row)
        merged.merge(tally)
        tally = merged
    conn.execute(
        "INSERT OR REPLACE INTO metrics_history (queue, span_ms, start_at, enqueued, completed, failed,"
        " took_ms, took_n, buckets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (queue, span_ms, start, tally.enqueued, tally.completed, tally.failed, tally.took_ms,
         tally.took_n, dumps(tally.buckets_text())),
    )


def record(conn: sqlite3.Connection, minute: int, tallies: list[tuple[str, Tally]]) -> None:
    for queue, tally in tallies:
        _add(conn, queue, MINUTE_MS, minute, tally)


def roll_up(conn: sqlite3.Connection, before: int) -> int:
    """Minutes that started before ``before`` become (part of) their hour's row."""
    rows = conn.execute(
        f"DELETE FROM metrics_history WHERE span_ms = ? AND start_at < ? RETURNING queue, start_at, {_COLUMNS}",
        (MINUTE_MS, before),
    ).fetchall()
    hours: dict[tuple[str, int], Tally] = {}
    for row in rows:
        key = (row[0], row[1] - row[1] % HOUR_MS)
        hours.setdefault(key, Tally()).merge(_tally(row[2:]))
    for (queue, hour), tally in sorted(hours.items()):
        _add(conn, queue, HOUR_MS, hour, tally)
    return len(rows)


def prune(conn: sqlite3.Connection, before: int) -> int:
    return conn.execute("DELETE FROM metrics_history WHERE start_at < ?", (before,)).rowcount


def read_query(queue: str, since: int) -> Query:
    """A queue's rows from ``since`` on, by the primary key (minutes and hours never
    cover the same time: a minute's row is gone once its hour has it)."""
    return (f"SELECT start_at, {_COLUMNS} FROM metrics_history WHERE queue = ? AND span_ms IN (?, ?)"
            " AND start_at >= ? ORDER BY start_at", (queue, MINUTE_MS, HOUR_MS, since))


def rows_to_tallies(rows: list[tuple[Any, ...]]) -> list[tuple[int, Tally]]:
    return [(row[0], _tally(row[1:])) for row in rows]
