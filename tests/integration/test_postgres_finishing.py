"""What a job's end changes on a real PostgreSQL server (tests/pg.py), in its own
transaction: dependents move on or fail with it, callbacks are added, removal
policies apply, cancels and the expiry sweep move dependents on too, and two nodes
sweeping at once expire each job once."""

from __future__ import annotations

import asyncio

import asyncpg
import pg_steps as steps

from queueapp.model import JobState, NewJob
from queueapp.retry import Failure
from queueapp.store.postgres import jobs as pg
from queueapp.store.postgres.adds import add_keyed
from queueapp.store.transitions import CALLBACK_QUEUE

NOW = 1_800_000_000_000


def new(**options) -> NewJob:
    deps = tuple(options.pop("dependsOn", ()))
    return NewJob("q", "n", {}, 3, options.pop("attempts", 1), NOW, options, depends_on=deps)


async def added(pg_conn, jobs: list[NewJob]) -> list[int]:
    async with pg_conn.transaction():
        return [k.job.id for k in await add_keyed(pg_conn, jobs, NOW)]


async def run(pg_conn, job_id: int, ok: bool = True):
    async with pg_conn.transaction():
        await pg_conn.execute("UPDATE jobs SET state = 'active', lease_token = 't', started_at = $2,"
                           " attempts_made = attempts_made + 1 WHERE id = $1",
                           job_id, NOW)
        if ok:
            return await steps.complete(pg_conn, job_id, "t", {"done": job_id}, NOW + 1)
        return await steps.fail(pg_conn, job_id, "t", Failure("broke"), NOW + 1)


async def test_a_fan_in_moves_on_with_its_last_child_and_a_failure_cascades_with_callbacks(pg_conn):
    a, b, parent, grandchild = await added(pg_conn, [
        new(), new(), new(dependsOn=["#0", "#1"], callbackUrl="http://127.0.0.1:9/hook"),
        new(dependsOn=["#2"], callbackUrl="http://127.0.0.1:9/hook")])
    first = await run(pg_conn, a)
    assert first.settled == [] and first.spawned == []
    last = await run(pg_conn, b)
    assert [(c.job.id, c.prior, c.job.state) for c in last.settled] == [(parent, JobState.BLOCKED, JobState.WAITING)]
    failed = await run(pg_conn, parent, ok=False)
    assert failed.job.state is JobState.FAILED
    assert [(c.job.id, c.job.state, c.job.error) for c in failed.settled] == [
        (grandchild, JobState.FAILED, f"dependency {parent} failed")]
    told = sorted(s.job.data["body"]["id"] for s in failed.spawned)
    assert told == sorted([str(parent), str(grandchild)])
    assert {s.job.queue for s in failed.spawned} == {CALLBACK_QUEUE}
    assert await pg_conn.fetchval("SELECT count(*) FROM job_dependencies") == 0


async def test_removal_policies(pg_conn):
    gone, kept1, kept2, kept3 = await added(pg_conn, [new(removeOnComplete=True)] + [new(removeOnComplete=2)] * 3)
    change = await run(pg_conn, gone)
    assert change.deleted and await pg.get_job(pg_conn, gone) is None
    for job_id in (kept1, kept2):
        assert (await run(pg_conn, job_id)).pruned == {}
    assert (await run(pg_conn, kept3)).pruned == {JobState.COMPLETED: 1}
    assert await pg_conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'completed'") == 2


async def test_cancelling_a_dependency_fails_its_dependents(pg_conn):
    dep, child = await added(pg_conn, [new(), new(dependsOn=["#0"])])
    change = await steps.cancel(pg_conn, dep, NOW)
    assert change.prior is JobState.WAITING and change.job.state is JobState.CANCELLED
    assert [(c.job.id, c.job.error) for c in change.settled] == [(child, f"dependency {dep} cancelled")]


async def test_two_nodes_sweeping_at_once_expire_each_job_once(pg_url, pg_conn):
    ids = await added(pg_conn, [new(expireInMs=1) for _ in range(300)])
    await pg_conn.execute("UPDATE jobs SET expire_at = $1", NOW)
    sweepers = [await asyncpg.connect(pg_url) for _ in range(2)]

    async def sweep(c) -> list[int]:
        got = []
        while True:
            async with c.transaction():
                changes = await steps.expire_due(c, NOW + 5, 25)
            if not changes:
                return got
            got += [ch.job.id for ch in changes]

    try:
        swept = await asyncio.gather(*(sweep(c) for c in sweepers))
    finally:
        for c in sweepers:
            await c.close()
    every = [i for got in swept for i in got]
    assert sorted(every) == sorted(ids) and all(swept)
