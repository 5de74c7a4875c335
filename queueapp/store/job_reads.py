"""Reads of the jobs table, run on the read connection: each builds its query and
parameters (the writes are in jobs.py, beside this module)."""

from __future__ import annotations

from typing import Any

from ..fingerprint import fingerprint
from ..jsonfast import loads
from ..model import JobState
from ..search import FINISHED_STATES, MAX_SCAN, JobSearch
from .sql.dialect import SQLITE, Dialect
from .sql.jobs import COLUMNS

Query = tuple[str, tuple[Any, ...]]

PENDING = ("SELECT id, queue, name, state, priority, run_at, group_key FROM jobs"
           " WHERE state IN ('waiting', 'delayed')")
COUNT_STATES = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
QUEUE_NAMES = "SELECT name FROM queues UNION SELECT DISTINCT queue FROM jobs"


def get_query(job_id: int) -> Query:
    return f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)


def search_where(search: JobSearch, *, cursor: tuple[int, ...] | None, order: str) -> tuple[list[str], list[Any]]:
    """The conditions an index answers: queue, state, name, time, an id or a key,
    and the cursor (after it in ``order``; see JobSearch for the key)."""
    where: list[str] = ["queue = ?"]
    params: list[Any] = [search.queue]
    by_finish = search.by_finish
    if search.state is not None:
        where.append("state = ?")
        params.append(search.state)
        if search.state not in FINISHED_STATES:
            # always so for these states (check.py): (queue, state, finished_at) reads in id order
            where.append("finished_at IS NULL")
    when = "finished_at" if by_finish else "created_at"
    for column, op, value in (("name", "=", search.name), (when, ">=", search.created_from),
                              (when, "<=", search.created_to)):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    if search.error is not None:
        where.append("substr(error, 1, ?) = ?")
        params += [len(search.error), search.error]
    if search.error_group is not None:
        where.append("error_group = ?")
        params.append(search.error_group)
    condition = search.condition
    if condition is not None and not search.scans:
        where.append(_BY_INDEX[condition.kind])
        params.append(condition.value)
    if cursor is not None:
        where.append(f"{_keys(search)} {'>' if order == 'asc' else '<'} ({', '.join('?' * len(cursor))})")
        params += list(cursor)
    return where, params


def key_columns(search: JobSearch) -> str:
    """The columns of a page's key (see JobSearch)."""
    return "finished_at, id" if search.by_finish else "id"


def _keys(search: JobSearch) -> str:
    return f"({key_columns(search)})"


def order_by(search: JobSearch, order: str | None = None) -> str:
    """ORDER BY the search's key, in ``order`` (default: the search's own)."""
    desc = " DESC" if (order or search.order) == "desc" else ""
    return "ORDER BY " + ", ".join(f"{column}{desc}" for column in key_columns(search).split(", "))


def condition_sql(search: JobSearch, dialect: Dialect = SQLITE) -> tuple[str, list[Any]]:
    """A data condition, read from each row's data."""
    condition = search.condition
    assert condition is not None and condition.path is not None
    sql = dialect.equals if condition.kind == "equals" else dialect.contains
    value = dialect.value(condition.value) if condition.kind == "equals" else condition.value
    return sql, [dialect.path(condition.path), value]


def search_query(search: JobSearch, dialect: Dialect = SQLITE) -> Query:
    """A page after the cursor, read off an index. A data condition looks at no
    more than MAX_SCAN rows (see scanned_query)."""
    where, params = search_where(search, cursor=search.cursor, order=search.order)
    order = order_by(search)
    if not search.scans:
        return f"SELECT {COLUMNS} FROM jobs WHERE {' AND '.join(where)} {order} LIMIT ?", (*params, search.limit)
    condition, condition_params = condition_sql(search, dialect)
    window = f"SELECT * FROM jobs WHERE {' AND '.join(where)} {order} LIMIT {MAX_SCAN}"
    return (f"SELECT {COLUMNS} FROM ({window}) AS window_rows WHERE {condition} {order} LIMIT ?",
            (*params, *condition_params, search.limit))


def scanned_query(search: JobSearch, last: tuple[int, ...] | None) -> Query:
    """How many rows a data condition's page read: up to ``last`` (the key of its
    last job) when the page filled up, else its whole window."""
    where, params = search_where(search, cursor=search.cursor, order=search.order)
    if last is not None:
        where.append(f"{_keys(search)} {'<=' if search.order == 'asc' else '>='} ({', '.join('?' * len(last))})")
        params += list(last)
    return (f"SELECT count(*) FROM (SELECT id FROM jobs WHERE {' AND '.join(where)} {order_by(search)}"
            f" LIMIT {MAX_SCAN}) AS read_rows", tuple(params))


def window_end_query(search: JobSearch) -> Query:
    """The key of the last row a full window read: where the next page goes on."""
    where, params = search_where(search, cursor=search.cursor, order=search.order)
    return (f"SELECT {key_columns(search)} FROM jobs WHERE {' AND '.join(where)} {order_by(search)}"
            f" LIMIT 1 OFFSET {MAX_SCAN - 1}", tuple(params))


# A search's condition answered by an index (search.py); data conditions are the
# dialect's (condition_sql).
_BY_INDEX = {"id": "id = ?", "key": "job_key = ?"}


def failure_groups_queries(queue: str, limit: int, dialect: Dialect = SQLITE) -> tuple[Query, Query]:
    """Failed jobs by the group of their error (fingerprint.py): per group how many,
    first and last seen, which names and its newest message (its example), the first
    two from the dialect's counts, the others from seeks into the failed jobs' index;
    and the same for jobs failed before groups were kept, by exact message."""
    of_group = "FROM jobs WHERE queue = ?1 AND state = 'failed' AND error_group = g.error_group"
    grouped = (f"SELECT g.error_group, g.n, (SELECT min(finished_at) {of_group}), (SELECT max(finished_at) {of_group}),"
               f" g.names, (SELECT error {of_group} ORDER BY finished_at DESC LIMIT 1)"
               f" FROM ({dialect.failed_groups} ORDER BY n DESC, error_group LIMIT ?2) AS g"
               " ORDER BY g.n DESC, g.error_group", (queue, limit))
    figures = f"count(*) AS n, min(finished_at), max(finished_at), {dialect.names}"
    legacy = (f"SELECT error, {figures} FROM jobs WHERE queue = ? AND state = 'failed'"
              " AND error_group IS NULL GROUP BY error ORDER BY n DESC, error LIMIT ?", (queue, limit))
    return grouped, legacy


def failure_groups(grouped: list[Any], legacy: list[Any], limit: int) -> list[dict[str, Any]]:
    """The groups as the store answers them, the commonest first."""
    found = [failure_group(group, example, n, first, last, names)
             for group, n, first, last, names, example in grouped]
    found += [failure_group(None, row[0], *row[1:]) for row in legacy]
    found.sort(key=lambda g: (-g["count"], g["error"] or ""))
    return found[:limit]


def failure_group(group: str | None, error: str | None, n: int, first: int, last: int, names: Any) -> dict[str, Any]:
    return {"errorGroup": group, "error": error, "fingerprint": None if error is None else fingerprint(error),
            "count": n, "firstSeen": first, "lastSeen": last,
            "names": sorted(loads(names) if isinstance(names, str) else names)}


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
        "SELECT name, count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'failed'),"
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
