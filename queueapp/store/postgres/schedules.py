"""A schedule's run on PostgreSQL: its jobs enqueued and the schedule advanced in
one transaction. The advance is guarded by the next run time the tick read (a
double tick changes nothing) and, with several nodes, by the leader's node and term
(cluster.LEADS: a deposed leader that wakes late changes nothing), so a run fires
once per cluster, never once per node."""

from __future__ import annotations

from typing import Any

from ...model import UNFINISHED, NewJob
from ..records import Added
from .adds import add_keyed
from .cluster import leads, notify

_ADVANCE = (
    "UPDATE schedules SET next_run_at = $1, last_run_at = CASE WHEN $2 THEN last_run_at ELSE $3 END"
    " WHERE queue = $4 AND name = $5 AND enabled AND next_run_at = $6"
)


async def fire(
    conn: Any, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int, now: int,
    leader: tuple[str, int] | None = None,
) -> tuple[list[Added], bool] | None:
    """Run schedule ``name`` due at ``expected_next`` (its ``jobs``: one, or one per
    missed run) and move it to ``next_run_at``; as leader (node, term) when given.
    None: not fired (not the leader, a stale or double tick, the schedule gone or
    disabled). Otherwise the jobs added (one whose "<schedule>@<time>" key already
    had a job is that job) and whether the run was skipped because the previous
    run's job is unfinished (overlap off)."""
    current = await conn.fetchrow(
        "SELECT overlap, last_job_id FROM schedules WHERE queue = $1 AND name = $2 AND enabled"
        " AND next_run_at = $3 FOR UPDATE", queue, name, expected_next)
    if current is None:
        return None
    overlap, last_job_id = current
    skipped = False
    if not overlap and last_job_id is not None:
        skipped = await conn.fetchval("SELECT state FROM jobs WHERE id = $1", last_job_id) in UNFINISHED
    if leader is None:
        moved = await conn.execute(_ADVANCE, next_run_at, skipped, now, queue, name, expected_next)
    else:
        moved = await conn.execute(f"{_ADVANCE} AND {leads(7)}", next_run_at, skipped, now, queue, name,
                                   expected_next, *leader, now)
    if moved != "UPDATE 1":
        return None
    if skipped or not jobs:
        return [], skipped
    kept = await add_keyed(conn, jobs, now)
    await conn.execute("UPDATE schedules SET last_job_id = $3 WHERE queue = $1 AND name = $2",
                       queue, name, kept[-1].job.id)
    await notify(conn, queue)
    return [Added(k.job, k.created) for k in kept], False
