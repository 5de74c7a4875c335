"""Enqueues on SQLite: ids drawn in the writer, and inserts of one caller's jobs or
many callers' at once. Write functions run in the writer (first argument: the
connection, inside the writer's transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ...fingerprint import error_group
from ...jsonfast import dumps_bytes
from ...model import JobState, NewJob, dumps
from .. import transitions
from ..dependencies import placement, resolve
from ..records import Added, AddedRun
from ..sql.dialect import SQLITE
from ..sql.jobs import COLUMNS, row_to_job
from .statements import drive

# -- ids ------------------------------------------------------------------------------


class IdAllocator:
    """Hands out job ids in the writer thread. The high-water mark comes from
    sqlite_sequence, so ids are never reused even after the newest jobs are removed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        self.next_id = (row[0] if row else 0) + 1

    def take(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    def take_many(self, count: int) -> int:
        """``count`` consecutive ids; returns the first."""
        value = self.next_id
        self.next_id += count
        return value


# -- enqueue --------------------------------------------------------------------------

_INSERT = (
    "INSERT INTO jobs (id, queue, name, state, priority, data, options, attempts, job_key,"
    " created_at, run_at, unique_key, expire_at, group_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# A large enqueue without keys is one statement over a JSON array of its jobs: SQLite
# reads the array in C with the GIL released, so the writer thread inserts while the
# event loop goes on parsing the next request. Ids are consecutive from ?2.
_INSERT_ROWS = (
    "INSERT INTO jobs (id, queue, name, state, priority, data, options, attempts, created_at, run_at, group_key)"
    " SELECT ?2 + key, json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),"
    " json_extract(value, '$[5]'), json_extract(value, '$[6]'), ?3, json_extract(value, '$[7]'),"
    " json_extract(value, '$[5].group') FROM json_each(?1)"
)
# The common bulk: every job alike but for its data, which is all the array holds.
_INSERT_ALIKE = (
    "INSERT INTO jobs (id, queue, name, state, priority, data, options, attempts, created_at, run_at, group_key)"
    " SELECT ?2 + key, ?4, ?5, ?6, ?7, value, ?8, ?9, ?3, ?10, ?11 FROM json_each(?1)"
)
# Below this many jobs a caller's enqueue joins the others' executemany instead.
ARRAY_MIN = 64


class EncodedJobs:
    """A caller's jobs without keys as one JSON array for _INSERT_ROWS or
    _INSERT_ALIKE, encoded in the event loop's thread before they reach the writer."""

    __slots__ = ("array", "alike")

    def __init__(self, jobs: list[NewJob], now: int) -> None:
        first = jobs[0]
        alike = all(
            j.queue == first.queue and j.name == first.name and j.priority == first.priority
            and j.attempts == first.attempts and j.run_at == first.run_at and j.options == first.options
            for j in jobs
        )
        # The parameters _INSERT_ALIKE takes after the array, the id and the time.
        self.alike: tuple[Any, ...] | None = None
        if alike:
            state, run_at = first.placed(now)
            self.alike = (first.queue, first.name, state.value, first.priority, dumps(first.options),
                          first.attempts, run_at, first.group)
            self.array = dumps_bytes([j.data for j in jobs])
        else:
            rows = []
            for j in jobs:
                state, run_at = j.placed(now)
                rows.append((j.queue, j.name, state.value, j.priority, j.data, j.options, j.attempts, run_at))
            self.array = dumps_bytes(rows)

    @classmethod
    def of(cls, jobs: list[NewJob], now: int) -> EncodedJobs | None:
        """The array for ``jobs``, or None when they go the row-by-row way (few jobs,
        or any with a key: a key must be looked up before its job is inserted)."""
        if len(jobs) < ARRAY_MIN or any(
                j.job_key is not None or j.unique is not None or j.expire_at is not None or j.depends_on
                for j in jobs):
            return None
        return cls(jobs, now)


EnqueueGroup = tuple[list[NewJob], int, EncodedJobs | None]


def add_job_groups(
    conn: sqlite3.Connection, groups: list[EnqueueGroup], ids: IdAllocator
) -> list[Sequence[Added]]:
    """Several callers' enqueues in one go: one result list per (jobs, now, encoded)
    group. Small enqueues share one executemany; a large one is one statement."""
    plain_rows: list[tuple[Any, ...]] = []
    results: list[Sequence[Added]] = []
    for jobs, now, encoded in groups:
        if encoded is None:
            results.append(_add_jobs(conn, ids, jobs, now, plain_rows))
        else:
            results.append(_add_encoded(conn, ids, jobs, now, encoded))
    if plain_rows:
        conn.executemany(_INSERT, plain_rows)
    return results


def _add_encoded(
    conn: sqlite3.Connection, ids: IdAllocator, jobs: list[NewJob], now: int, encoded: EncodedJobs
) -> AddedRun:
    start = ids.take_many(len(jobs))
    if encoded.alike is None:
        conn.execute(_INSERT_ROWS, (encoded.array, start, now))
    else:
        conn.execute(_INSERT_ALIKE, (encoded.array, start, now, *encoded.alike))
    return AddedRun(start, jobs, now, alike=encoded.alike is not None)


def _add_jobs(
    conn: sqlite3.Connection, ids: IdAllocator, jobs: list[NewJob], now: int,
    plain_rows: list[tuple[Any, ...]],
) -> list[Added]:
    """Jobs without a key go to ``plain_rows`` for one executemany at the end; a job
    with a ``jobId`` or a unique key is looked up and inserted at once, so a later
    job with the same key (in this batch or the next group) finds it."""
    results: list[Added | None] = [None] * len(jobs)
    for index, new in enumerate(jobs):
        keyed = new.job_key is not None or new.unique is not None
        if keyed and (kept := _kept(conn, new, now)) is not None:
            results[index] = kept
            continue
        if new.depends_on:
            if plain_rows:  # the jobs it may name must be in the table first
                conn.executemany(_INSERT, plain_rows)
                plain_rows.clear()
            deps = resolve(new.depends_on, index, results)
            results[index] = add_dependent(conn, ids.take(), new, deps, now)
            continue
        job_id = ids.take()
        state, run_at = new.placed(now)
        row = (
            job_id, new.queue, new.name, state.value, new.priority, dumps(new.data),
            dumps(new.options), new.attempts, new.job_key, now, run_at,
            None if new.unique is None else new.unique.key, new.expire_at, new.group,
        )
        if keyed:
            conn.execute(_INSERT, row)
        else:
            plain_rows.append(row)
        results[index] = Added.fresh(job_id, new, now)
    return results  # type: ignore[return-value]


def _kept(conn: sqlite3.Connection, new: NewJob, now: int) -> Added | None:
    """The job kept instead of ``new`` (transitions.kept); None: insert ``new``."""
    return drive(conn, transitions.kept(SQLITE, new, now))


_INSERT_DEPENDENT = (
    "INSERT INTO jobs (id, queue, name, state, priority, data, options, attempts, job_key, created_at, run_at,"
    " unique_key, expire_at, finished_at, error, error_group, group_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" RETURNING {COLUMNS}"
)


# A job inserted failed (a dependency of it failed) counted in its group; the other
# moves into and out of 'failed' are counted by triggers (migration 0015).
_COUNT_FAILED = (
    "INSERT INTO failed_group_counts (queue, error_group, name, n) VALUES (?, ?, ?, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1"
)


def add_dependent(conn: sqlite3.Connection, job_id: int, new: NewJob, deps: list[int], now: int) -> Added:
    """Insert ``new`` as ``job_id`` as its placement says, with its edges."""
    marks = ", ".join("?" * len(deps))
    states = dict(conn.execute(f"SELECT id, state FROM jobs WHERE id IN ({marks})", deps).fetchall())
    p = placement(new, deps, states, now)
    group = error_group(p.error)
    row = conn.execute(_INSERT_DEPENDENT, (
        job_id, new.queue, new.name, p.state.value, new.priority, dumps(new.data), dumps(p.options), new.attempts,
        new.job_key, now, p.run_at, None if new.unique is None else new.unique.key, new.expire_at, p.finished_at,
        p.error, group, new.group,
    )).fetchone()
    if p.state is JobState.FAILED and group is not None:
        conn.execute(_COUNT_FAILED, (new.queue, group, new.name))
    conn.executemany("INSERT INTO job_dependencies (depends_on, job_id) VALUES (?, ?)",
                     [(d, job_id) for d in p.blocking])
    return Added(row_to_job(row), created=True)
