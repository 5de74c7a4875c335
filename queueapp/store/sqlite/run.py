"""How the SQLite store runs a transition (store/transitions.py) on the writer's
connection, in the writer's transaction: each statement as it is written, and a
callback job added with the store's id allocator."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from .. import transitions
from ..sql.dialect import SQLITE
from ..sql.plan import AddJobs, Plan
from ..transitions import Completion
from .adds import IdAllocator, add_job_groups
from .statements import drive

T = TypeVar("T")


def _add(conn: sqlite3.Connection, step: AddJobs, ids: IdAllocator) -> Any:
    return list(add_job_groups(conn, [(step.jobs, step.now, None)], ids)[0])


def run(conn: sqlite3.Connection, ids: IdAllocator, transition: Callable[..., Plan[T]], *args: Any) -> T:
    """``transition(SQLITE, *args)`` run in the writer."""
    return drive(conn, transition(SQLITE, *args), lambda step: _add(conn, step, ids))


def complete_merged(conn: sqlite3.Connection, items: list[Completion], ids: IdAllocator) -> list[Any]:
    """Several callers' completions, merged by the writer, as one transition."""
    return drive(conn, transitions.complete(SQLITE, items), lambda step: _add(conn, step, ids))
