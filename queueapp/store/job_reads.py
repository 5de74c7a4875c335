"""Reads of the jobs table, run on the read connection: each builds its query and
parameters (the writes are in jobs.py, beside this module)."""

from __future__ import annotations

from typing import Any

from ..model import JobState
from ..search import MAX_SCAN, JobSearch
from .jobs import COLUMNS

Query = tuple[str, tuple[Any, ...]]

PENDING = "SELECT id, queue, name, state, priority, run_at FROM jobs WHERE state IN ('waiting', 'delayed')"
COUNT_STATES = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
QUEUE_NAMES = "SELECT name FROM queues UNION SELECT DISTINCT queue FROM jobs"


def get_query(job_id: int) -> Query:
    return f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)


def search_where(search: JobSearch, *, cursor: int | None, order: str) -> tuple[list[str], list[Any]]:
    """The conditions an index answers: queue, state, name, creation time, an id or
    a key, and the cursor (after it in ``order``)."""
    where: list[str] = ["queue = ?"]
    params: list[Any] = [search.queue]
    for column, op, value in (("state", "=", search.state), ("name", "=", search.name),
                              ("created_at", ">=", search.created_from),
                              ("created_at", "<=", search.created_to),
                              ("id", ">" if order == "asc" else "<", cursor)):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    if search.error is not None:
        where.append("substr(error, 1, ?) = ?")
        params += [len(search.error), search.error]
    condition = search.condition
    if condition is not None and not search.scans:
        where.append(_SEARCH[condition.kind])
        params.append(condition.value)
    return where, params


def condition_sql(search: JobSearch) -> tuple[str, list[Any]]:
    """A data condition, read from each row's data (json_extract)."""
    condition = search.condition
    assert condition is not None and condition.path is not None
    return _SEARCH[condition.kind], [condition.path, _sql_value(condition.value)]


def search_query(search: JobSearch) -> Query:
    """A page in id order after the cursor, read off an index. A data condition
    looks at no more than MAX_SCAN rows (see scanned_query)."""
    where, params = search_where(search, cursor=search.cursor, order=search.order)
    order = "ORDER BY id" + (" DESC" if search.order == "desc" else "")
    if not search.scans:
        return f"SELECT {COLUMNS} FROM jobs WHERE {' AND '.join(where)} {order} LIMIT ?", (*params, search.limit)
    condition, condition_params = condition_sql(search)
    window = f"SELECT * FROM jobs WHERE {' AND '.join(where)} {order} LIMIT {MAX_SCAN}"
    return (f"SELECT {COLUMNS} FROM ({window}) WHERE {condition} {order} LIMIT ?",
            (*params, *condition_params, search.limit))


def scanned_query(search: JobSearch, last_id: int | None) -> Query:
    """How many rows a data condition's page read (up to ``last_id`` when the page
    filled up, else its whole window), and the last of them."""
    where, params = search_where(search, cursor=search.cursor, order=search.order)
    desc = search.order == "desc"
    if last_id is not None:
        where.append("id >= ?" if desc else "id <= ?")
        params.append(last_id)
    order = "ORDER BY id" + (" DESC" if desc else "")
    edge = "min" if desc else "max"
    return (f"SELECT count(*), {edge}(id) FROM (SELECT id FROM jobs WHERE {' AND '.join(where)}"
            f" {order} LIMIT {MAX_SCAN})", tuple(params))


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


def failure_groups_query(queue: str, limit: int) -> Query:
    """Failed jobs by error message: how many, first and last seen, which names."""
    return ("SELECT error, count(*) AS n, min(finished_at), max(finished_at), json_group_array(DISTINCT name)"
            " FROM jobs WHERE queue = ? AND state = 'failed' GROUP BY error ORDER BY n DESC, error LIMIT ?",
            (queue, limit))


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
