"""Statements on the group settings (options.group): a queue's stored policy
(``group_policies``), keys' own limits and pauses (``group_keys``), and the starts a
restart must remember, for either engine."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...flow import GroupLimits, KeyChange, KeySettings
from ..records import StoredGroups
from .dialect import Dialect
from .plan import Statement, row, rows, run


def _limits(concurrency: int | None, rate_max: int | None, rate_per_ms: int | None) -> GroupLimits:
    return GroupLimits(concurrency, rate_max, rate_per_ms)


POLICIES = "SELECT queue, concurrency, rate_max, rate_per_ms FROM group_policies"
KEYS = "SELECT queue, key, custom, concurrency, rate_max, rate_per_ms, paused, paused_until FROM group_keys"


def policies(d: Dialect) -> Statement:
    return rows(POLICIES)


def keys(d: Dialect) -> Statement:
    return rows(KEYS)


def stored_groups(policies: Iterable[Sequence[Any]], keys: Iterable[Sequence[Any]]) -> list[StoredGroups]:
    """The rows of POLICIES and KEYS (from either engine) as each queue's settings."""
    found: dict[str, StoredGroups] = {}
    for queue, concurrency, rate_max, rate_per_ms in policies:
        found[queue] = StoredGroups(queue, _limits(concurrency, rate_max, rate_per_ms))
    for queue, key, custom, concurrency, rate_max, rate_per_ms, paused, until in keys:
        limits = _limits(concurrency, rate_max, rate_per_ms) if custom else None
        found.setdefault(queue, StoredGroups(queue)).keys[key] = KeySettings(limits, bool(paused), until)
    return list(found.values())


def forget_policy(d: Dialect, queue: str) -> Statement:
    return run("DELETE FROM group_policies WHERE queue = ?1", queue)


def set_policy(d: Dialect, queue: str, limits: GroupLimits, now: int) -> Statement:
    return run(
        "INSERT INTO group_policies (queue, concurrency, rate_max, rate_per_ms, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, rate_max = excluded.rate_max,"
        " rate_per_ms = excluded.rate_per_ms, updated_at = excluded.updated_at",
        queue, limits.concurrency, limits.rate_max, limits.rate_per_ms, now)


def change_key(d: Dialect, queue: str, key: str, change: KeyChange, now: int) -> Statement:
    """An upsert of ``key``'s settings that sets only what ``change`` names (one
    statement: a concurrent change of the other part is never undone), answering the
    key's settings as they now stand (``key_settings``)."""
    limits = change.limits or GroupLimits()
    named = ["updated_at = excluded.updated_at"]
    if change.sets_limits:
        named.insert(0, "custom = excluded.custom, concurrency = excluded.concurrency,"
                        " rate_max = excluded.rate_max, rate_per_ms = excluded.rate_per_ms")
    if change.sets_pause:
        named.insert(0, "paused = excluded.paused, paused_until = excluded.paused_until")
    return row(
        "INSERT INTO group_keys (queue, key, custom, concurrency, rate_max, rate_per_ms, paused, paused_until,"
        " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        f" ON CONFLICT (queue, key) DO UPDATE SET {', '.join(named)}"
        " RETURNING custom, concurrency, rate_max, rate_per_ms, paused, paused_until",
        queue, key, d.boolean(change.limits is not None), limits.concurrency, limits.rate_max, limits.rate_per_ms,
        d.boolean(change.paused), change.paused_until, now)


def forget_key(d: Dialect, queue: str, key: str) -> Statement:
    """The key forgotten when nothing of its own is left."""
    return run("DELETE FROM group_keys WHERE queue = ?1 AND key = ?2 AND NOT custom AND NOT paused", queue, key)


def key_settings(found: Sequence[Any]) -> KeySettings:
    """A key's settings from ``change_key``'s answer."""
    custom, concurrency, rate_max, rate_per_ms, paused, until = found
    return KeySettings(_limits(concurrency, rate_max, rate_per_ms) if custom else None, bool(paused),
                       until if paused else None)


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
