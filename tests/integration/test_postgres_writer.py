"""The PostgreSQL store's ordered writer on a real server (tests/pg.py): hooks run in
commit order; a write whose caller stops waiting still commits and runs its hook; a
write that raises commits nothing; a database that went away is a 503-kind error,
and the next write reconnects."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from queueapp.errors import NotFound, StoreUnavailable
from queueapp.store.postgres.writer import OrderedWriter


@pytest.fixture
async def writer(pg_url):
    w = OrderedWriter(lambda: asyncpg.connect(pg_url))
    await w.start()
    w.url = pg_url  # type: ignore[attr-defined]
    yield w
    await w.close()


async def enqueue(conn, n: int) -> int:
    return await conn.fetchval(
        "INSERT INTO jobs (queue, name, state, priority, attempts, created_at, run_at, data)"
        " VALUES ('q', 'n', 'waiting', 3, 1, 0, 0, $1::jsonb) RETURNING id", f'{{"n": {n}}}')


async def test_hooks_run_in_commit_order_and_a_caller_that_leaves_changes_nothing(writer):
    seen: list[int] = []
    writes = [asyncio.ensure_future(writer.submit(enqueue, n, then=seen.append)) for n in range(50)]
    await asyncio.sleep(0)  # every write is on its way
    writes[10].cancel()  # its caller stops waiting: the write and its hook go on
    done = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(done[10], asyncio.CancelledError)
    await asyncio.sleep(0.1)
    assert seen == sorted(seen) and len(seen) == 50  # ids grow with commits: hooks in commit order
    conn = await asyncpg.connect(writer.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 50
    finally:
        await conn.close()


async def test_a_write_that_raises_commits_nothing_and_a_lost_connection_is_unavailable(writer):
    async def half(conn) -> None:
        await enqueue(conn, 1)
        raise NotFound("no such thing")

    hooked: list[object] = []
    with pytest.raises(NotFound):
        await writer.submit(half, then=hooked.append)
    assert hooked == []
    await writer._conn.close()  # closed under the writer
    assert await writer.submit(enqueue, 2) > 0  # a closed connection is replaced
    conn = await asyncpg.connect(writer.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 1
        pid = await writer.submit(lambda c: c.fetchval("SELECT pg_backend_pid()"))
        await conn.execute("SELECT pg_terminate_backend($1)", pid)  # the server ends the writer's session
    finally:
        await conn.close()
    reach = writer._connect
    writer._connect = lambda: asyncpg.connect("postgresql://queueapp@127.0.0.1:1/none", timeout=2)
    await writer._conn.close()
    with pytest.raises(StoreUnavailable):  # and the database cannot be reached
        await writer.submit(enqueue, 3)
    writer._connect = reach
    assert await writer.submit(enqueue, 4) > 0  # reachable again: the next write reconnects


async def test_a_refused_write_in_a_batch_leaves_out_only_itself(writer):
    async def refused(conn) -> None:
        await enqueue(conn, 99)
        raise NotFound("no such thing")

    seen: list[int] = []
    writes = [asyncio.ensure_future(writer.submit(refused if n == 3 else enqueue, *(() if n == 3 else (n,)),
                                                  then=seen.append)) for n in range(10)]
    done = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(done[3], NotFound) and len(seen) == 9 and seen == sorted(seen)
    assert writer.stats.commits < 9  # they shared commits
    conn = await asyncpg.connect(writer.url)
    try:
        assert [r[0] for r in await conn.fetch("SELECT data->>'n' FROM jobs ORDER BY id")] == [
            str(n) for n in range(10) if n != 3]
    finally:
        await conn.close()


async def test_concurrent_enqueues_share_one_statement_and_each_gets_its_own_jobs(pg_url):
    from queueapp.model import NewJob
    from queueapp.store.postgres.store import PostgresStore

    store = PostgresStore(pg_url)
    await store.open()
    try:
        seen: list[list[int]] = []
        calls = [store.add_jobs([NewJob("q", "n", {"caller": c, "i": i}, 3, 1, 1000) for i in range(c % 3 + 1)],
                                1000, then=lambda added: seen.append([a.id for a in added])) for c in range(60)]
        answers = await asyncio.gather(*calls)
        assert [len(a) for a in answers] == [c % 3 + 1 for c in range(60)]
        every = [a.id for added in answers for a in added]
        assert len(set(every)) == len(every) and seen == sorted(seen)  # hooks in commit order
        assert store.commit_stats.commits < 30  # merged into few transactions
        for c, added in enumerate(answers):
            got = [await store.get_job(a.id) for a in added]
            assert [j.data for j in got] == [{"caller": c, "i": i} for i in range(c % 3 + 1)]
    finally:
        await store.close()


async def test_one_node_folds_the_count_deltas_as_it_goes(pg_url, pg_conn):
    from queueapp.model import JobState, NewJob
    from queueapp.store.postgres import counts
    from queueapp.store.postgres.store import FOLD_EVERY, PostgresStore

    store = PostgresStore(pg_url)
    await store.open()
    try:
        for _ in range(3):
            await asyncio.gather(*(store.add_jobs([NewJob("q", "n", {}, 3, 1, 1000)], 1000)
                                   for _ in range(FOLD_EVERY)))
    finally:
        await store.close()
    assert await pg_conn.fetchval("SELECT count(*) FROM job_count_deltas") < FOLD_EVERY + 300
    assert await pg_conn.fetchval("SELECT count(*) FROM job_counts") == 1
    assert await counts.count_states(pg_conn) == {"q": {JobState.WAITING: 3 * FOLD_EVERY}}


async def test_durability_means_synchronous_commit_on_postgresql(pg_url):
    """normal: commits are acknowledged before the server flushes them; full: the
    server's own setting (on by default)."""
    from queueapp.store import open_store

    for durability, expected in (("normal", "off"), ("full", "on")):
        store = open_store(pg_url, durability)
        await store.open()
        try:
            assert await store.submit(lambda conn: conn.fetchval("SHOW synchronous_commit")) == expected
        finally:
            await store.close()
