"""Schedules on a real PostgreSQL server with several nodes (tests/pg.py): every node
ticks, the leader's tick fires; a second tick of the same run, a deposed leader's
tick, and a tick of another node fire nothing; a 1-second schedule ticked by three
nodes for 20 simulated seconds, with leadership moving in the middle, fires once a
second."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from queueapp.model import NewJob
from queueapp.store import changes
from queueapp.store.postgres import cluster
from queueapp.store.postgres.run import run
from queueapp.store.sql import leadership

NOW = 1_800_000_000_000


async def fire(conn, queue, name, due, jobs, next_run_at, now, leader):
    """A schedule's run as the store of a cluster's node fires it: under the leader's guard."""
    async with conn.transaction():
        return await run(conn, changes.fire_schedule, queue, name, due, jobs, next_run_at, now,
                         f" AND {leadership.leads(6)}", *leader, now)


@pytest.fixture
async def nodes(pg_url):
    conns = [await asyncpg.connect(pg_url) for _ in range(3)]
    await conns[0].execute(
        "INSERT INTO schedules (queue, name, job_name, every_ms, anchor_at, next_run_at, created_at, updated_at)"
        " VALUES ('q', 'tick', 'tick', 1000, $1, $1, 0, 0)", NOW)
    yield conns
    for c in conns:
        await c.close()


def run_of(at: int) -> NewJob:
    return NewJob("q", "tick", {}, 3, 1, at, {}, job_key=f"tick@{at}")


async def fire_as(conn, node: str, term: int, due: int, now: int):
    """One tick's run, as leader ``node`` in ``term``: the new job's id, or None."""
    async with conn.transaction():
        fired = await fire(conn, "q", "tick", due, [run_of(due)], due + 1000, now, (node, term))
    return None if fired is None else fired[0][0].job.id


async def test_only_the_leaders_tick_fires_and_only_once(nodes):
    a, b, _ = nodes
    term = await cluster.lead(a, "a", NOW, 3000)
    assert await fire_as(b, "b", term, NOW, NOW) is None  # not b's term
    assert await fire_as(a, "a", term, NOW, NOW) is not None
    assert await fire_as(a, "a", term, NOW, NOW) is None  # a double tick
    new_term = await cluster.lead(b, "b", NOW + 3000, 3000)
    assert new_term == term + 1
    assert await fire_as(a, "a", term, NOW + 1000, NOW + 3001) is None  # deposed
    assert await a.fetchval("SELECT count(*) FROM jobs") == 1


async def test_a_one_second_schedule_fires_once_a_second_across_three_nodes(nodes):
    """Each simulated second, every live node ticks at once (its own connection);
    whichever leads after 10 s dies then; another takes over within the lease."""
    names = ["a", "b", "c"]
    fired: list[int] = []

    async def tick(i: int, conn: asyncpg.Connection, now: int) -> None:
        term = await cluster.lead(conn, names[i], now, 2500)
        if term is None:
            return
        due = await conn.fetchval("SELECT next_run_at FROM schedules WHERE name = 'tick'")
        while due is not None and due <= now:
            if await fire_as(conn, names[i], term, due, now) is not None:
                fired.append(due)
            due = await conn.fetchval("SELECT next_run_at FROM schedules WHERE name = 'tick'")

    dead = None
    for second in range(20):
        now = NOW + second * 1000
        if second == 10:
            dead = names.index(await nodes[0].fetchval("SELECT node FROM leadership"))
        alive = [i for i in range(3) if i != dead]
        await asyncio.gather(*(tick(i, nodes[i], now + 5 * i) for i in alive))
    keys = sorted(r[0] for r in await nodes[0].fetch("SELECT job_key FROM jobs"))
    expected = [NOW + k * 1000 for k in range(20)]
    assert sorted(fired) == expected  # every run once: none lost while leadership moved, none doubled
    assert keys == sorted(f"tick@{at}" for at in expected)
    assert await nodes[0].fetchval("SELECT term FROM leadership") == 2
