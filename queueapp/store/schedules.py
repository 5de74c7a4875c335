"""SQL for the schedules table (write functions run in the writer)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..model import UNFINISHED, NewJob, Schedule, dumps
from .records import Added
from .sqlite.adds import IdAllocator, add_job_groups

COLUMNS = (
    "queue, name, job_name, data, options, cron, timezone, every_ms, missed, overlap, enabled,"
    " anchor_at, next_run_at, last_run_at, last_job_id, created_at, updated_at"
)


def row_to_schedule(r: tuple[Any, ...]) -> Schedule:
    return Schedule(
        queue=r[0], name=r[1], job_name=r[2], data=json.loads(r[3]), options=json.loads(r[4]),
        cron=r[5], timezone=r[6], every_ms=r[7], missed=r[8], overlap=bool(r[9]),
        enabled=bool(r[10]), anchor_at=r[11], next_run_at=r[12], last_run_at=r[13],
        last_job_id=r[14], created_at=r[15], updated_at=r[16],
    )


def upsert(conn: sqlite3.Connection, s: Schedule, now: int) -> Schedule:
    """Insert, or replace the schedule of the same queue and name (keeping its
    creation time and the record of its last run)."""
    row = conn.execute(
        f"INSERT INTO schedules ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)"
        " ON CONFLICT (queue, name) DO UPDATE SET job_name = excluded.job_name,"
        " data = excluded.data, options = excluded.options, cron = excluded.cron,"
        " timezone = excluded.timezone, every_ms = excluded.every_ms, missed = excluded.missed,"
        " overlap = excluded.overlap, enabled = excluded.enabled, anchor_at = excluded.anchor_at,"
        " next_run_at = excluded.next_run_at, updated_at = excluded.updated_at"
        f" RETURNING {COLUMNS}",
        (s.queue, s.name, s.job_name, dumps(s.data), dumps(s.options), s.cron, s.timezone,
         s.every_ms, s.missed, int(s.overlap), int(s.enabled), s.anchor_at, s.next_run_at, now, now),
    ).fetchone()
    return row_to_schedule(row)


def delete(conn: sqlite3.Connection, queue: str, name: str) -> bool:
    return conn.execute(
        "DELETE FROM schedules WHERE queue = ? AND name = ?", (queue, name)
    ).rowcount == 1


def set_enabled(
    conn: sqlite3.Connection, queue: str, name: str, enabled: bool, next_run_at: int | None, now: int
) -> Schedule | None:
    row = conn.execute(
        "UPDATE schedules SET enabled = ?, next_run_at = ?, updated_at = ?"
        f" WHERE queue = ? AND name = ? RETURNING {COLUMNS}",
        (int(enabled), next_run_at, now, queue, name),
    ).fetchone()
    return None if row is None else row_to_schedule(row)


def set_next_run(conn: sqlite3.Connection, queue: str, name: str, next_run_at: int) -> None:
    conn.execute(
        "UPDATE schedules SET next_run_at = ? WHERE queue = ? AND name = ? AND next_run_at IS NULL",
        (next_run_at, queue, name),
    )


def fire(
    conn: sqlite3.Connection, ids: IdAllocator, queue: str, name: str, expected_next: int,
    jobs: list[NewJob], next_run_at: int, now: int,
) -> tuple[list[Added], bool] | None:
    """Enqueue a schedule's run(s) and advance it, in the writer's transaction.

    Returns None when the schedule is gone, disabled or was already advanced past
    ``expected_next`` (a stale or double tick: nothing changes). Otherwise the jobs
    added (a job whose "<schedule>@<time>" key exists is not added twice) and whether
    the run was skipped because the previous run's job is unfinished (overlap off).
    """
    current = conn.execute(
        "SELECT overlap, last_job_id FROM schedules WHERE queue = ? AND name = ? AND enabled = 1"
        " AND next_run_at = ?",
        (queue, name, expected_next),
    ).fetchone()
    if current is None:
        return None
    overlap, last_job_id = current
    skipped = False
    if not overlap and last_job_id is not None:
        state = conn.execute("SELECT state FROM jobs WHERE id = ?", (last_job_id,)).fetchone()
        skipped = state is not None and state[0] in UNFINISHED
    added: list[Added] = []
    if not skipped and jobs:
        added = list(add_job_groups(conn, [(jobs, now, None)], ids)[0])
        last_job_id = added[-1].job.id
    conn.execute(
        # a skipped run keeps the time of the last run that happened
        "UPDATE schedules SET next_run_at = ?, last_run_at = COALESCE(?, last_run_at),"
        " last_job_id = ? WHERE queue = ? AND name = ?",
        (next_run_at, None if skipped else now, last_job_id, queue, name),
    )
    return added, skipped
