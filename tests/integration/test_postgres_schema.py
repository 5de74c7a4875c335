"""The PostgreSQL store's schema on a real server (tests/pg.py): its migrations apply
once, also when three nodes start together; the schema holds the state machine as the
SQLite one does; claims read the jobs table through the index that matches their
order; and FOR UPDATE SKIP LOCKED hands one job to one claimer only."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from conftest import database_name

from queueapp.store.postgres.migrate import migrate
from queueapp.store.sqlite.migrate import available_migrations

CLAIM = ("SELECT id FROM jobs WHERE queue = $1 AND state = 'waiting' ORDER BY priority, run_at, id"
         " LIMIT $2 FOR UPDATE SKIP LOCKED")





@pytest.fixture
def database(postgres, request):
    """An empty database: these tests apply the migrations themselves."""
    return postgres.create_database(database_name(request, "e_"))


async def test_migrations_apply_once_even_when_three_nodes_start_together(database):
    conns = [await asyncpg.connect(database) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(len(a) for a in applied) == [0, 0, len(available_migrations("postgres"))]
        assert await migrate(conns[0]) == []
        versions = [r[0] for r in await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in available_migrations("postgres")]
        cleanup = await conns[0].fetchrow("SELECT job_name, cron FROM schedules WHERE name = 'cleanup'")
        assert tuple(cleanup) == ("queueapp.clean", "0 0 * * *")
    finally:
        for c in conns:
            await c.close()


async def test_the_schema_refuses_what_the_state_machine_forbids(database):
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn)
        insert = ("INSERT INTO jobs (queue, name, state, priority, attempts, created_at, run_at)"
                  " VALUES ('q', 'n', $1, $2, $3, 0, 0)")
        await conn.execute(insert, "waiting", 3, 3)
        for state, priority, attempts in [("running", 3, 3), ("waiting", 0, 3), ("waiting", 6, 3),
                                          ("waiting", 3, 0), ("waiting", 3, 101)]:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(insert, state, priority, attempts)
        await conn.execute("INSERT INTO jobs (queue, name, state, priority, attempts, created_at, run_at, job_key)"
                           " VALUES ('q', 'n', 'waiting', 3, 3, 0, 0, 'k')")
        with pytest.raises(asyncpg.UniqueViolationError):  # options.jobId is unique per queue
            await conn.execute("INSERT INTO jobs (queue, name, state, priority, attempts, created_at, run_at,"
                               " job_key) VALUES ('q', 'n', 'waiting', 3, 3, 0, 0, 'k')")
        with pytest.raises(asyncpg.CheckViolationError):  # a rate needs both its numbers
            await conn.execute("INSERT INTO group_policies (queue, rate_max, updated_at) VALUES ('q', 5, 0)")
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 2
    finally:
        await conn.close()


async def test_claims_read_the_index_in_their_order_and_never_share_a_job(database):
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO jobs (queue, name, state, priority, attempts, created_at, run_at)"
            " SELECT 'q' || (i % 10), 'n', CASE WHEN i % 3 = 0 THEN 'completed' ELSE 'waiting' END,"
            " 1 + i % 5, 3, i, i FROM generate_series(1, 50000) AS i")
        await conn.execute("ANALYZE jobs")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + CLAIM.replace("$1", "'q3'").replace("$2", "100")))
        assert "jobs_claim" in plan and "Sort" not in plan, plan
        claimers = [await asyncpg.connect(database) for _ in range(8)]

        async def claim(c: asyncpg.Connection) -> list[int]:
            got = []
            while True:
                async with c.transaction():
                    ids = [r[0] for r in await c.fetch(CLAIM, "q3", 50)]
                    if not ids:
                        return got
                    await c.execute("UPDATE jobs SET state = 'active' WHERE id = ANY($1::bigint[])", ids)
                got += ids

        try:
            claimed = await asyncio.gather(*(claim(c) for c in claimers))
        finally:
            for c in claimers:
                await c.close()
        every = [job_id for ids in claimed for job_id in ids]
        waiting = await conn.fetchval("SELECT count(*) FROM jobs WHERE queue = 'q3' AND state = 'active'")
        assert len(every) == len(set(every)) == waiting > 3000
        assert sum(1 for ids in claimed if ids) > 1  # they shared the work
    finally:
        await conn.close()
