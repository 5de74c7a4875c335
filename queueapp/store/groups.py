"""SQL for group settings (options.group): a queue's stored policy, keys' own limits
and pauses, and the starts a restart must remember. Write functions run in the
writer (first argument: the connection, inside the writer's transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ..flow import GroupLimits, KeyChange, KeySettings
from .records import StoredGroups

Query = tuple[str, tuple[Any, ...]]


def _limits(concurrency: int | None, rate_max: int | None, rate_per_ms: int | None) -> GroupLimits:
    return GroupLimits(concurrency, rate_max, rate_per_ms)


POLICIES = "SELECT queue, concurrency, rate_max, rate_per_ms FROM group_policies"
KEYS = "SELECT queue, key, custom, concurrency, rate_max, rate_per_ms, paused, paused_until FROM group_keys"


def stored_groups(policies: Iterable[Sequence[Any]], keys: Iterable[Sequence[Any]]) -> list[StoredGroups]:
    """The rows of POLICIES and KEYS (from either engine) as each queue's settings."""
    found: dict[str, StoredGroups] = {}
    for queue, concurrency, rate_max, rate_per_ms in policies:
        found[queue] = StoredGroups(queue, _limits(concurrency, rate_max, rate_per_ms))
    for queue, key, custom, concurrency, rate_max, rate_per_ms, paused, until in keys:
        limits = _limits(concurrency, rate_max, rate_per_ms) if custom else None
        found.setdefault(queue, StoredGroups(queue)).keys[key] = KeySettings(limits, bool(paused), until)
    return list(found.values())


def read_all(conn: sqlite3.Connection) -> list[StoredGroups]:
    return stored_groups(conn.execute(POLICIES), conn.execute(KEYS))


def set_policy(conn: sqlite3.Connection, queue: str, limits: GroupLimits | None, now: int) -> None:
    if limits is None:
        conn.execute("DELETE FROM group_policies WHERE queue = ?", (queue,))
        return
    conn.execute(
        "INSERT INTO group_policies (queue, concurrency, rate_max, rate_per_ms, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, rate_max = excluded.rate_max,"
        " rate_per_ms = excluded.rate_per_ms, updated_at = excluded.updated_at",
        (queue, limits.concurrency, limits.rate_max, limits.rate_per_ms, now),
    )


def key_change_queries(queue: str, key: str, change: KeyChange, now: int) -> tuple[Query, Query]:
    """The statements of a change of ``key``'s settings, for either engine: an upsert
    that sets only what ``change`` names (one statement: a concurrent change of the
    other part is never undone) and answers the key's settings as they now stand,
    then the key forgotten if nothing of its own is left."""
    limits = change.limits or GroupLimits()
    named = ["updated_at = excluded.updated_at"]
    if change.sets_limits:
        named.insert(0, "custom = excluded.custom, concurrency = excluded.concurrency,"
                        " rate_max = excluded.rate_max, rate_per_ms = excluded.rate_per_ms")
    if change.sets_pause:
        named.insert(0, "paused = excluded.paused, paused_until = excluded.paused_until")
    upsert = (
        "INSERT INTO group_keys (queue, key, custom, concurrency, rate_max, rate_per_ms, paused, paused_until,"
        f" updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue, key) DO UPDATE SET {', '.join(named)}"
        " RETURNING custom, concurrency, rate_max, rate_per_ms, paused, paused_until",
        (queue, key, change.limits is not None, limits.concurrency, limits.rate_max, limits.rate_per_ms,
         change.paused, change.paused_until, now),
    )
    forget = ("DELETE FROM group_keys WHERE queue = ? AND key = ? AND NOT custom AND NOT paused", (queue, key))
    return upsert, forget


def key_settings(row: Sequence[Any]) -> KeySettings:
    """A key's settings from the upsert's answer (key_change_queries)."""
    custom, concurrency, rate_max, rate_per_ms, paused, until = row
    return KeySettings(_limits(concurrency, rate_max, rate_per_ms) if custom else None, bool(paused),
                       until if paused else None)


def set_key(conn: sqlite3.Connection, queue: str, key: str, change: KeyChange, now: int) -> KeySettings:
    """Change ``key``'s settings as ``change`` says; its settings now."""
    upsert, forget = key_change_queries(queue, key, change, now)
    settings = key_settings(conn.execute(*upsert).fetchone())
    conn.execute(*forget)
    return settings


# The latest start of each grouped job since a time (a retried job's earlier starts
# are not kept: a restart may allow a key one start more per retried job).
STARTS_SINCE = ("SELECT queue, group_key, started_at FROM jobs"
                " WHERE group_key IS NOT NULL AND started_at >= ?")

# Keys with more active jobs than the concurrency their stored settings allow.
OVER_LIMIT = (
    "SELECT j.queue, j.group_key, count(*) AS n, coalesce(k.concurrency, p.concurrency) AS lim"
    " FROM jobs j LEFT JOIN group_keys k ON k.queue = j.queue AND k.key = j.group_key AND k.custom = 1"
    " LEFT JOIN group_policies p ON p.queue = j.queue"
    " WHERE j.state = 'active' AND j.group_key IS NOT NULL"
    " GROUP BY j.queue, j.group_key HAVING lim IS NOT NULL AND n > lim LIMIT 20"
)
