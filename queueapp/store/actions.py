"""Actions on many jobs at once (retry, cancel, promote, delete), chosen by ids or by
a search, each call one transaction: which jobs an action chooses, for both stores
(the change itself is transitions.act)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..search import MAX_SCAN, JobSearch
from .job_reads import Query, condition_sql, order_by, search_where
from .records import Change
from .sql.dialect import SQLITE, Dialect

# The states each action applies to; jobs in other states are left alone.
ELIGIBLE: dict[str, tuple[str, ...]] = {
    "retry": ("failed", "cancelled", "expired"),
    "cancel": ("waiting", "delayed", "blocked"),
    "promote": ("delayed",),
    "delete": ("waiting", "delayed", "blocked", "completed", "failed", "cancelled", "expired"),
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
        where.append(dialect.one_of("id"))
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
