"""Keys of an enqueue (options.jobId, options.unique) and retries: the job a key
keeps, and a retry must never make a second unfinished job of one key. The same
queries and rules serve both stores, for one job and for an action on many."""

from __future__ import annotations

from typing import Any

from ..model import Job, JobState, NewJob
from .sql.dialect import SQLITE, Dialect
from .sql.jobs import COLUMNS

Query = tuple[str, tuple[Any, ...]]


def unique_keys_query(ids: list[int], dialect: Dialect = SQLITE) -> Query:
    """Of ``ids``, those with a unique key: id, key, and whether an unfinished job
    holds the key now."""
    return ("SELECT j.id, j.unique_key, EXISTS (SELECT 1 FROM jobs o WHERE o.queue = j.queue"
            " AND o.unique_key = j.unique_key AND o.state IN ('waiting', 'delayed', 'active', 'blocked'))"
            f" FROM jobs j WHERE {dialect.one_of('j.id')} AND j.unique_key IS NOT NULL ORDER BY j.id",
            (dialect.ids(ids),))


def kept_from_retry(rows: list[tuple[Any, ...]]) -> set[int]:
    """The ids (rows of unique_keys_query) a retry must leave alone, so that a unique
    key never has two unfinished jobs: those whose key an unfinished job holds, and
    of several with one free key all but the first."""
    skipped, taken = set(), set()
    for job_id, key, held in rows:
        if held or key in taken:
            skipped.add(job_id)
        taken.add(key)
    return skipped


def held_key(job_id: int, key: str) -> str:
    return (f"job {job_id}'s unique key {key!r} is held by an unfinished job: retrying it would make two;"
            " retry it once that one has finished")


def job_key_query(new: NewJob) -> Query:
    """The job kept under ``new``'s jobId."""
    return f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND job_key = ?", (new.queue, new.job_key)


def unique_holder_query(new: NewJob, now: int) -> Query:
    """The job ``new``'s unique key holds: in one of its states (a blocked job counts
    as waiting on more), or finished less than ttlMs ago; the newest."""
    unique = new.unique
    assert unique is not None
    held = (*unique.states, "blocked") if "waiting" in unique.states else unique.states
    marks = ", ".join("?" * len(held))
    return (f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND unique_key = ? AND (state IN ({marks})"
            " OR (state IN ('completed', 'failed', 'cancelled', 'expired') AND finished_at > ?))"
            " ORDER BY id DESC LIMIT 1", (new.queue, unique.key, *held, now - unique.ttl_ms))


def unique_moved(new: NewJob, kept: Job) -> tuple[JobState, int] | None:
    """Where ``kept`` was before ``new`` debounced it (the dispatcher moves it in
    time); None when nothing of it is placed anew: replaced, or still blocked."""
    assert new.unique is not None
    if new.unique.mode != "debounce" or kept.state is JobState.BLOCKED:
        return None
    return kept.state, kept.run_at
