"""How SQLite runs a statement of store/sql/ and a plan (sql/plan.py) on a connection of
its writer: each statement as it is written; an enqueue the plan asks for (``AddJobs``)
by ``add``, when the caller has one (run.py: with the store's id allocator)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ..sql.plan import AddJobs, Plan, Statement

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


def drive(conn: sqlite3.Connection, plan: Plan[T], add: Callable[[AddJobs], Any] | None = None) -> T:
    """Run ``plan`` to its end; its answer."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Statement):
                step = plan.send(execute(conn, step))
            else:
                assert add is not None, "this plan adds jobs: give drive an add"
                step = plan.send(add(step))
    except StopIteration as done:
        return done.value
