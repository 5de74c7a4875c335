"""Actions on many jobs at once (retry, cancel, promote, delete), chosen by ids or by
a search, each call one transaction. Write functions run in the writer (first
argument: the connection, inside the writer's transaction)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ..model import JobState, dumps
from ..search import MAX_SCAN, JobSearch
from .dependencies import Teller, settled_changes
from .dialect import SQLITE, Dialect
from .job_reads import Query, condition_sql, order_by, search_where
from .jobs import COLUMNS, row_to_job
from .records import Change
from .unique import kept_from_retry, unique_keys_query

# The states each action applies to; jobs in other states are left alone.
ELIGIBLE: dict[str, tuple[str, ...]] = {
    "retry": ("failed", "cancelled", "expired"),
    "cancel": ("waiting", "delayed", "blocked"),
    "promote": ("delayed",),
    "delete": ("waiting", "delayed", "blocked", "completed", "failed", "cancelled", "expired"),
}

_APPLY = {
    "retry": "UPDATE jobs SET state = 'waiting', attempts_made = 0, run_at = ?2, started_at = NULL,"
             " finished_at = NULL, result = NULL, progress = '0', expire_at = NULL",
    "cancel": "UPDATE jobs SET state = 'cancelled', finished_at = ?2",
    "promote": "UPDATE jobs SET state = 'waiting', run_at = ?2",
    "delete": "DELETE FROM jobs",
}


@dataclass(frozen=True, slots=True)
class Selection:
    """The jobs an action is for: ``ids`` (of ``search.queue``), or every job the
    search finds, in the search's key order (see JobSearch) after ``after``, the last
    answer's nextCursor. The search's own cursor, order and limit are not used."""

    search: JobSearch
    ids: tuple[int, ...] | None = None
    after: tuple[int, ...] | None = None


@dataclass(slots=True)
class Acted:
    changes: list[Change]
    next_cursor: tuple[int, ...] | None  # where the next call goes on; None: nothing more to do


def _eligible(action: str, selection: Selection) -> tuple[str, ...]:
    states = ELIGIBLE[action]
    wanted = selection.search.state
    return states if wanted is None else tuple(s for s in states if s == wanted)


def _where(action: str, selection: Selection, dialect: Dialect = SQLITE) -> tuple[str, list[Any]] | None:
    """The chosen jobs' conditions, or None: none can be chosen."""
    states = _eligible(action, selection)
    if not states:
        return None
    where, params = search_where(selection.search, cursor=selection.after, order="asc")
    where.append(f"state IN ({', '.join('?' * len(states))})")
    params += list(states)
    if selection.ids is not None:
        where.append(dialect.in_ids)
        params.append(dialect.ids(list(selection.ids)))
    return " AND ".join(where), params


def chosen(action: str, selection: Selection, limit: int | None, dialect: Dialect = SQLITE) -> Query | None:
    """The chosen jobs (id, state, run_at, finished_at) in key order."""
    found = _where(action, selection, dialect)
    if found is None:
        return None
    where, params = found
    search = selection.search
    order = order_by(search, "asc")
    bound = "" if limit is None else f" LIMIT {int(limit)}"
    columns = "id, state, run_at, finished_at"
    if search.scans:
        condition, condition_params = condition_sql(search, dialect)
        window = f"SELECT {columns}, data FROM jobs WHERE {where} {order}"
        if limit is not None:
            window += f" LIMIT {MAX_SCAN}"
        return (f"SELECT {columns} FROM ({window}) AS window_rows WHERE {condition} {order}{bound}",
                (*params, *condition_params))
    return f"SELECT {columns} FROM jobs WHERE {where} {order}{bound}", tuple(params)


def count_query(action: str, selection: Selection, dialect: Dialect = SQLITE) -> Query | None:
    """How many jobs the action would change, over every page (a dry run)."""
    query = chosen(action, selection, None, dialect)
    return None if query is None else (f"SELECT count(*) FROM ({query[0]}) AS chosen_rows", query[1])


def window_end_query(action: str, selection: Selection, dialect: Dialect = SQLITE) -> Query:
    """A data condition reads at most MAX_SCAN rows a call: the key of the last row
    a full window read, where the next call goes on."""
    found = _where(action, selection, dialect)
    assert found is not None
    where, params = found
    order = order_by(selection.search, "asc")
    return (f"SELECT id, state, run_at, finished_at FROM jobs WHERE {where} {order} LIMIT 1 OFFSET {MAX_SCAN - 1}",
            tuple(params))


def key_of(search: JobSearch, row: tuple[Any, ...]) -> tuple[int, ...]:
    return (row[3], row[0]) if search.by_finish else (row[0],)


def act(conn: sqlite3.Connection, action: str, selection: Selection, now: int, limit: int,
        teller: Teller | None = None) -> Acted:
    """Apply ``action`` to up to ``limit`` chosen jobs, in one statement."""
    query = chosen(action, selection, limit + 1)
    if query is None:
        return Acted([], None)
    rows = conn.execute(*query).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = key_of(selection.search, rows[-1]) if more else None
    if not more and selection.search.scans and selection.ids is None:
        end = conn.execute(*window_end_query(action, selection)).fetchone()
        next_cursor = None if end is None else key_of(selection.search, end)
    if not rows:
        return Acted([], next_cursor)
    prior = {row[0]: (row[1], row[2]) for row in rows}
    if action == "retry":
        for job_id in kept_from_retry(conn.execute(*unique_keys_query(list(prior))).fetchall()):
            del prior[job_id]
    states = ", ".join(f"'{s}'" for s in ELIGIBLE[action])
    done = conn.execute(
        f"{_APPLY[action]} WHERE id IN (SELECT value FROM json_each(?1)) AND state IN ({states})"
        f" RETURNING {COLUMNS}",
        (dumps(list(prior)),) if action == "delete" else (dumps(list(prior)), now),
    ).fetchall()
    changes = []
    for row in sorted(done):
        job = row_to_job(row)
        state, run_at = prior[job.id]
        changes.append(Change(job, JobState(state), deleted=action == "delete", prior_run_at=run_at))
    if action in ("cancel", "delete"):
        settled_changes(conn, changes, now, teller)
    return Acted(changes, next_cursor)
