"""How the PostgreSQL store runs a transition (store/transitions.py) on the ordered
writer's connection, in the writer's transaction: each statement numbered for
asyncpg, and a callback job added as an enqueue adds it (waking the nodes that
listen)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .. import transitions
from ..records import Added
from ..sql.dialect import POSTGRES
from ..sql.plan import AddJobs, Plan
from ..transitions import Completion
from .adds import add_keyed
from .cluster import notify
from .jobs import add_job_groups
from .statements import drive

T = TypeVar("T")


async def _add(conn: Any, step: AddJobs) -> list[Added]:
    """Jobs with keys (a schedule's run: "<schedule>@<time>") decided one by one, under
    their keys' locks, and their queues' nodes woken; others in one statement that
    wakes them itself."""
    if any(new.job_key is not None or new.unique is not None or new.depends_on for new in step.jobs):
        kept = await add_keyed(conn, step.jobs, step.now)
        for queue in sorted({new.queue for new in step.jobs}):
            await notify(conn, queue)
        return [Added(k.job, k.created) for k in kept]
    ids = (await add_job_groups(conn, [(step.jobs, step.now)]))[0]
    return [Added.fresh(job_id, new, step.now) for job_id, new in zip(ids, step.jobs, strict=True)]


async def run(conn: Any, transition: Callable[..., Plan[T]], *args: Any) -> T:
    """``transition(POSTGRES, *args)`` run in the writer."""
    return await drive(conn, transition(POSTGRES, *args), _add)


async def complete_one(conn: Any, job_id: int, token: str, result: str, now: int) -> Any:
    return (await drive(conn, transitions.complete(POSTGRES, [(job_id, token, result, now)]), _add))[0]


async def complete_merged(conn: Any, calls: list[tuple[Any, ...]]) -> list[Any]:
    """Several callers' single completions, neighbours in the writer's batch, as one."""
    items: list[Completion] = [(c[0], c[1], c[2], c[3]) for c in calls]
    return await drive(conn, transitions.complete(POSTGRES, items), _add)
