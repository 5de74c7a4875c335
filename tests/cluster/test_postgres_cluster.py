"""Several nodes on one real PostgreSQL server (tests/pg.py): one leader at a time,
another takes over once the leader's lease runs out, with a higher term that fences
the old leader's writes off; an enqueue on one node wakes a node listening on
another connection within milliseconds."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from queueapp.model import NewJob
from queueapp.store.postgres import cluster
from queueapp.store.postgres import jobs as pg

NOW = 1_800_000_000_000


async def test_one_leader_then_another_with_a_higher_term_that_fences_the_first(pg_url):
    a, b = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        assert await cluster.lead(a, "node-a", NOW, 3000) == 1
        assert await cluster.lead(b, "node-b", NOW + 10, 3000) is None  # a's lease runs
        assert await cluster.lead(a, "node-a", NOW + 2000, 3000) == 1  # renewed: same term
        assert await cluster.lead(b, "node-b", NOW + 4999, 3000) is None
        assert await cluster.lead(b, "node-b", NOW + 5000, 3000) == 2  # a went quiet: b takes over
        assert await cluster.lead(a, "node-a", NOW + 5001, 3000) is None  # a wakes late: not leader

        fenced = f"UPDATE schedules SET last_run_at = $3 WHERE name = 'cleanup' AND {cluster.LEADS}"
        assert await a.execute(fenced, "node-a", 1, NOW + 5002) == "UPDATE 0"  # the old term writes nothing
        assert await b.execute(fenced, "node-b", 2, NOW + 5002) == "UPDATE 1"

        await cluster.step_down(b, "node-b", 2)
        assert await cluster.lead(a, "node-a", NOW + 5003, 3000) == 3  # no wait after a clean stop
    finally:
        await a.close()
        await b.close()


async def test_the_nodes_that_are_alive(pg_url):
    pg_conn = await asyncpg.connect(pg_url)
    try:
        await cluster.seen(pg_conn, "node-a", NOW)
        await cluster.seen(pg_conn, "node-b", NOW + 5000, '{"finished": {}}')
        assert [n[0] for n in await cluster.seen_nodes(pg_conn, NOW + 6000, 3000)] == ["node-b"]
        await cluster.seen(pg_conn, "node-a", NOW + 6000)
        seen = await cluster.seen_nodes(pg_conn, NOW + 6000, 3000)
        assert seen == [("node-a", NOW, NOW + 6000, "{}"), ("node-b", NOW + 5000, NOW + 5000, '{"finished": {}}')]
    finally:
        await pg_conn.close()


def test_a_wake_up_names_the_new_jobs_when_they_fit():
    assert cluster.heard(cluster.told("q", ["b", "a", "b"])) == ("q", ["a", "b"])
    assert cluster.heard(cluster.told("q")) == ("q", None)
    assert cluster.heard(cluster.told("q", [f"name-{i:04d}" for i in range(1000)])) == ("q", None)  # too many: any


async def test_an_enqueue_on_one_node_wakes_another_at_commit(pg_url):
    producer, listener = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    woken: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    await listener.add_listener(cluster.CHANNEL, lambda *args: woken.put_nowait((args[3], time.monotonic())))
    try:
        async with producer.transaction():
            await producer.execute("SELECT 1")
            with pytest.raises(asyncpg.CheckViolationError):  # a rolled-back enqueue tells no one
                await pg.add_jobs(producer, [NewJob("emails", "n", {}, 9, 1, NOW)], NOW)
        sent = time.monotonic()
        await pg.add_jobs(producer, [NewJob("emails", "n", {}, 3, 1, NOW), NewJob("sms", "n", {}, 3, 1, NOW)], NOW)
        first = await asyncio.wait_for(woken.get(), 5)
        second = await asyncio.wait_for(woken.get(), 5)
        assert sorted([cluster.heard(first[0]), cluster.heard(second[0])]) == [("emails", ["n"]), ("sms", ["n"])]
        assert first[1] - sent < 1.0
        assert woken.empty()
    finally:
        await listener.close()
        await producer.close()
