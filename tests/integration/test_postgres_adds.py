"""Keyed enqueues on a real PostgreSQL server (tests/pg.py), from several nodes at
once: one unique key makes one job whatever node adds it, as does one jobId; each
unique mode; dependencies by id and by "#n", already finished, failed or missing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from queueapp.errors import NotFound
from queueapp.model import JobState, NewJob, Unique
from queueapp.store.postgres.adds import add_keyed

NOW = 1_800_000_000_000


def new(data: dict | None = None, unique: Unique | None = None, run_at: int = NOW, **options) -> NewJob:
    deps = tuple(options.pop("dependsOn", ()))
    return NewJob("q", "n", data or {}, 3, 3, run_at, options, job_key=options.pop("jobId", None),
                  unique=unique, depends_on=deps)


async def add(pg_conn, jobs: list[NewJob], now: int = NOW):
    async with pg_conn.transaction():
        return await add_keyed(pg_conn, jobs, now)


async def test_twenty_enqueues_of_one_key_from_five_nodes_make_one_job(pg_url, pg_conn):
    nodes = [await asyncpg.connect(pg_url) for _ in range(5)]
    key = Unique("acct-1", 0, "reject", ("waiting", "delayed", "active"))
    keyed = [NewJob("q", "n", {"i": i}, 3, 3, NOW, {}, job_key="same-id") for i in range(20)]
    async def node(n: int, jobs: list[NewJob]) -> list:
        return [await add(nodes[n], [job]) for job in jobs[n::5]]  # a connection does one thing at a time

    try:
        answers = [a for got in await asyncio.gather(*(node(n, [new({"i": i}, key) for i in range(20)])
                                                       for n in range(5))) for a in got]
        again = [a for got in await asyncio.gather(*(node(n, keyed) for n in range(5))) for a in got]
    finally:
        for c in nodes:
            await c.close()
    made = [k[0] for k in answers]
    assert sum(k.created for k in made) == 1 and len({k.job.id for k in made}) == 1
    assert sum(k[0].created for k in again) == 1 and len({k[0].job.id for k in again}) == 1
    assert await pg_conn.fetchval("SELECT count(*) FROM jobs") == 2


async def test_replace_and_debounce_change_the_kept_job(pg_conn):
    replace = Unique("r", 0, "replace", ("waiting", "delayed", "active"))
    debounce = Unique("d", 0, "debounce", ("waiting", "delayed", "active"))
    first, = await add(pg_conn, [new({"v": 1}, replace)])
    kept, = await add(pg_conn, [new({"v": 2}, replace)])
    assert not kept.created and kept.job.id == first.job.id and kept.job.data == {"v": 2}
    late, = await add(pg_conn, [new({"v": 1}, debounce, run_at=NOW + 100)])
    moved, = await add(pg_conn, [new({"v": 3}, debounce, run_at=NOW + 5000)], NOW + 50)
    assert moved.job.id == late.job.id and moved.job.run_at == NOW + 5000
    assert moved.moved == (JobState.DELAYED, NOW + 100) and moved.job.data == {"v": 3}


async def test_dependencies_by_id_and_by_position(pg_conn):
    done, = await add(pg_conn, [new()])
    await pg_conn.execute("UPDATE jobs SET state = 'completed', finished_at = 1 WHERE id = $1", done.job.id)
    gone, = await add(pg_conn, [new()])
    await pg_conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = 1 WHERE id = $1", gone.job.id)
    fan = await add(pg_conn, [new(), new(), new(dependsOn=["#0", "#1", str(done.job.id)])])
    parent = fan[2].job
    assert parent.state is JobState.BLOCKED and parent.options["dependsOn"] == [
        str(fan[0].job.id), str(fan[1].job.id), str(done.job.id)]
    edges = await pg_conn.fetch("SELECT depends_on FROM job_dependencies WHERE job_id = $1 ORDER BY 1", parent.id)
    assert [e[0] for e in edges] == [fan[0].job.id, fan[1].job.id]  # the completed one is done already
    failed, = await add(pg_conn, [new(dependsOn=[str(gone.job.id)])])
    assert failed.job.state is JobState.FAILED and failed.job.error == f"dependency {gone.job.id} cancelled"
    tolerant, = await add(pg_conn, [new(dependsOn=[str(gone.job.id)], allowDependencyFailure=True)])
    assert tolerant.job.state is JobState.WAITING
    count = await pg_conn.fetchval("SELECT count(*) FROM jobs")
    for refs in (["#0"], ["999999"]):
        with pytest.raises(NotFound):
            await add(pg_conn, [new(dependsOn=refs)])
    assert await pg_conn.fetchval("SELECT count(*) FROM jobs") == count  # nothing of a refused request
