"""``queueapp check``: the table's own invariants, with the appliance stopped.

Each rule is a condition no row may meet; a row that meets one is reported with the
rule's name. (While the appliance runs, ``GET /debug/audit`` compares memory with
the table as well.)
"""

from __future__ import annotations

import sqlite3

from ..sql.groups import OVER_LIMIT

RULES = (
    ("active without a lease token or a start time",
     "state = 'active' AND (lease_token IS NULL OR started_at IS NULL)"),
    ("waiting or delayed but holding a lease",
     "state IN ('waiting', 'delayed') AND (lease_token IS NOT NULL OR lease_expires_at IS NOT NULL)"),
    ("unfinished but with a finish time",
     "state IN ('waiting', 'delayed', 'active', 'blocked') AND finished_at IS NOT NULL"),
    ("finished without a finish time",
     "state IN ('completed', 'failed', 'cancelled', 'expired') AND finished_at IS NULL"),
    ("finished but holding a lease",
     "state IN ('completed', 'failed', 'cancelled', 'expired') AND lease_token IS NOT NULL"),
    ("started after its expiry", "expire_at IS NOT NULL AND started_at > expire_at"),
    ("blocked with no dependency left",
     "state = 'blocked' AND NOT EXISTS (SELECT 1 FROM job_dependencies d WHERE d.job_id = jobs.id)"),
    ("more attempts made than allowed", "attempts_made > attempts OR attempts_made < 0"),
    ("progress, data or errors that are not JSON",
     "json_valid(data) = 0 OR json_valid(progress) = 0 OR json_valid(errors) = 0"),
)


# Failed group counts (migration 0015) that differ from the failed jobs they count.
COUNT_DRIFT = (
    "SELECT queue, error_group, name, coalesce(j.n, 0), coalesce(c.n, 0)"
    " FROM (SELECT queue, error_group, name, count(*) AS n FROM jobs WHERE state = 'failed'"
    " AND error_group IS NOT NULL GROUP BY queue, error_group, name) AS j"
    " FULL JOIN failed_group_counts AS c USING (queue, error_group, name)"
    " WHERE j.n IS NOT c.n LIMIT 20"
)


def count_problem(queue: str, group: str, name: str, jobs: int, counted: int) -> str:
    return f"error group {group} of {name} in queue {queue}: {jobs} failed jobs, counted {counted}"


def table_problems(conn: sqlite3.Connection) -> list[str]:
    problems = []
    verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        problems.append(f"the file is damaged: {verdict}")
    for name, condition in RULES:
        ids = [r[0] for r in conn.execute(f"SELECT id FROM jobs WHERE {condition} LIMIT 20")]
        if ids:
            problems.append(f"{name}: jobs {', '.join(map(str, ids))}")
    for queue, key, active, limit in conn.execute(OVER_LIMIT):
        problems.append(f"group {key!r} of queue {queue} has {active} active jobs, above its limit of {limit}")
    problems += [count_problem(*r) for r in conn.execute(COUNT_DRIFT)]
    row = conn.execute(
        "SELECT (SELECT max(id) FROM jobs), (SELECT seq FROM sqlite_sequence WHERE name = 'jobs')"
    ).fetchone()
    if row[0] is not None and (row[1] is None or row[1] < row[0]):
        problems.append(f"the id sequence ({row[1]}) is behind the largest id ({row[0]}): ids would repeat")
    return problems


def job_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
