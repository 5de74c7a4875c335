"""Actions on many jobs at once (retry, cancel, promote, delete), chosen by ids or by
a search, each call one transaction. Write functions run in the writer (first
argument: the connection, inside the writer's transaction)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..model import JobState, dumps
from ..search import MAX_SCAN, JobSearch
from .job_reads import Query, condition_sql, search_where
from .jobs import COLUMNS, row_to_job
from .records import Change

# The states each action applies to; jobs in other states are left alone.
ELIGIBLE: dict[str, tuple[str, ...]] = {
    "retry": ("failed", "cancelled"),
    "cancel": ("waiting", "delayed"),
    "promote": ("delayed",),
    "delete": ("waiting", "delayed", "completed", "failed", "cancelled"),
}

_APPLY = {
    "retry": "UPDATE jobs SET state = 'waiting', attempts_made = 0, run_at = ?2, started_at = NULL,"
             " finished_at = NULL, result = NULL, progress = '0'",
    "cancel": "UPDATE jobs SET state = 'cancelled', finished_at = ?2",
    "promote": "UPDATE jobs SET state = 'waiting', run_at = ?2",
    "delete": "DELETE FROM jobs",
}


@dataclass(frozen=True, slots=True)
class Selection:
    """The jobs an action is for: ``ids`` (of ``search.queue``), or every job the
    search finds (its cursor, order and limit are not used: see ``after``)."""

    search: JobSearch
    ids: tuple[int, ...] | None = None
    after: int | None = None  # go on after this id (the last answer's nextCursor)


@dataclass(slots=True)
class Acted:
    changes: list[Change]
    next_cursor: int | None  # where the next call goes on; None: nothing more to do


def _eligible(action: str, selection: Selection) -> tuple[str, ...]:
    states = ELIGIBLE[action]
    wanted = selection.search.state
    return states if wanted is None else tuple(s for s in states if s == wanted)


def _chosen(action: str, selection: Selection, limit: int | None) -> Query | None:
    """The chosen jobs (id, state, run_at) in id order, or None: none can be."""
    states = _eligible(action, selection)
    if not states:
        return None
    search = selection.search
    marks = ", ".join("?" * len(states))
    where, params = search_where(search, cursor=selection.after, order="asc")
    where.append(f"state IN ({marks})")
    params += list(states)
    if selection.ids is not None:
        where.append("id IN (SELECT value FROM json_each(?))")
        params.append(dumps(list(selection.ids)))
    bound = "" if limit is None else f" LIMIT {int(limit)}"
    if search.scans:
        condition, condition_params = condition_sql(search)
        window = f"SELECT id, state, run_at, data FROM jobs WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            window += f" LIMIT {MAX_SCAN}"
        return (f"SELECT id, state, run_at FROM ({window}) WHERE {condition} ORDER BY id{bound}",
                (*params, *condition_params))
    return f"SELECT id, state, run_at FROM jobs WHERE {' AND '.join(where)} ORDER BY id{bound}", tuple(params)


def count_query(action: str, selection: Selection) -> Query | None:
    """How many jobs the action would change, over every page (a dry run)."""
    chosen = _chosen(action, selection, None)
    return None if chosen is None else (f"SELECT count(*) FROM ({chosen[0]})", chosen[1])


def act(conn: sqlite3.Connection, action: str, selection: Selection, now: int, limit: int) -> Acted:
    """Apply ``action`` to up to ``limit`` chosen jobs, in one statement."""
    chosen = _chosen(action, selection, limit + 1)
    if chosen is None:
        return Acted([], None)
    rows = conn.execute(*chosen).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = rows[-1][0] if more else None
    if not more and selection.search.scans and selection.ids is None:
        next_cursor = _window_end(conn, action, selection)
    if not rows:
        return Acted([], next_cursor)
    prior = {row[0]: (row[1], row[2]) for row in rows}
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
    return Acted(changes, next_cursor)


def _window_end(conn: sqlite3.Connection, action: str, selection: Selection) -> int | None:
    """A data condition reads at most MAX_SCAN rows a call: when it read that many,
    the next call goes on after the last of them."""
    states = _eligible(action, selection)
    where, params = search_where(selection.search, cursor=selection.after, order="asc")
    marks = ", ".join("?" * len(states))
    where.append(f"state IN ({marks})")
    n, last = conn.execute(
        f"SELECT count(*), max(id) FROM (SELECT id FROM jobs WHERE {' AND '.join(where)}"
        f" ORDER BY id LIMIT {MAX_SCAN})", (*params, *states),
    ).fetchone()
    return last if n >= MAX_SCAN else None
