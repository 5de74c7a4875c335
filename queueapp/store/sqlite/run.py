"""How the SQLite store runs a transition (store/transitions.py) on the writer's
connection, in the writer's transaction: each statement as it is written, and a
callback job added with the store's id allocator."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from .. import transitions
from ..sql.dialect import SQLITE
from ..sql.plan import AddJobs, Plan, Statement
from ..transitions import Completion
from .adds import IdAllocator, add_job_groups

T = TypeVar("T")


def execute(conn: sqlite3.Connection, statement: Statement) -> Any:
    cursor = conn.execute(statement.sql, statement.params)
    answer = statement.answer
    if answer == "rows":
        return cursor.fetchall()
    if answer == "row":
        return cursor.fetchone()
    if answer == "value":
        found = cursor.fetchone()
        return None if found is None else found[0]
    if answer == "count":
        return cursor.rowcount
    return None


def drive(conn: sqlite3.Connection, plan: Plan[T], ids: IdAllocator) -> T:
    """Run ``plan`` to its end; its answer."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Statement):
                step = plan.send(execute(conn, step))
            else:
                step = plan.send(_add(conn, step, ids))
    except StopIteration as done:
        return done.value


def _add(conn: sqlite3.Connection, step: AddJobs, ids: IdAllocator) -> Any:
    return list(add_job_groups(conn, [(step.jobs, step.now, None)], ids)[0])


def run(conn: sqlite3.Connection, ids: IdAllocator, transition: Callable[..., Plan[T]], *args: Any) -> T:
    """``transition(SQLITE, *args)`` run in the writer."""
    return drive(conn, transition(SQLITE, *args), ids)


def complete_merged(conn: sqlite3.Connection, items: list[Completion], ids: IdAllocator) -> list[Any]:
    """Several callers' completions, merged by the writer, as one transition."""
    return drive(conn, transitions.complete(SQLITE, items), ids)
