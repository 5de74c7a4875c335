"""Reads of the jobs table, run on the read connection: each builds its query and
parameters (the writes are in jobs.py, beside this module)."""

from __future__ import annotations

from typing import Any

from ..model import JobState
from ..search import JobFilter
from .jobs import COLUMNS

Query = tuple[str, tuple[Any, ...]]

PENDING = "SELECT id, queue, name, state, priority, run_at FROM jobs WHERE state IN ('waiting', 'delayed')"
COUNT_STATES = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
QUEUE_NAMES = "SELECT name FROM queues UNION SELECT DISTINCT queue FROM jobs"


def get_query(job_id: int) -> Query:
    return f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)


def list_query(
    queue: str, state: JobState | None, name: str | None, limit: int, after_id: int | None,
    search: JobFilter | None = None,
) -> Query:
    """A page in id order after the cursor (answered from the primary key)."""
    where, params = ["queue = ?", "id > ?"], [queue, after_id or 0]
    if search is not None:
        where.append(_SEARCH[search.kind])
        params += ([search.path] if search.path else []) + [_sql_value(search.value)]
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if name is not None:
        where.append("name = ?")
        params.append(name)
    return f"SELECT {COLUMNS} FROM jobs WHERE {' AND '.join(where)} ORDER BY id LIMIT ?", (*params, limit)


# A search's condition (search.py); data conditions take the JSON path first.
_SEARCH = {
    "id": "id = ?",
    "key": "job_key = ?",
    "equals": "json_extract(data, ?) IS ?",
    "contains": "instr(json_extract(data, ?), ?) > 0",
}


def _sql_value(value: Any) -> Any:
    """JSON true and false are 1 and 0 to SQLite's json_extract."""
    return int(value) if isinstance(value, bool) else value


def failed_query(queue: str, limit: int) -> Query:
    return (f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND state = 'failed'"
            " ORDER BY finished_at DESC, id DESC LIMIT ?", (queue, limit))


def active_query(queue: str) -> Query:
    return f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND state = 'active' ORDER BY id", (queue,)


def finished_query(queue: str, state: JobState, since: int) -> Query:
    return ("SELECT started_at, finished_at FROM jobs WHERE queue = ? AND state = ? AND finished_at >= ?",
            (queue, state, since))


def report_queries(queue: str, since: int, until: int) -> tuple[Query, Query, Query]:
    """Per job name, the failure reasons, and the counts: see Store.report."""
    by_name = (
        "SELECT name, sum(state = 'completed'), sum(state = 'failed'),"
        " avg(CASE WHEN state = 'completed' THEN finished_at - started_at END),"
        " max(finished_at - started_at)"
        " FROM jobs WHERE queue = ? AND state IN ('completed', 'failed')"
        " AND finished_at >= ? AND finished_at <= ? GROUP BY name ORDER BY name",
        (queue, since, until),
    )
    reasons = (
        "SELECT error, count(*) AS n FROM jobs WHERE queue = ? AND state = 'failed'"
        " AND finished_at >= ? AND finished_at <= ? GROUP BY error ORDER BY n DESC, error LIMIT 10",
        (queue, since, until),
    )
    states = ("SELECT state, count(*) FROM jobs WHERE queue = ? GROUP BY state", (queue,))
    return by_name, reasons, states
