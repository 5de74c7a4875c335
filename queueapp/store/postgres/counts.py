"""Jobs per queue and state, for metrics and health on every node, without counting
the jobs table per request: the folded ``job_counts`` plus the deltas that each
statement on ``jobs`` appends (migrations/postgres/0001, statement-level triggers),
which the leader folds in every second. A fold and a read each see one snapshot, so
a read is exact at its moment whatever folds or transitions run beside it."""

from __future__ import annotations

from typing import Any

from ...model import JobState

_STATES = {s.value: s for s in JobState}

_READ = (
    "SELECT queue, state, sum(n)::bigint FROM (SELECT queue, state, n FROM job_counts"
    " UNION ALL SELECT queue, state, n FROM job_count_deltas) AS parts GROUP BY queue, state HAVING sum(n) <> 0"
)

# The deltas this snapshot sees, deleted and added to the counts in one statement. A
# second folder blocks on the same rows, then finds them gone: nothing counts twice.
_FOLD = (
    "WITH taken AS (DELETE FROM job_count_deltas RETURNING queue, state, n),"
    " summed AS (SELECT queue, state, sum(n)::bigint AS n FROM taken GROUP BY queue, state)"
    " INSERT INTO job_counts (queue, state, n) SELECT queue, state, n FROM summed"
    " ON CONFLICT (queue, state) DO UPDATE SET n = job_counts.n + excluded.n"
)


async def count_states(conn: Any) -> dict[str, dict[JobState, int]]:
    counts: dict[str, dict[JobState, int]] = {}
    for queue, state, n in await conn.fetch(_READ):
        counts.setdefault(queue, {})[_STATES[state]] = n
    return counts


async def fold(conn: Any) -> int:
    """Fold the deltas into the counts; returns how many (queue, state) rows moved."""
    async with conn.transaction():
        status = await conn.execute(_FOLD)
        await conn.execute("DELETE FROM job_counts WHERE n = 0")
    return int(status.rsplit(" ", 1)[-1])
