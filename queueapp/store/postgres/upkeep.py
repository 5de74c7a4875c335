"""What a node does now and then besides the writes asked of it: fold the counts'
deltas (counts.py), and refresh the jobs table's statistics when much of it changed
since PostgreSQL last looked. Without them the planner, believing the table empty,
sorts every waiting job of a queue for each claim instead of reading the first few
through the claim's index (a claim of 100 among 100,000 waiting took 30 ms against
0.3 ms with them); autovacuum analyses only after a share of the table changed, long
after a burst of enqueues."""

from __future__ import annotations

from typing import Any

from . import counts

ANALYZE_AFTER = 1_000  # changed rows since the last ANALYZE, beyond a tenth of the table
ANALYZE_LOCK = int.from_bytes(b"qa-stats", "big") & (2**63 - 1)  # one node analyses at a time


async def keep_up(conn: Any) -> int:
    """Fold the counts, and analyse the jobs table when its statistics are stale (in
    the caller's transaction); how many (queue, state) counts moved."""
    folded = await counts.fold(conn)
    await analyze_if_stale(conn)
    return folded


async def analyze_if_stale(conn: Any) -> bool:
    row = await conn.fetchrow("SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables"
                              " WHERE relid = 'jobs'::regclass")
    if row is None or row[0] < ANALYZE_AFTER + row[1] // 10:
        return False
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ANALYZE_LOCK):
        return False  # another node is at it
    await conn.execute("ANALYZE jobs")
    return True
