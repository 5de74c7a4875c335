"""The job lifecycle on a real PostgreSQL server (tests/pg.py): claims shared by
several nodes never hand a job out twice and go best first; a claim ends a job past
its expiry instead of starting it; completion and failure are guarded by the lease
token; a failed attempt waits out its backoff, then promotion brings it back; a
lease that ran out is rescued."""

from __future__ import annotations

import asyncio

import asyncpg
import pg_steps as steps

from queueapp.model import JobState, NewJob
from queueapp.retry import Failure
from queueapp.store.postgres import cluster, counts
from queueapp.store.postgres import jobs as pg

NOW = 1_800_000_000_000


def job(name: str = "n", priority: int = 3, run_at: int = NOW, queue: str = "q", **options) -> NewJob:
    return NewJob(queue, name, {"n": 1}, priority, options.pop("attempts", 3), run_at, options)


async def test_three_nodes_claiming_at_once_never_share_a_job(pg_url, pg_conn):
    ids = await pg.add_jobs(pg_conn, [job(priority=1 + i % 5) for i in range(3000)], NOW)
    assert len(ids) == 3000 and ids == sorted(ids)
    nodes = [await asyncpg.connect(pg_url) for _ in range(3)]

    async def node(c: asyncpg.Connection, name: str) -> list[int]:
        got = []
        while batch := await pg.claim_next(c, "q", None, 25, NOW, 30_000, name, "w"):
            assert [(j.priority, j.id) for j in batch] == sorted((j.priority, j.id) for j in batch)
            got += [j.id for j in batch]
        return got

    try:
        claimed = await asyncio.gather(*(node(c, f"node-{i}") for i, c in enumerate(nodes)))
    finally:
        for c in nodes:
            await c.close()
    every = [i for got in claimed for i in got]
    assert sorted(every) == sorted(ids) and all(claimed)
    tokens = await pg_conn.fetchval("SELECT count(DISTINCT lease_token) FROM jobs WHERE state = 'active'")
    assert tokens == 3000


async def test_best_first_names_and_expiry(pg_conn):
    low, high, other = await pg.add_jobs(pg_conn, [job(priority=4), job(priority=1), job(name="other")], NOW)
    late, = await pg.add_jobs(pg_conn, [job(priority=1, run_at=NOW - 10)], NOW - 10)
    await pg_conn.execute("UPDATE jobs SET expire_at = $1 WHERE id = $2", NOW - 1, late)
    claimed = await pg.claim_next(pg_conn, "q", ["n"], 10, NOW, None, "node-a", "w")
    by_id = {j.id: j for j in claimed}
    assert by_id[late].state is JobState.EXPIRED and by_id[late].started_at is None
    assert [j.id for j in claimed if j.state is JobState.ACTIVE] == [high, low]
    assert other not in by_id
    assert await pg_conn.fetchval("SELECT node FROM jobs WHERE id = $1", high) == "node-a"


async def test_completion_and_failure_need_the_lease_token(pg_conn):
    a, b = await pg.add_jobs(pg_conn, [job(attempts=2, backoff={"type": "fixed", "delay": 1000}), job(attempts=1)], NOW)
    claimed = {j.id: j for j in await pg.claim_next(pg_conn, "q", None, 2, NOW, 30_000, "n1", "w")}
    assert await steps.complete_job(pg_conn, a, "stale", 1, NOW) is None
    retried = await steps.fail_job(pg_conn, a, claimed[a].lease_token, Failure("boom"), NOW)
    assert retried.state is JobState.DELAYED and retried.run_at == NOW + 1000 and retried.lease_token is None
    assert retried.errors[0]["message"] == "boom"
    assert await steps.fail_job(pg_conn, a, claimed[a].lease_token, Failure("again"), NOW) is None  # stale now
    done = await steps.complete_job(pg_conn, b, claimed[b].lease_token, {"ok": True}, NOW)
    assert done.state is JobState.COMPLETED and done.result == {"ok": True} and done.finished_at == NOW
    assert await pg.promote_due(pg_conn, NOW + 999, 100) == []
    assert await pg.promote_due(pg_conn, NOW + 1000, 100) == [a]
    again, = await pg.claim_next(pg_conn, "q", None, 5, NOW + 1000, 30_000, "n1", "w")
    assert again.id == a and again.attempts_made == 2
    failed = await steps.fail_job(pg_conn, a, again.lease_token, Failure("boom"), NOW + 1000)
    assert failed.state is JobState.FAILED and failed.finished_at == NOW + 1000
    assert await counts.count_states(pg_conn) == {"q": {JobState.COMPLETED: 1, JobState.FAILED: 1}}


