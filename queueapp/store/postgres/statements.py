"""How PostgreSQL runs a statement of store/sql/ and a plan (sql/plan.py) on an asyncpg
connection: each statement numbered for asyncpg; an enqueue the plan asks for
(``AddJobs``) by ``add``, when the caller has one (run.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..sql.dialect import numbered
from ..sql.plan import AddJobs, Plan, Statement

T = TypeVar("T")


async def execute(conn: Any, statement: Statement) -> Any:
    sql, answer = numbered(statement.sql), statement.answer
    if answer == "rows":
        return await conn.fetch(sql, *statement.params)
    if answer == "row":
        return await conn.fetchrow(sql, *statement.params)
    if answer == "value":
        return await conn.fetchval(sql, *statement.params)
    status = await conn.execute(sql, *statement.params)
    return int(status.rsplit(" ", 1)[-1]) if answer == "count" else None


async def drive(conn: Any, plan: Plan[T], add: Callable[[Any, AddJobs], Awaitable[Any]] | None = None) -> T:
    """Run ``plan`` to its end; its answer."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Statement):
                step = plan.send(await execute(conn, step))
            else:
                assert add is not None, "this plan adds jobs: give drive an add"
                step = plan.send(await add(conn, step))
    except StopIteration as done:
        return done.value
