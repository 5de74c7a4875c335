"""Statements on the schedules table, for either engine."""

from __future__ import annotations

import json
from typing import Any

from ...model import Schedule, dumps
from .dialect import Dialect
from .plan import Statement, count, row, rows, run, value

COLUMNS = (
    "queue, name, job_name, data, options, cron, timezone, every_ms, missed, overlap, enabled,"
    " anchor_at, next_run_at, last_run_at, last_job_id, created_at, updated_at"
)


def row_to_schedule(r: Any) -> Schedule:
    return Schedule(
        queue=r[0], name=r[1], job_name=r[2], data=json.loads(r[3]), options=json.loads(r[4]),
        cron=r[5], timezone=r[6], every_ms=r[7], missed=r[8], overlap=bool(r[9]),
        enabled=bool(r[10]), anchor_at=r[11], next_run_at=r[12], last_run_at=r[13],
        last_job_id=r[14], created_at=r[15], updated_at=r[16],
    )


def upsert(d: Dialect, s: Schedule, now: int) -> Statement:
    """Insert, or replace the schedule of the same queue and name (keeping its
    creation time and the record of its last run)."""
    return row(
        f"INSERT INTO schedules ({COLUMNS}) VALUES (?1, ?2, ?3, ?4{d.json}, ?5{d.json}, ?6, ?7, ?8, ?9, ?10, ?11,"
        " ?12, ?13, NULL, NULL, ?14, ?14) ON CONFLICT (queue, name) DO UPDATE SET job_name = excluded.job_name,"
        " data = excluded.data, options = excluded.options, cron = excluded.cron,"
        " timezone = excluded.timezone, every_ms = excluded.every_ms, missed = excluded.missed,"
        " overlap = excluded.overlap, enabled = excluded.enabled, anchor_at = excluded.anchor_at,"
        f" next_run_at = excluded.next_run_at, updated_at = excluded.updated_at RETURNING {COLUMNS}",
        s.queue, s.name, s.job_name, dumps(s.data), dumps(s.options), s.cron, s.timezone, s.every_ms, s.missed,
        d.boolean(s.overlap), d.boolean(s.enabled), s.anchor_at, s.next_run_at, now)


def delete(d: Dialect, queue: str, name: str) -> Statement:
    return count("DELETE FROM schedules WHERE queue = ?1 AND name = ?2", queue, name)


def set_enabled(d: Dialect, queue: str, name: str, enabled: bool, next_run_at: int | None, now: int) -> Statement:
    return row(f"UPDATE schedules SET enabled = ?1, next_run_at = ?2, updated_at = ?3 WHERE queue = ?4 AND name = ?5"
               f" RETURNING {COLUMNS}", d.boolean(enabled), next_run_at, now, queue, name)


def set_next_run(d: Dialect, queue: str, name: str, next_run_at: int) -> Statement:
    """The first run's time of a schedule that has none yet."""
    return run("UPDATE schedules SET next_run_at = ?1 WHERE queue = ?2 AND name = ?3 AND next_run_at IS NULL",
               next_run_at, queue, name)


def due(d: Dialect, queue: str, name: str, expected_next: int) -> Statement:
    """(overlap, last job) of the schedule while it is enabled and due at ``expected_next``, locked."""
    return row("SELECT overlap, last_job_id FROM schedules WHERE queue = ?1 AND name = ?2 AND enabled = ?3"
               f" AND next_run_at = ?4{d.lock_rows}", queue, name, d.boolean(True), expected_next)


def job_state(d: Dialect, job_id: int) -> Statement:
    return value("SELECT state FROM jobs WHERE id = ?1", job_id)


def advance(d: Dialect, queue: str, name: str, expected_next: int, next_run_at: int, ran_at: int | None,
            guard: str = "", *guarded: Any) -> Statement:
    """The schedule moved on to ``next_run_at`` from ``expected_next`` (1 row when it
    was), its last run at ``ran_at`` (None: skipped, the last run's time stays); only
    while ``guard`` (placeholders from ?6 on, ``guarded``) holds too."""
    return count("UPDATE schedules SET next_run_at = ?1, last_run_at = coalesce(?2, last_run_at)"
                 f" WHERE queue = ?3 AND name = ?4 AND next_run_at = ?5{guard}",
                 next_run_at, ran_at, queue, name, expected_next, *guarded)


def ran_now(d: Dialect, queue: str, name: str, job_id: int, at: int) -> Statement:
    """A run asked for besides the rule: its time and its job (the rule goes on as it was)."""
    return count("UPDATE schedules SET last_run_at = ?4, last_job_id = ?3 WHERE queue = ?1 AND name = ?2",
                 queue, name, job_id, at)


def ran(d: Dialect, queue: str, name: str, job_id: int) -> Statement:
    return run("UPDATE schedules SET last_job_id = ?3 WHERE queue = ?1 AND name = ?2", queue, name, job_id)


def listed(d: Dialect, queue: str | None) -> Statement:
    if queue is None:
        return rows(f"SELECT {COLUMNS} FROM schedules ORDER BY queue, name")
    return rows(f"SELECT {COLUMNS} FROM schedules WHERE queue = ?1 ORDER BY queue, name", queue)


def one(d: Dialect, queue: str, name: str) -> Statement:
    return row(f"SELECT {COLUMNS} FROM schedules WHERE queue = ?1 AND name = ?2", queue, name)