async def test_a_lease_that_ran_out_is_rescued_once(pg_conn):
    a, = await pg.add_jobs(pg_conn, [job(attempts=3)], NOW)
    leased, = await pg.claim_next(pg_conn, "q", None, 1, NOW, 1000, "n1", "w")
    assert await steps.rescue_expired(pg_conn, NOW + 999, "lease expired", 100) == []
    rescued, = [change.job for change in await steps.rescue_expired(pg_conn, NOW + 1000, "lease expired", 100)]
    assert rescued.id == a and rescued.state in (JobState.WAITING, JobState.DELAYED)
    assert await steps.rescue_expired(pg_conn, NOW + 5000, "lease expired", 100) == []
    assert await steps.complete_job(pg_conn, a, leased.lease_token, None, NOW + 1001) is None  # the old worker is late


async def test_counts_stay_exact_while_nodes_change_jobs_and_the_leader_folds(pg_url, pg_conn):
    """Four nodes enqueue, claim, complete and fail jobs while one folds the deltas
    every few ms; each read of the counts equals a count of the table in the same
    snapshot, and so does the last."""
    stop = asyncio.Event()
    nodes = [await asyncpg.connect(pg_url) for _ in range(5)]

    async def work(c: asyncpg.Connection, queue: str) -> None:
        for _ in range(40):
            await pg.add_jobs(c, [job(queue=queue, attempts=2) for _ in range(10)], NOW)
            for j in await pg.claim_next(c, queue, None, 7, NOW, 30_000, "n", "w"):
                if j.id % 3:
                    await steps.complete_job(c, j.id, j.lease_token, None, NOW)
                else:
                    await steps.fail_job(c, j.id, j.lease_token, Failure("x"), NOW)
            await c.execute("DELETE FROM jobs WHERE queue = $1 AND state = 'completed' AND id % 5 = 0", queue)

    async def folder(c: asyncpg.Connection) -> int:
        checks = 0
        while not stop.is_set():
            await counts.fold(c)
            async with c.transaction(isolation="repeatable_read"):
                seen = await counts.count_states(c)
                table = await c.fetch("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state")
            assert seen == {q: {JobState(s): n for q2, s, n in table if q2 == q} for q in {r[0] for r in table}}
            checks += 1
        return checks

    try:
        fold_task = asyncio.create_task(folder(nodes[4]))
        await asyncio.gather(*(work(c, f"q{i % 2}") for i, c in enumerate(nodes[:4])))
        stop.set()
        assert await fold_task > 3
        await counts.fold(pg_conn)
        table = await pg_conn.fetch("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state")
        assert await counts.count_states(pg_conn) == {
            q: {JobState(s): n for q2, s, n in table if q2 == q} for q in {r[0] for r in table}}
        assert await pg_conn.fetchval("SELECT count(*) FROM job_count_deltas") == 0
    finally:
        for c in nodes:
            await c.close()


async def test_release_heartbeat_retry_promote_cancel_and_clean(pg_conn):
    a, b, c = await pg.add_jobs(pg_conn, [job(), job(), job(run_at=NOW + 60_000)], NOW)
    first, second = await pg.claim_next(pg_conn, "q", None, 2, NOW, 10_000, "n1", "w")
    beat = await steps.heartbeat(pg_conn, first.id, first.lease_token, NOW + 5000, 10_000, {"step": 2})
    assert beat.lease_expires_at == NOW + 15_000 and beat.progress == {"step": 2}
    assert await steps.heartbeat(pg_conn, first.id, "stale", NOW + 5000, 10_000, None) is None
    released = await steps.release_job(pg_conn, first.id, first.lease_token, NOW + 6000)
    assert released.state is JobState.WAITING and released.attempts_made == 0 and released.lease_token is None
    assert await steps.release_job(pg_conn, first.id, first.lease_token, NOW + 6000) is None
    failed = await steps.fail_job(pg_conn, second.id, second.lease_token, Failure("no", retry=False), NOW)
    assert failed.state is JobState.FAILED
    assert await steps.retry_job(pg_conn, a, NOW) is None  # waiting: nothing to retry
    retried = await steps.retry_job(pg_conn, second.id, NOW + 1)
    assert retried.state is JobState.WAITING and retried.attempts_made == 0 and retried.finished_at is None
    assert await steps.promote_job(pg_conn, a, NOW) is None
    promoted = await steps.promote_job(pg_conn, c, NOW + 2)
    assert promoted.state is JobState.WAITING and promoted.run_at == NOW + 2
    cancelled = await steps.cancel_waiting(pg_conn, c, NOW + 3)
    assert cancelled.state is JobState.CANCELLED and await steps.cancel_waiting(pg_conn, c, NOW + 3) is None
    assert await steps.clean(pg_conn, "q", JobState.CANCELLED, NOW + 2, None) == 0
    assert await steps.clean(pg_conn, "q", JobState.CANCELLED, NOW + 3, None) == 1
    assert await pg.get_job(pg_conn, c) is None


