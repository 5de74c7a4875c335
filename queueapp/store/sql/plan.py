"""A transition written once for both stores: a generator that yields what it needs
done (a ``Statement``, or ``AddJobs`` for what each engine does its own way) and is
sent back the answer. It holds no connection and never awaits, so the same code runs
in SQLite's writer thread and on PostgreSQL's connection; each store has a small
runner for it (store/sqlite/run.py, store/postgres/run.py).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ...model import NewJob

T = TypeVar("T")

# What a statement answers: every row, the first row (or None), the first row's
# first column (or None), the number of rows it changed, or nothing.
Answer = Literal["rows", "row", "value", "count", "none"]


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str  # with ``?`` / ``?N`` placeholders (dialect.numbered for PostgreSQL)
    params: tuple[Any, ...]
    answer: Answer = "rows"


@dataclass(frozen=True, slots=True)
class AddJobs:
    """Insert ``jobs`` as of ``now``, as an enqueue of the store would (ids are drawn
    differently by each engine, keys are decided the engine's way, and PostgreSQL wakes
    the other nodes): the runner sends back their ``Added``, in order."""

    jobs: list[NewJob]
    now: int


Step = Statement | AddJobs
Plan = Generator[Step, Any, T]


def rows(sql: str, *params: Any) -> Statement:
    return Statement(sql, params, "rows")


def row(sql: str, *params: Any) -> Statement:
    return Statement(sql, params, "row")


def value(sql: str, *params: Any) -> Statement:
    return Statement(sql, params, "value")


def count(sql: str, *params: Any) -> Statement:
    return Statement(sql, params, "count")


def run(sql: str, *params: Any) -> Statement:
    return Statement(sql, params, "none")
