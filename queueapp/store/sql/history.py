"""Statements on the metrics history (history.py): minutes written from memory, rolled
up into hours as they age, pruned after a week, for either engine."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...history import HOUR_MS, MINUTE_MS, Tally
from ...jsonfast import loads
from ...model import dumps
from .dialect import Dialect
from .plan import Statement, count, row, rows, run

COLUMNS = "enqueued, completed, failed, took_ms, took_n, buckets"


def tally(found: Sequence[Any]) -> Tally:
    """A row of COLUMNS (from either engine) as a Tally."""
    enqueued, completed, failed, took_ms, took_n, buckets = found
    return Tally.of_row(enqueued, completed, failed, took_ms, took_n, loads(buckets))


def get(d: Dialect, queue: str, span_ms: int, start: int) -> Statement:
    return row(f"SELECT {COLUMNS} FROM metrics_history WHERE queue = ?1 AND span_ms = ?2 AND start_at = ?3"
               f"{d.lock_rows}", queue, span_ms, start)


def put(d: Dialect, queue: str, span_ms: int, start: int, t: Tally) -> Statement:
    return run(
        "INSERT INTO metrics_history (queue, span_ms, start_at, enqueued, completed, failed, took_ms, took_n,"
        f" buckets) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9{d.json}) ON CONFLICT (queue, span_ms, start_at)"
        " DO UPDATE SET enqueued = excluded.enqueued, completed = excluded.completed, failed = excluded.failed,"
        " took_ms = excluded.took_ms, took_n = excluded.took_n, buckets = excluded.buckets",
        queue, span_ms, start, t.enqueued, t.completed, t.failed, t.took_ms, t.took_n, dumps(t.buckets_text()))


def take_minutes(d: Dialect, before: int) -> Statement:
    """The minute rows that started before ``before``, removed: (queue, start, COLUMNS...)."""
    return rows("DELETE FROM metrics_history WHERE span_ms = ?1 AND start_at < ?2"
                f" RETURNING queue, start_at, {COLUMNS}", MINUTE_MS, before)


def prune(d: Dialect, before: int) -> Statement:
    return count("DELETE FROM metrics_history WHERE start_at < ?1", before)


def by_hour(found: Iterable[Sequence[Any]]) -> list[tuple[tuple[str, int], Tally]]:
    """Minute rows (queue, start, COLUMNS...) merged into their hours, in order."""
    hours: dict[tuple[str, int], Tally] = {}
    for r in found:
        hours.setdefault((r[0], r[1] - r[1] % HOUR_MS), Tally()).merge(tally(r[2:]))
    return sorted(hours.items())


def read(d: Dialect, queue: str, since: int) -> Statement:
    """A queue's rows from ``since`` on, by the primary key (minutes and hours never
    cover the same time: a minute's row is gone once its hour has it)."""
    return rows(f"SELECT start_at, {COLUMNS} FROM metrics_history WHERE queue = ?1 AND span_ms IN (?2, ?3)"
                " AND start_at >= ?4 ORDER BY start_at", queue, MINUTE_MS, HOUR_MS, since)


def rows_to_tallies(found: Iterable[Sequence[Any]]) -> list[tuple[int, Tally]]:
    return [(r[0], tally(r[1:])) for r in found]