async def test_jobs_of_a_node_that_died_are_orphans_and_a_live_nodes_are_not(pg_conn):
    await pg.add_jobs(pg_conn, [job(), job(), job()], NOW)
    mine = await pg.claim_next(pg_conn, "q", None, 1, NOW, None, "node-a", "w")
    theirs = await pg.claim_next(pg_conn, "q", None, 1, NOW, None, "node-b", "w")
    leased = await pg.claim_next(pg_conn, "q", None, 1, NOW, 30_000, "node-b", "w")
    await cluster.seen(pg_conn, "node-a", NOW)
    await cluster.seen(pg_conn, "node-b", NOW)
    assert [j.id for j in await pg.orphans(pg_conn, NOW + 4000, 5000)] == []
    await cluster.seen(pg_conn, "node-a", NOW + 5000)
    assert [j.id for j in await pg.orphans(pg_conn, NOW + 5000, 5000)] == [theirs[0].id]  # b went quiet
    assert leased[0].id not in [j.id for j in await pg.orphans(pg_conn, NOW + 99_000, 5000)] and mine


async def test_the_jobs_tables_statistics_are_refreshed_after_a_burst(pg_conn):
    """A burst of enqueues makes the statistics stale: the upkeep analyses the table
    once (the claim's plan then reads the claim's index), and not again at once."""
    from conftest import wait_for

    from queueapp.store.postgres import upkeep
    from queueapp.store.sql import jobs
    from queueapp.store.sql.dialect import POSTGRES, numbered

    await pg.add_jobs(pg_conn, [job() for _ in range(3000)], NOW)

    async def analysed() -> bool:
        async with pg_conn.transaction():
            return await upkeep.analyze_if_stale(pg_conn)

    await wait_for(analysed, timeout=10)  # once the inserts' counters are published (within a second)
    assert not await analysed()
    plan = "\n".join(r[0] for r in await pg_conn.fetch(
        "EXPLAIN SELECT id FROM jobs WHERE queue = 'q' AND state = 'waiting' ORDER BY priority, run_at, id LIMIT 10"))
    assert "jobs_claim" in plan and "Sort" not in plan, plan
    expiring = jobs.expiring(POSTGRES, NOW, 100)  # the expiry sweep, every second
    await pg_conn.execute("SET enable_seqscan = off")  # which index, not whether the planner likes it today
    plan = "\n".join(r[0] for r in await pg_conn.fetch(f"EXPLAIN {numbered(expiring.sql)}", *expiring.params))
    assert "jobs_expiring" in plan, plan


async def test_a_nul_character_postgresql_cannot_store_is_refused_as_bad_input(pg_url):
    """U+0000 in a name or in JSON: 400 (ValidationFailed), nothing stored, and the
    writes beside it in the same commit go on."""
    import pytest

    from queueapp.errors import ValidationFailed
    from queueapp.service import QueueService
    from queueapp.store.postgres.store import PostgresStore

    service = QueueService(PostgresStore(pg_url), background=False)
    await service.start()
    try:
        good = asyncio.ensure_future(service.add_job("fine", {"a": 1}))
        with pytest.raises(ValidationFailed, match="U\\+0000"):
            await service.add_job("x", {"key\u0000": 1})
        with pytest.raises(ValidationFailed, match="U\\+0000"):
            await service.add_job("bad\u0000name")
        assert (await good).name == "fine"
        assert [j.name for j in await service.list_jobs("default")] == ["fine"]
    finally:
        await service.stop()
