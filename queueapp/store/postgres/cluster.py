"""What several nodes on one PostgreSQL database share besides the jobs: who they
are, who leads, and how an enqueue on one node wakes the others.

**Leadership** is a lease in the one-row ``leadership`` table: a node leads while it
renews before ``expires_at``; when it stops (it died, or lost the database), another
node takes the row once the lease has run out, and the ``term`` grows. Work that
must happen once per cluster (cron ticks, the lease reaper, alerts, cleanup) is
written under a guard on the leader's node and term (``LEADS``), so a deposed leader
that wakes late changes nothing: its term is fenced off.

**Wake-ups** ride on ``LISTEN/NOTIFY``: an enqueue notifies ``CHANNEL`` with its queue
in the same transaction (delivered at commit, never for a rolled-back one), and every
node listening wakes its long polls and idle handlers. A notification can be lost
when a listener's connection drops, so nodes also poll slowly.
"""

from __future__ import annotations

from typing import Any

from ..sql import leadership
from ..sql.dialect import numbered

CHANNEL = "queueapp_jobs"
CANCEL_CHANNEL = "queueapp_cancel"  # a running job was cancelled: its runner, on any node, stops it
# A wake-up's payload: the queue, then the names of its new jobs, each after this
# separator; the queue alone says "any name" (also when the names would not fit).
SEPARATOR = "\x1f"
_FITS = 7000  # bytes of names in one payload (PostgreSQL's limit is 8000)


def told(queue: str, names: list[str] | None = None) -> str:
    """The payload of a wake-up for ``queue`` (and these names)."""
    joined = SEPARATOR.join(sorted(set(names or ())))
    return f"{queue}{SEPARATOR}{joined}" if joined and len(joined) < _FITS else queue


def heard(payload: str) -> tuple[str, list[str] | None]:
    """(queue, names or None for any) of a wake-up's payload. A name holding the
    separator splits in two: a node that runs it may then wake at the next poll only."""
    queue, _, names = payload.partition(SEPARATOR)
    return queue, names.split(SEPARATOR) if names else None


# The same in SQL, for statements that notify as they write: (queue, names) rows.
NOTIFY_ROWS = (f"pg_notify('{CHANNEL}', CASE WHEN names IS NOT NULL AND length(names) < {_FITS}"
               " THEN queue || chr(31) || names ELSE queue END)")

def leads(first: int) -> str:
    """A statement's guard: true only while node ${first} holds term ${first + 1} of a
    lease not run out at ${first + 2} (sql/leadership.py, numbered for asyncpg)."""
    return numbered(leadership.leads(first))


LEADS = leads(1)


async def seen(conn: Any, node: str, now: int, stats: str = "{}") -> None:
    """Record that ``node`` is alive (its id shows in leases, logs and the node list),
    with what it publishes for the others (JSON)."""
    await conn.execute(
        "INSERT INTO nodes (id, started_at, seen_at, stats) VALUES ($1, $2::bigint, $2::bigint, $3::jsonb)"
        " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, stats = excluded.stats", node, now, stats)


async def seen_nodes(conn: Any, now: int, within_ms: int) -> list[tuple[str, int, int, str]]:
    """(id, started_at, seen_at, stats as JSON) of the nodes seen within ``within_ms``."""
    rows = await conn.fetch("SELECT id, started_at, seen_at, stats::text FROM nodes WHERE seen_at > $1 ORDER BY id",
                            now - within_ms)
    return [tuple(r) for r in rows]


async def lead(conn: Any, node: str, now: int, lease_ms: int) -> int | None:
    """Take or renew leadership for ``node`` until ``now + lease_ms``: its term when
    it leads, None while another node's lease runs."""
    row = await conn.fetchrow(
        "INSERT INTO leadership (singleton, node, term, expires_at) VALUES (TRUE, $1, 1, $2::bigint + $3::bigint)"
        " ON CONFLICT (singleton) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at,"
        " term = CASE WHEN leadership.node = excluded.node AND leadership.expires_at > $2"
        " THEN leadership.term ELSE leadership.term + 1 END"
        " WHERE leadership.node = excluded.node OR leadership.expires_at <= $2::bigint RETURNING term",
        node, now, lease_ms)
    return None if row is None else row[0]


async def database_ms(conn: Any) -> int:
    """The database's clock (clock_timestamp: the time of this statement, not of its
    transaction's start), in ms since the epoch."""
    return int(await conn.fetchval("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"))


async def step_down(conn: Any, node: str, term: int) -> None:
    """Give leadership up at once (a clean stop), so another node need not wait."""
    await conn.execute("UPDATE leadership SET expires_at = 0 WHERE node = $1 AND term = $2", node, term)


async def notify(conn: Any, queue: str) -> None:
    """Tell every listening node that ``queue`` has new work (sent at commit)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, queue)
