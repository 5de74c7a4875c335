"""options.unique over a real store: at most one job of a key in the states named,
or finished within ttlMs; reject, replace and debounce decided in the enqueue's own
transaction, so concurrent enqueues of one key create one job."""

from __future__ import annotations

import asyncio

import pytest

from queueapp.clock import FakeClock
from queueapp.model import JobState
from queueapp.retry import Failure


def unique(key: str, **more) -> dict:
    return {"unique": {"key": key, **more}}


async def test_twenty_concurrent_enqueues_of_one_key_create_one_job(make_client):
    client = await make_client(audit_interval_ms=60_000)
    answers = await asyncio.gather(*[
        client.post("/queues/jobs", json={"name": "sync", "data": {"n": i}, "options": unique("acct-1")})
        for i in range(20)])
    statuses = sorted(r.status for r in answers)
    ids = {(await r.json())["id"] for r in answers}
    assert statuses == [200] * 19 + [201] and len(ids) == 1
    assert (await (await client.get("/queues/metrics")).json())["waiting"] == 1
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_reject_holds_while_pending_or_running_and_for_ttl_after_finishing(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    first = await service.add_job("sync", {"n": 1}, unique("k", ttlMs=60_000))
    again = await service.add_job("sync", {"n": 2}, unique("k", ttlMs=60_000))
    assert again.id == first.id and again.data == {"n": 1}
    [leased] = await service.workers.lease("default", None, 1, 60_000, 0)
    assert (await service.add_job("sync", {}, unique("k", ttlMs=60_000))).id == first.id  # active
    await service.workers.complete(leased.id, leased.lease_token, None)
    clock.advance(30_000)
    assert (await service.add_job("sync", {}, unique("k", ttlMs=60_000))).id == first.id  # finished 30 s ago
    clock.advance(31_000)
    later = await service.add_job("sync", {}, unique("k", ttlMs=60_000))
    assert later.id != first.id and later.state is JobState.WAITING
    # without a ttl, a finished job does not hold its key; a failed one neither
    [leased] = await service.workers.lease("default", None, 1, 60_000, 0)
    await service.workers.fail(leased.id, leased.lease_token, Failure("no", retry=False))
    assert (await service.add_job("sync", {}, unique("k"))).id not in (first.id, later.id)
    assert await service.audit() == []


async def test_the_states_named_are_the_ones_that_hold_the_key(make_service):
    service = await make_service(background=False)
    first = await service.add_job("sync", {}, unique("k", states=["waiting"]))
    await service.workers.lease("default", None, 1, 60_000, 0)
    second = await service.add_job("sync", {}, unique("k", states=["waiting"]))
    assert second.id != first.id  # the first is active: it does not hold the key


async def test_replace_gives_the_waiting_job_the_new_data_but_not_a_running_one(make_service):
    service = await make_service(background=False)
    first = await service.add_job("sync", {"v": 1}, unique("k", mode="replace"))
    replaced = await service.add_job("sync", {"v": 2}, unique("k", mode="replace"))
    assert replaced.id == first.id and replaced.data == {"v": 2}
    assert (await service.get_job(first.id)).data == {"v": 2}
    [leased] = await service.workers.lease("default", None, 1, 60_000, 0)
    kept = await service.add_job("sync", {"v": 3}, unique("k", mode="replace"))
    assert kept.id == first.id and kept.data == {"v": 2} and kept.state is JobState.ACTIVE
    assert await service.audit() == []


async def test_debounce_moves_the_pending_job_to_the_new_time(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    first = await service.add_job("sync", {"v": 1}, {**unique("k", mode="debounce"), "delay": 10_000})
    clock.advance(6_000)
    moved = await service.add_job("sync", {"v": 2}, {**unique("k", mode="debounce"), "delay": 10_000})
    assert moved.id == first.id and moved.data == {"v": 2}
    assert moved.run_at == clock.now_ms() + 10_000 and moved.state is JobState.DELAYED
    assert service.dispatcher.ledger.timers.next_due() == moved.run_at  # memory moved it too
    assert await service.audit() == []
    now = await service.add_job("sync", {"v": 3}, unique("k", mode="debounce"))  # no delay: due now
    assert now.id == first.id and now.state is JobState.WAITING
    assert service.dispatcher.ledger.timers.next_due() is None
    metrics = service.get_queue_metrics()
    assert (metrics["waiting"], metrics["delayed"]) == (1, 0)
    assert await service.audit() == []


async def test_a_bulk_can_hold_one_key_twice_and_keeps_the_first(make_client):
    client = await make_client()
    r = await client.post("/queues/jobs/bulk", json={"jobs": [
        {"name": "a", "options": unique("k")}, {"name": "b", "options": unique("k")}, {"name": "c"}]})
    jobs = (await r.json())["jobs"]
    assert r.status == 201 and jobs[0]["id"] == jobs[1]["id"] != jobs[2]["id"]
    assert jobs[1]["options"]["unique"]["key"] == "k"


@pytest.mark.parametrize("bad", [{"key": ""}, {"key": "k", "mode": "later"}, {"key": "k", "ttlMs": -1},
                                 {"key": "k", "states": []}, {"key": "k", "states": ["completed"]},
                                 {"key": "k" * 256}, {"mode": "reject"}, {"key": "k", "extra": 1}])
async def test_bad_unique_options_are_refused(make_client, bad):
    client = await make_client()
    r = await client.post("/queues/jobs", json={"name": "x", "options": {"unique": bad}})
    body = await r.json()
    assert r.status == 400 and body["error"]["details"][0]["field"].startswith("options.unique")
    assert (await (await client.get("/queues/metrics")).json())["total"] == 0


async def test_a_large_bulk_with_unique_keys_takes_the_keyed_way(make_client):
    client = await make_client(audit_interval_ms=60_000)
    jobs = [{"name": "sync", "data": {"i": i}, "options": unique(f"k{i % 50}")} for i in range(200)]
    r = await client.post("/queues/jobs/bulk?return=ids", json={"jobs": jobs})
    ids = (await r.json())["ids"]
    assert len(ids) == 200 and len(set(ids)) == 50 and ids[:50] == ids[50:100]
    assert (await (await client.get("/queues/metrics")).json())["waiting"] == 50
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_a_blocked_job_holds_its_key_like_a_waiting_one(make_service):
    service = await make_service(background=False)
    first = await service.add_job("a", {})
    blocked = await service.add_job("b", {}, {**unique("k"), "dependsOn": [str(first.id)]})
    assert blocked.state is JobState.BLOCKED
    again = await service.add_job("b", {}, {**unique("k"), "dependsOn": [str(first.id)]})
    assert again.id == blocked.id


async def test_a_debounce_committed_while_its_promotion_is_in_flight_keeps_the_new_time(make_service):
    """The dispatcher has taken the due timer and its promotion is on the way to the
    writer when a debounce moves the job later: the promotion must not make it
    waiting (memory would place it at its old time, and a second timer would fire)."""
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    job = await service.add_job("sync", {"n": 1}, {**unique("k", mode="debounce"), "delay": 10})
    clock.advance(10)
    service.dispatcher.wakeup.wake()
    await asyncio.sleep(0)  # the loop pops the due timer and spawns the promotion
    moved = await service.add_job("sync", {"n": 2}, {**unique("k", mode="debounce"), "delay": 50})
    assert moved.id == job.id and moved.state is JobState.DELAYED
    await asyncio.sleep(0.05)  # the promotion commits (and changes nothing)
    assert (await service.get_job(job.id)).state is JobState.DELAYED
    assert await service.dispatcher.audit() == []
    clock.advance(50)
    service.dispatcher.wakeup.wake()
    [leased] = await service.workers.lease("default", None, 1, 60_000, 1000)
    assert leased.id == job.id and leased.data == {"n": 2}
    assert await service.dispatcher.audit() == []


async def test_a_debounce_committed_while_its_claim_is_in_flight_is_claimed_at_its_new_place(make_service):
    """A worker's lease has taken the job and its claim is on the way to the writer
    when a debounce moves it (still waiting, due later): the claim leaves it, and
    the lease takes it again from its new place."""
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    job = await service.add_job("sync", {"n": 1}, unique("k", mode="debounce"))
    lease = asyncio.create_task(service.workers.lease("default", None, 1, 60_000, 0))
    await asyncio.sleep(0)  # the lease takes the job; its claim is not yet written
    clock.advance(5)
    moved = await service.add_job("sync", {"n": 2}, unique("k", mode="debounce"))
    assert moved.id == job.id and moved.run_at == job.run_at + 5
    [leased] = await lease
    assert leased.id == job.id and leased.data == {"n": 2} and leased.run_at == moved.run_at
    assert await service.dispatcher.audit() == []


async def test_a_retry_never_makes_two_unfinished_jobs_of_one_unique_key(make_service):
    """A failed job's key was taken by a new job meanwhile: retrying the failed one
    (alone: 409; among many: left alone) would make two; of two failed ones with a
    free key, a bulk retry brings back the first only."""
    from queueapp.errors import Conflict
    from queueapp.service_browse import make_search

    service = await make_service(background=False)
    first = await service.add_job("sync", {"n": 1}, unique("k"))
    [leased] = await service.workers.lease("default", None, 1, 60_000, 0)
    await service.workers.fail(leased.id, leased.lease_token, Failure("down", retry=False))
    second = await service.add_job("sync", {"n": 2}, unique("k"))  # the key is free: a new job
    assert second.id != first.id
    with pytest.raises(Conflict, match="held by an unfinished job"):
        await service.retry_job(first.id)
    acted = await service.browse.act("retry", make_search("default", state="failed"))
    assert acted.changed == 0
    await service.cancel_job(second.id)
    other = await service.add_job("sync", {"n": 3}, unique("k"))
    await service.cancel_job(other.id)
    acted = await service.browse.act("retry", make_search("default"), ids=[first.id, second.id, other.id])
    assert acted.ids == [first.id]  # one of the key comes back, the first
    assert await service.dispatcher.audit() == []
