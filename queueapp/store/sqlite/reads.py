"""Reads the SQLite store makes in its writer, in commit order with its writes: the
active jobs at start-up and the self-audit's snapshot. (Reads on the reader
connection are built by store/job_reads.py.)"""

from __future__ import annotations

import sqlite3

from ...model import Job, JobState
from ..records import TableSnapshot
from ..sql.jobs import COLUMNS, row_to_job, state_of
from .check import COUNT_DRIFT, count_problem


def unowned_active(conn: sqlite3.Connection, now: int) -> tuple[list[Job], list[Job]]:
    """Active jobs: those nobody owns after a restart (no lease, or a lease run out),
    and those whose lease is still valid."""
    rows = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE state = 'active'").fetchall()
    jobs = [row_to_job(r) for r in rows]
    valid = [j for j in jobs if j.lease_expires_at is not None and j.lease_expires_at > now]
    return [j for j in jobs if j not in valid], valid


def snapshot(conn: sqlite3.Connection) -> TableSnapshot:
    unfinished = conn.execute(
        "SELECT id, queue, name, state, priority, run_at, lease_token, group_key FROM jobs"
        " WHERE state IN ('waiting', 'delayed', 'active')"
    ).fetchall()
    counts: dict[str, dict[JobState, int]] = {}
    for queue, state, n in conn.execute("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"):
        counts.setdefault(queue, {})[state_of(state)] = n
    return TableSnapshot(unfinished, counts, [count_problem(*r) for r in conn.execute(COUNT_DRIFT)])
