"""Group limits and priority aging for claims several nodes share.

One appliance keeps each key's line in memory (dispatch/lanes.py). Nodes of a
cluster cannot, so a claim of a queue with group settings (or aging) reads them in
its own transaction, under a transaction lock on the queue that serialises such
claims on every node (two nodes must not both give a key its last free slot): the
stored policy over the config file's, each key's active jobs and recent starts, its
pause. A key's ``Gate`` (flow.py, the same rule as one appliance's) says how many of
its jobs may start; one statement then picks the best waiting jobs within those
numbers, keys taking turns a job each within a priority level (a job's level is its
priority raised by aging), and the claim makes them active.

The cost is a scan of the queue's waiting jobs per claim; a queue without group
settings or aging claims through the index alone (jobs.claim_next)."""

from __future__ import annotations

from collections import deque
from typing import Any

from ...flow import AGED_CEILING, Aging, Gate, GroupLimits, GroupPolicy
from ...model import Job
from .. import transitions
from ..records import StoredGroups
from ..sql.dialect import POSTGRES
from ..sql.groups import stored_groups
from . import jobs
from .statements import drive

# pg_advisory_xact_lock(class, key) of a queue's grouped claims.
FLOW_LOCK = 0x7161_6731  # "qag1"

_PICK = (
    "WITH room AS (SELECT key, n FROM unnest($4::text[], $5::int[]) AS given(key, n)),"
    " waiting AS (SELECT id, group_key, run_at, CASE WHEN $9::bigint IS NULL THEN priority"
    " WHEN priority <= $11::int OR $8::bigint - run_at < $9::bigint THEN priority"
    " ELSE greatest($11::int, priority - least($10::bigint, ($8::bigint - run_at) / $9::bigint)) END AS level"
    " FROM jobs WHERE queue = $1 AND state = 'waiting' AND ($2::text[] IS NULL OR name = ANY($2::text[]))"
    " AND NOT name = ANY($3::text[]) AND NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = $1 AND paused)),"
    " ranked AS (SELECT *, row_number() OVER (PARTITION BY group_key ORDER BY level, run_at, id) AS nth FROM waiting)"
    " SELECT ranked.id FROM ranked LEFT JOIN room ON room.key = ranked.group_key"
    " WHERE ranked.group_key IS NULL OR ranked.nth <= coalesce(room.n, $6::int)"
    " ORDER BY ranked.level, ranked.nth, ranked.run_at, ranked.id LIMIT $7"
)


async def policy_of(conn: Any, queue: str, default: GroupLimits) -> GroupPolicy:
    """The queue's group policy as stored, over the config file's ``default``."""
    found = stored_groups(
        await conn.fetch("SELECT queue, concurrency, rate_max, rate_per_ms FROM group_policies WHERE queue = $1",
                         queue),
        await conn.fetch("SELECT queue, key, custom, concurrency, rate_max, rate_per_ms, paused, paused_until"
                         " FROM group_keys WHERE queue = $1", queue))
    return (found[0] if found else StoredGroups(queue)).policy(default)


def _governed(policy: GroupPolicy, aging: Aging | None) -> bool:
    return policy.default.limited or bool(policy.overrides) or bool(policy.paused) or aging is not None


async def _rooms(conn: Any, queue: str, policy: GroupPolicy, now: int) -> tuple[dict[str, int], int]:
    """How many jobs of each key may start now (keys not listed: the second value)."""
    busy = dict(await conn.fetch("SELECT group_key, count(*)::int FROM jobs WHERE queue = $1 AND state = 'active'"
                                 " AND group_key IS NOT NULL GROUP BY group_key", queue))
    starts: dict[str, deque[int]] = {}
    if longest := policy.longest_window():
        for key, at in await conn.fetch("SELECT group_key, started_at FROM jobs WHERE queue = $1"
                                        " AND group_key IS NOT NULL AND started_at > $2 ORDER BY started_at",
                                        queue, now - longest):
            starts.setdefault(key, deque()).append(at)
    keys = busy.keys() | starts.keys() | policy.overrides.keys() | policy.paused.keys()
    rooms = {}
    for key in keys:
        gate = Gate(policy.limits_of(key), running=busy.get(key, 0), starts=starts.get(key, deque()),
                    paused=key in policy.paused, paused_until=policy.paused.get(key))
        rooms[key] = gate.room(now)
    return rooms, Gate(policy.default).room(now)


async def claim(
    conn: Any, queue: str, names: list[str] | None, excluded: list[str], limit: int, now: int,
    lease_ms: int | None, node: str, worker: str, default: GroupLimits, aging: Aging | None, stored: bool = True,
) -> list[Job]:
    """``jobs.claim_next`` within the queue's group limits and aging, when it has any.
    A queue the caller knows none of (``stored`` False, no config limits, no aging)
    claims in one statement that gives nothing should settings have been stored since;
    otherwise the settings are read first."""
    if not stored and not default.limited and aging is None:
        return await jobs.claim_next(conn, queue, names, limit, now, lease_ms, node, worker, excluded,
                                     ungoverned=True)
    policy = await policy_of(conn, queue, default)
    if not _governed(policy, aging):
        return await jobs.claim_next(conn, queue, names, limit, now, lease_ms, node, worker, excluded)
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", FLOW_LOCK, queue)
    rooms, default_room = await _rooms(conn, queue, policy, now)
    picked = [r[0] for r in await conn.fetch(
        _PICK, queue, names, excluded, list(rooms), list(rooms.values()), default_room, limit, now,
        None if aging is None else aging.every_ms, None if aging is None else aging.max_levels, AGED_CEILING)]
    if not picked:
        return []
    return await drive(conn, transitions.claim(POSTGRES, picked, now, lease_ms, node, worker))  # in the order picked


async def key_counts(conn: Any, queue: str) -> dict[str, tuple[int, int]]:
    """(active, waiting) jobs of every key of the queue that has some."""
    rows = await conn.fetch(
        "SELECT group_key, count(*) FILTER (WHERE state = 'active')::int,"
        " count(*) FILTER (WHERE state = 'waiting')::int FROM jobs WHERE queue = $1 AND group_key IS NOT NULL"
        " AND state IN ('active', 'waiting') GROUP BY group_key",
        queue)
    return {key: (active, waiting) for key, active, waiting in rows}
