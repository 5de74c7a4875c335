"""A unique key (options.unique) and retries: a retry must never make a second
unfinished job of one key. The same query and rule serve both stores, for one job
and for an action on many."""

from __future__ import annotations

from typing import Any

from .dialect import SQLITE, Dialect

Query = tuple[str, tuple[Any, ...]]


def unique_keys_query(ids: list[int], dialect: Dialect = SQLITE) -> Query:
    """Of ``ids``, those with a unique key: id, key, and whether an unfinished job
    holds the key now."""
    return ("SELECT j.id, j.unique_key, EXISTS (SELECT 1 FROM jobs o WHERE o.queue = j.queue"
            " AND o.unique_key = j.unique_key AND o.state IN ('waiting', 'delayed', 'active', 'blocked'))"
            f" FROM jobs j WHERE {dialect.in_ids} AND j.unique_key IS NOT NULL ORDER BY j.id",
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
