"""The SQLite store on its own: group commit, guarded transitions, the state machine."""

from __future__ import annotations

import asyncio

import pytest

from queueapp.errors import Conflict
from queueapp.model import TRANSITIONS, JobState, NewJob
from queueapp.retry import Failure
from queueapp.store import SqliteStore

NOW = 1_800_000_000_000


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "store.db", "full")
    await s.open()
    yield s
    await s.close()


def new_job(**kw) -> NewJob:
    return NewJob(**{"queue": "q", "name": "n", "data": {}, "priority": 3, "attempts": 2,
                     "run_at": NOW, "options": {"backoff": {"type": "fixed", "delay": 0}}, **kw})


async def test_concurrent_writes_share_commits(store):
    before = store.commit_stats.commits
    added = await asyncio.gather(*(store.add_jobs([new_job()], NOW) for _ in range(300)))
    commits = store.commit_stats.commits - before
    assert len({a[0].job.id for a in added}) == 300
    assert commits < 30, commits  # one fsync acknowledged many enqueues


async def test_every_transition_the_store_makes_is_an_allowed_edge(store):
    changes = []
    (a,) = await store.add_jobs([new_job()], NOW)
    (b,) = await store.add_jobs([new_job(run_at=NOW + 10)], NOW)
    (c,) = await store.add_jobs([new_job(attempts=1)], NOW)
    changes.append(await store.cancel_job(b.job.id, NOW))  # delayed -> cancelled
    changes.append(await store.retry_job(b.job.id, NOW))  # cancelled -> waiting
    claimed = {j.id: j for j in await store.claim_jobs([a.job.id, b.job.id, c.job.id], NOW, 1000, worker="w")}
    changes.append(await store.fail_job(a.job.id, claimed[a.job.id].lease_token, Failure("x"), NOW))
    changes.append(await store.complete_job(b.job.id, claimed[b.job.id].lease_token, 1, NOW))
    changes.append(await store.fail_job(c.job.id, claimed[c.job.id].lease_token, Failure("x"), NOW))
    changes.append(await store.retry_job(c.job.id, NOW))  # failed -> waiting
    (again,) = await store.claim_jobs([c.job.id], NOW, 1000, worker="w")
    changes.append(await store.release_job(c.job.id, again.lease_token, NOW))
    (d,) = await store.add_jobs([new_job(run_at=NOW + 5)], NOW)
    assert await store.promote_jobs([(d.job.id, NOW + 4)], NOW + 5) == []  # not the time it waits for
    assert await store.promote_jobs([(d.job.id, NOW + 5)], NOW + 5) == [d.job.id]
    for change in changes:
        assert change is not None
        assert change.job.state in TRANSITIONS[change.prior], (change.prior, change.job.state)
    assert [c.job.state for c in changes] == [
        JobState.CANCELLED, JobState.WAITING, JobState.WAITING, JobState.COMPLETED,
        JobState.FAILED, JobState.WAITING, JobState.WAITING]


async def test_a_stale_token_or_state_changes_nothing(store):
    (a,) = await store.add_jobs([new_job()], NOW)
    (leased,) = await store.claim_jobs([a.job.id], NOW, 1000, worker="w")
    assert await store.claim_jobs([a.job.id], NOW, 1000, worker="w") == []  # already active
    assert await store.complete_job(a.job.id, "not-the-token", None, NOW) is None
    assert await store.heartbeat(a.job.id, "not-the-token", NOW, 1000, 50) is None
    assert await store.release_job(a.job.id, "not-the-token", NOW) is None
    job = await store.get_job(a.job.id)
    assert job.state is JobState.ACTIVE and job.progress == 0 and job.lease_token == leased.lease_token
    assert await store.complete_job(a.job.id, leased.lease_token, {"r": 1}, NOW) is not None
    with pytest.raises(Conflict):
        await store.cancel_job(a.job.id, NOW)
    with pytest.raises(Conflict):
        await store.retry_job(a.job.id, NOW)


async def test_errors_of_each_attempt_are_appended(store):
    (a,) = await store.add_jobs([new_job(attempts=3)], NOW)
    for attempt in (1, 2):
        (leased,) = await store.claim_jobs([a.job.id], NOW + attempt, 1000, worker="w")
        await store.fail_job(a.job.id, leased.lease_token, Failure(f"e{attempt}"), NOW + attempt)
    job = await store.get_job(a.job.id)
    assert [(e["attempt"], e["message"]) for e in job.errors] == [(1, "e1"), (2, "e2")]
    assert job.error == "e2" and job.attempts_made == 2


def test_the_sweeps_read_through_their_partial_indexes(tmp_path):
    """SQLite uses a partial index only for a condition spelt as the index's own: the
    expiry sweep, every second, must never scan the whole table (it held a server up
    for 100 ms at a time under a million waiting jobs when spelt otherwise)."""
    import sqlite3

    from queueapp.store.sql import jobs
    from queueapp.store.sql.dialect import SQLITE
    from queueapp.store.sqlite.migrate import migrate

    conn = sqlite3.connect(tmp_path / "plan.db")
    migrate(conn)
    statement = jobs.expiring(SQLITE, 1, 100)
    plan = " ".join(str(r) for r in conn.execute(f"EXPLAIN QUERY PLAN {statement.sql}", statement.params))
    assert "jobs_expiring" in plan, plan
    conn.close()
