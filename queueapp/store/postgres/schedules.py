"""A schedule's run on PostgreSQL: enqueued and the schedule advanced in one
transaction, by the leader only. The advance is guarded both by the next run time
the tick read (a double tick changes nothing) and by the leader's node and term
(cluster.LEADS: a deposed leader that wakes late changes nothing), so a run fires
once per cluster, never once per node."""

from __future__ import annotations

from typing import Any

from ...jsonfast import dumps
from ...model import UNFINISHED, NewJob
from .cluster import LEADS, notify

_ADVANCE = (
    "UPDATE schedules SET next_run_at = $6, last_run_at = CASE WHEN $7 THEN last_run_at ELSE $3 END"
    f" WHERE queue = $4 AND name = $5 AND enabled AND next_run_at = $8 AND {LEADS}"
    " RETURNING overlap, last_job_id"
)
_RUN = (
    "INSERT INTO jobs (queue, name, state, priority, data, options, attempts, created_at, run_at, job_key,"
    " group_key) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11)"
    " ON CONFLICT (queue, job_key) WHERE job_key IS NOT NULL DO NOTHING RETURNING id"
)


async def fire(
    conn: Any, node: str, term: int, queue: str, name: str, expected_next: int, job: NewJob,
    next_run_at: int, now: int,
) -> tuple[int | None, bool] | None:
    """Run schedule ``name`` due at ``expected_next`` and move it to ``next_run_at``,
    as leader ``node`` in ``term``. None: not fired (not the leader, a stale or
    double tick, the schedule gone or disabled). Otherwise the job's id (None when
    its "<schedule>@<time>" key already had one) and whether the run was skipped
    because the previous run's job is unfinished (overlap off)."""
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT overlap, last_job_id FROM schedules WHERE queue = $1 AND name = $2 FOR UPDATE", queue, name)
        if current is None:
            return None
        overlap, last_job_id = current
        skipped = False
        if not overlap and last_job_id is not None:
            state = await conn.fetchval("SELECT state FROM jobs WHERE id = $1", last_job_id)
            skipped = state in UNFINISHED
        moved = await conn.fetchrow(_ADVANCE, node, term, now, queue, name, next_run_at, skipped, expected_next)
        if moved is None:
            return None
        if skipped:
            return None, True
        state, run_at = job.placed(now)
        job_id = await conn.fetchval(_RUN, job.queue, job.name, state.value, job.priority, dumps(job.data),
                                     dumps(job.options), job.attempts, now, run_at, job.job_key, job.group)
        if job_id is not None:
            await conn.execute("UPDATE schedules SET last_job_id = $3 WHERE queue = $1 AND name = $2",
                               queue, name, job_id)
            await notify(conn, job.queue)
        return job_id, False
