"""options.expireInMs over a real store: a job not started by its expiry time ends
expired (a new terminal state), by the claim that would have started it or by the
sweep; no attempt ever starts late; a retry brings it back without an expiry."""

from __future__ import annotations

import asyncio

import pytest

from queueapp.clock import FakeClock
from queueapp.model import JobState
from queueapp.store import SqliteStore, table_problems
from queueapp.store.sqlite.connection import connect


async def test_a_claim_past_the_expiry_ends_the_job_instead_of_starting_it(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    with service.dispatcher.events.subscribe() as events:
        job = await service.add_job("late", {}, {"expireInMs": 5_000})
        clock.advance(5_000)
        assert await service.workers.lease("default", None, 10, 60_000, 0) == []
        await events.until(lambda e: e.type == "expired" and e.job_id == job.id)
    stored = await service.get_job(job.id)
    assert stored.state is JobState.EXPIRED and stored.started_at is None and stored.finished_at == clock.now_ms()
    metrics = service.get_queue_metrics()
    assert metrics["waiting"] == 0 and service.dispatcher.metrics.peek("default").counts[JobState.EXPIRED] == 1
    assert await service.audit() == []


async def test_the_sweep_ends_pending_jobs_whose_time_is_up(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    delayed = await service.add_job("later", {}, {"delay": 60_000, "expireInMs": 5_000})
    waiting = await service.add_job("paused-q", {}, {"expireInMs": 5_000}, queue="held")
    await service.pause("held")
    keeps = await service.add_job("later", {}, {"delay": 60_000, "expireInMs": 120_000})
    clock.advance(6_000)
    assert await service.expiry.tick() == 2
    assert (await service.get_job(delayed.id)).state is JobState.EXPIRED
    assert (await service.get_job(waiting.id)).state is JobState.EXPIRED
    assert (await service.get_job(keeps.id)).state is JobState.DELAYED
    assert service.dispatcher.ledger.timers.next_due() == keeps.run_at  # the expired one left the timers
    assert service.get_queue_metrics("held")["paused"] == 0
    assert await service.audit() == []


async def test_no_attempt_starts_after_its_expiry_under_load(make_service, registry, db_path):
    started: dict[int, float] = {}

    @registry.handler("slow")
    async def slow(job):
        started[job.id] = 1
        await asyncio.sleep(0.02)

    service = await make_service(concurrency=1)
    with service.dispatcher.events.subscribe() as events:
        jobs = [await service.add_job("slow", {"i": i}, {"expireInMs": 150}) for i in range(40)]
        ended = set()
        while len(ended) < len(jobs):
            event = await events.until(lambda e: e.type in ("completed", "expired"), timeout=20)
            ended.add(event.job_id)
    states = [(await service.get_job(j.id)).state for j in jobs]
    assert JobState.COMPLETED in states and JobState.EXPIRED in states  # some of each
    for job in jobs:
        stored = await service.get_job(job.id)
        if stored.started_at is not None:
            assert stored.started_at < stored.created_at + 150
        else:
            assert stored.state is JobState.EXPIRED and job.id not in started
    assert await service.audit() == []
    await service.stop()
    if isinstance(service.store, SqliteStore):  # the table's own invariants, read off the file
        conn = connect(db_path)
        try:
            assert table_problems(conn) == []
        finally:
            conn.close()


async def test_an_expired_job_is_retried_without_its_expiry(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    job = await service.add_job("x", {}, {"expireInMs": 1_000})
    clock.advance(1_000)
    assert await service.expiry.tick() == 1
    retried = await service.retry_job(job.id)
    assert retried.state is JobState.WAITING
    clock.advance(3_600_000)
    [leased] = await service.workers.lease("default", None, 1, 60_000, 0)
    assert leased.id == job.id and leased.state is JobState.ACTIVE
    assert await service.audit() == []


@pytest.mark.parametrize("bad", [0, -1, "5", 2**40, True])
async def test_bad_expiry_is_refused(make_client, bad):
    client = await make_client()
    r = await client.post("/queues/jobs", json={"name": "x", "options": {"expireInMs": bad}})
    assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "options.expireInMs"
