"""The cluster's side of the PostgreSQL store (``SharedStore``): claims through the
database, wake-ups by LISTEN/NOTIFY, leadership, node liveness and folded counts.
Writes go through the store's ordered writer, so a claim or a promotion shares a
commit with the writes around it; reads use its pool; the listener has a
connection of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from ...flow import NONE
from ...jsonfast import dumps, loads
from ...model import Job, JobState, NewJob
from .. import changes
from ..records import Added
from ..shared import FlowRules, NodeSeen, SharedStore
from ..sql import leadership
from . import cluster, counts, flow, jobs, reads, upkeep
from .jobs import COLUMNS, row_to_job
from .run import run

log = logging.getLogger("queueapp.cluster")

LISTEN_RETRY_S = 1.0  # after the listening connection was lost, connect again this much later


async def _promote_and_wake(conn: Any, now: int, limit: int) -> int:
    promoted = await jobs.promote_due(conn, now, limit)
    if promoted:
        await conn.execute(f"SELECT {cluster.NOTIFY_ROWS} FROM (SELECT queue, string_agg(DISTINCT name, chr(31))"
                           " AS names FROM jobs WHERE id = ANY($1::bigint[]) GROUP BY queue) AS woken", promoted)
    return len(promoted)


async def _wake(conn: Any, payloads: list[str]) -> None:
    await conn.execute("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload", cluster.CHANNEL,
                       payloads)


async def _running(conn: Any, node: str) -> list[tuple[int, str]]:
    rows = await conn.fetch("SELECT id, lease_token FROM jobs WHERE state = 'active' AND node = $1"
                            " AND lease_expires_at IS NULL", node)
    return [(r[0], r[1]) for r in rows]


async def _both_counts(conn: Any) -> tuple[dict[str, dict[JobState, int]], dict[str, dict[JobState, int]]]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await counts.count_states(conn), await reads.count_states(conn)


async def _keep_up(conn: Any) -> int:
    async with conn.transaction():
        return await upkeep.keep_up(conn)


class Host(Protocol):
    """What this needs of the PostgreSQL store it is part of (store.py)."""

    node: str

    async def submit(self, write: Any, *args: Any, then: Any = None) -> Any: ...

    async def pooled(self, work: Any, *args: Any) -> Any: ...

    async def connect(self) -> Any: ...

    def writer_pid(self) -> int | None: ...


class PostgresShared(SharedStore):
    def __init__(self, store: Host) -> None:
        self.store = store
        self.node = store.node
        self._listening: asyncio.Task[None] | None = None

    async def claim(self, queue: str, names: list[str] | None, excluded: list[str], limit: int, now: int,
                    lease_ms: int | None, rules: FlowRules = (NONE, None, True), *, worker: str,
                    then: Callable[[list[Job]], Any] | None = None) -> list[Job]:
        return await self.store.submit(flow.claim, queue, names, excluded, limit, now, lease_ms, self.node, worker,
                                       *rules, then=then)

    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        return await self.store.pooled(flow.key_counts, queue)

    async def promote_due(self, now: int, limit: int) -> int:
        return await self.store.submit(_promote_and_wake, now, limit)

    async def wake(self, woken: dict[str, set[str]]) -> None:
        await self.store.submit(_wake, [cluster.told(queue, sorted(names)) for queue, names in sorted(woken.items())])

    async def tell_cancelled(self, job_id: int) -> None:
        await self.store.submit(lambda conn: conn.execute("SELECT pg_notify($1, $2)", cluster.CANCEL_CHANNEL,
                                                          str(job_id)))

    # wake-ups ----------------------------------------------------------------------

    async def listen(self, on_queue: Callable[[str, list[str] | None], None],
                     on_cancel: Callable[[int], None]) -> None:
        connected = asyncio.get_running_loop().create_future()
        self._listening = asyncio.create_task(self._listen(on_queue, on_cancel, connected),
                                              name="queueapp-listener")
        await asyncio.shield(connected)

    async def _listen(self, on_queue: Callable[[str, list[str] | None], None], on_cancel: Callable[[int], None],
                      connected: asyncio.Future[None]) -> None:
        # What this node's own writer told, it knew already.
        def queue_told(_conn: Any, pid: int, _channel: str, payload: str) -> None:
            if pid != self.store.writer_pid():
                on_queue(*cluster.heard(payload))

        def cancel_told(_conn: Any, pid: int, _channel: str, payload: str) -> None:
            if pid != self.store.writer_pid():
                with contextlib.suppress(ValueError):
                    on_cancel(int(payload))

        while True:
            try:
                await self._hear(queue_told, cancel_told, connected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not connected.done():
                    connected.set_exception(exc)
                    return
                log.warning("lost the connection that hears other nodes; connecting again",
                            extra={"event": "cluster.listen_lost"}, exc_info=exc)
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _hear(self, queue_told: Callable[..., None], cancel_told: Callable[..., None],
                    connected: asyncio.Future[None]) -> None:
        """Listen on one connection until it is lost."""
        conn = await self.store.connect()
        try:
            await conn.add_listener(cluster.CHANNEL, queue_told)
            await conn.add_listener(cluster.CANCEL_CHANNEL, cancel_told)
            if not connected.done():
                connected.set_result(None)
            while not conn.is_closed():
                await asyncio.sleep(LISTEN_RETRY_S)
                await conn.execute("SELECT 1")  # finds a dead connection
        finally:
            conn.terminate()

    async def unlisten(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listening

    # leadership and liveness ---------------------------------------------------------

    async def lead(self, now: int, lease_ms: int) -> int | None:
        return await self.store.pooled(cluster.lead, self.node, now, lease_ms)

    async def step_down(self, term: int) -> None:
        await self.store.pooled(cluster.step_down, self.node, term)

    async def leader(self, now: int) -> str | None:
        return await self.store.pooled(
            lambda conn: conn.fetchval("SELECT node FROM leadership WHERE expires_at > $1", now))

    async def seen(self, now: int, stats: dict[str, Any]) -> None:
        await self.store.pooled(cluster.seen, self.node, now, dumps(stats))

    async def nodes(self, now: int, within_ms: int) -> list[NodeSeen]:
        rows = await self.store.pooled(cluster.seen_nodes, now, within_ms)
        return [NodeSeen(node, started, seen_at, loads(stats)) for node, started, seen_at, stats in rows]

    async def database_ms(self) -> int:
        return await self.store.pooled(cluster.database_ms)

    async def forget_node(self) -> None:
        await self.store.pooled(lambda conn: conn.execute("DELETE FROM nodes WHERE id = $1", self.node))

    # counts and the jobs of the whole cluster ------------------------------------------

    async def counts(self) -> dict[str, dict[JobState, int]]:
        return await self.store.pooled(counts.count_states)

    async def fold_counts(self) -> int:
        return await self.store.pooled(_keep_up)

    async def expired_leases(self, now: int, limit: int) -> list[tuple[int, str]]:
        return await self.store.pooled(jobs.expired_leases, now, limit)

    async def orphans(self, now: int, gone_ms: int) -> list[tuple[int, str]]:
        found = await self.store.pooled(jobs.orphans, now, gone_ms)
        return [(j.id, j.lease_token) for j in found if j.lease_token is not None]

    async def active_jobs(self, limit: int) -> list[tuple[Job, str | None]]:
        rows = await self.store.pooled(lambda conn: conn.fetch(
            f"SELECT {COLUMNS}, node FROM jobs WHERE state = 'active' ORDER BY id LIMIT $1", limit))
        return [(row_to_job(r), r[-1]) for r in rows]

    async def running_here(self, *, then: Callable[[list[tuple[int, str]]], Any]) -> None:
        await self.store.submit(_running, self.node, then=then)

    async def both_counts(self) -> tuple[dict[str, dict[JobState, int]], dict[str, dict[JobState, int]]]:
        return await self.store.pooled(_both_counts)

    async def fire_schedule(
        self, term: int, queue: str, name: str, expected_next: int, jobs_: list[NewJob], next_run_at: int,
        now: int, *, then: Callable[[Any], Any] | None = None,
    ) -> tuple[list[Added], bool] | None:
        # Fired only under this node's term as leader: a deposed leader that wakes
        # late fires nothing (the statement's placeholders go on from ?6).
        return await self.store.submit(run, changes.fire_schedule, queue, name, expected_next, jobs_, next_run_at,
                                       now, f" AND {leadership.leads(6)}", self.node, term, now, then=then)
