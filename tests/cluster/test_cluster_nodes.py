"""Nodes of a cluster as libraries in one process, each with its own connections to
one real PostgreSQL database: claims through the database, wake-ups between nodes,
the leader's chores, cancels across nodes, counts and the self-audit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from queueapp.errors import Conflict
from queueapp.flow import GroupLimits
from queueapp.model import JobState
from queueapp.service import QueueService
from queueapp.store.postgres.store import PostgresStore
from queueapp.workers.registry import HandlerRegistry
from tests.conftest import wait_for


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[QueueService] = []

    async def make(name: str, registry: HandlerRegistry | None = None, **kwargs: Any) -> QueueService:
        service = QueueService(PostgresStore(pg_url, node=name, cluster=True), registry=registry, **kwargs)
        await service.start()
        made.append(service)
        return service

    yield make
    for service in reversed(made):
        await service.stop(grace_s=2)


async def test_a_second_node_joins_and_a_node_without_cluster_mode_is_refused(pg_url: str, nodes: Any) -> None:
    from queueapp.store import DatabaseInUse

    await nodes("a")
    await nodes("b")
    alone = QueueService(PostgresStore(pg_url, node="alone"))
    with pytest.raises(Exception) as refused:
        await alone.start()
    assert isinstance(refused.value, DatabaseInUse) or "cluster" in str(refused.value)


async def test_an_enqueue_on_one_node_wakes_a_long_poll_on_another(nodes: Any) -> None:
    a = await nodes("a")
    b = await nodes("b")
    b.dispatcher.leases.look_every_s = 60  # no look of its own: only the notification can wake it
    b.dispatcher.ledger.queue("mail")  # known already: its view finding it anew wakes nothing
    poll = asyncio.create_task(b.workers.lease("mail", None, 1, 30_000, 30_000))
    await wait_for(lambda: b.dispatcher.leases.polls_waiting() == 1)
    job = await a.add_job("send", {"n": 1}, queue="mail")
    leased = await asyncio.wait_for(poll, 10)  # well before its 30 s: woken by a's enqueue
    assert [j.id for j in leased] == [job.id]
    done = await a.workers.complete(job.id, leased[0].lease_token, {"ok": True})
    assert done.state is JobState.COMPLETED
    assert await a.audit() == [] and await b.audit() == []


async def test_handlers_on_every_node_run_each_job_once(nodes: Any) -> None:
    runs: dict[int, list[str]] = {}

    def registry_of(node: str) -> HandlerRegistry:
        registry = HandlerRegistry()

        async def work(job: Any) -> dict[str, Any]:
            runs.setdefault(int(job.id), []).append(node)
            await asyncio.sleep(0.001)
            return {"by": node}

        registry.register("work", work)
        return registry

    a = await nodes("a", registry_of("a"), concurrency=4)
    b = await nodes("b", registry_of("b"), concurrency=4)
    ids = [j.id for j in await asyncio.gather(*(a.add_job("work", {"i": i}) for i in range(100)))]
    ids += [j.id for j in await asyncio.gather(*(b.add_job("work", {"i": i}) for i in range(100)))]
    await wait_for(lambda: len(runs) == 200, timeout=30)
    await wait_for(lambda: a.dispatcher.ledger.active == {} and b.dispatcher.ledger.active == {})
    assert sorted(runs) == sorted(ids)
    assert all(len(by) == 1 for by in runs.values()), "a job ran twice"
    assert {n for by in runs.values() for n in by} == {"a", "b"}
    await a.cluster.view.refresh()
    assert a.get_queue_metrics()["completed"] == 200
    assert await a.audit() == [] and await b.audit() == []


async def test_cancelling_a_job_running_on_another_node_stops_its_handler(nodes: Any) -> None:
    started = asyncio.Event()
    stopped = asyncio.Event()
    registry = HandlerRegistry()

    async def slow(job: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise

    registry.register("slow", slow)
    a = await nodes("a", registry)
    b = await nodes("b")
    job = await b.add_job("slow")
    await asyncio.wait_for(started.wait(), 10)
    cancelled = await b.cancel_job(job.id)
    assert cancelled.state is JobState.CANCELLED
    await asyncio.wait_for(stopped.wait(), 5)
    await wait_for(lambda: a.dispatcher.ledger.active == {})
    assert a.dispatcher.queues["default"].running == 0
    assert await a.audit() == [] and await b.audit() == []


async def test_the_leader_returns_a_dead_nodes_jobs_and_another_leads_when_it_stops(nodes: Any, pg_url: str) -> None:
    a = await nodes("a", background=False)
    b = await nodes("b", background=False)
    await a.leadership.tick()
    await b.leadership.tick()
    assert a.leadership.term is not None and b.leadership.term is None
    job = await a.add_job("manual")
    leased = await a.workers.lease("default", None, 1, 200, 0)
    assert [j.id for j in leased] == [job.id]
    await b.leadership.tick()  # not the leader: it sweeps nothing
    assert (await a.get_job(job.id)).state is JobState.ACTIVE
    await asyncio.sleep(0.25)
    await a.leadership.tick()  # the leader's sweep returns the expired lease
    again = await a.get_job(job.id)
    assert again.state in (JobState.DELAYED, JobState.WAITING) and again.attempts_made == 1
    with pytest.raises(Conflict):
        await b.workers.complete(job.id, leased[0].lease_token, None)
    await a.leadership.step_down()
    await b.leadership.tick()
    assert b.leadership.term is not None and b.leadership.term > 1


async def test_group_limits_hold_across_nodes(nodes: Any) -> None:
    """Two nodes' handlers and a worker on each share a key's limit of 2 active jobs;
    a paused key starts nothing until resumed."""
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    paired: dict[str, asyncio.Event] = {}

    def registry_of() -> HandlerRegistry:
        registry = HandlerRegistry()

        async def step(job: Any) -> None:
            # A key's first job waits (a bound, not a pace) for a second to start beside
            # it, so that the limit's two at once are seen however busy the machine;
            # after that, jobs run straight through.
            key = job.group
            running[key] = running.get(key, 0) + 1
            most[key] = max(most.get(key, 0), running[key])
            pair = paired.setdefault(key, asyncio.Event())
            if running[key] >= 2:
                pair.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pair.wait(), 10)
            running[key] -= 1

        registry.register("step", step)
        return registry

    a = await nodes("a", registry_of(), concurrency=8)
    b = await nodes("b", registry_of(), concurrency=8)
    await a.groups.set_policy("default", GroupLimits(concurrency=2))
    await b.groups.pause("default", "held", None)
    jobs = [await a.add_job("step", {}, {"group": f"k{i % 4}"}) for i in range(120)]
    jobs += [await b.add_job("step", {}, {"group": "held"}) for _ in range(5)]
    remote = [await b.add_job("remote", {}, {"group": "k0"}) for _ in range(10)]

    async def lease_all(service: QueueService) -> None:  # leases count toward the key's limit too
        while True:
            leased = await service.workers.lease("default", ["remote"], 2, 30_000, 100)
            if not leased:
                if all(state is JobState.COMPLETED for state in [(await service.get_job(j.id)).state for j in remote]):
                    return
                continue
            active = await service.dispatcher.key_counts("default")
            assert active["k0"][0] <= 2, active
            for job in leased:
                await service.workers.complete(job.id, job.lease_token, None)

    await asyncio.gather(lease_all(a), lease_all(b))

    async def done(ids: list[int]) -> bool:
        return all(state is JobState.COMPLETED for state in [(await a.get_job(i)).state for i in ids])

    await wait_for(lambda: done([j.id for j in jobs[:120]]), timeout=30)
    assert most == {"k0": 2, "k1": 2, "k2": 2, "k3": 2}
    held = [j.id for j in jobs[120:]]
    assert [(await a.get_job(i)).state for i in held] == [JobState.WAITING] * 5
    view = await a.groups.view("default")
    assert {k.key: (k.paused, k.waiting) for k in view.keys}["held"] == (True, 5)
    await a.groups.resume("default", "held")
    await wait_for(lambda: done(held), timeout=10)
    assert most["held"] == 2
    assert await a.audit() == [] and await b.audit() == []


async def test_aging_lifts_a_long_waiting_job_in_a_cluster(nodes: Any) -> None:
    from queueapp.clock import FakeClock
    from queueapp.flow import Aging

    clock = FakeClock(time.time_ns() // 1_000_000)
    a = await nodes("a", clock=clock, aging=lambda q: Aging(every_ms=1000, max_levels=2))
    low = await a.add_job("x", {}, {"priority": 4})
    clock.advance(1500)
    aged_high = await a.add_job("x", {}, {"priority": 2})
    clock.advance(1000)
    high = await a.add_job("x", {}, {"priority": 2})
    taken = [j.id for _ in range(3) for j in await a.workers.lease("default", None, 1, 30_000, 0)]
    # LOW that waited 2.5 s competes as HIGH and was due first; a HIGH job that waited a
    # second does not rise past HIGH (were it CRITICAL, LOW would starve behind a stream)
    assert taken == [low.id, aged_high.id, high.id]


async def test_a_lease_for_a_name_postgresql_cannot_hold_is_bad_input(nodes: Any) -> None:
    from queueapp.errors import ValidationFailed

    a = await nodes("a")
    with pytest.raises(ValidationFailed, match="U\\+0000"):
        await a.workers.lease("default", ["n\u0000"], 1, 30_000, 0)


async def test_a_key_made_or_revoked_on_one_node_is_known_on_every_node_within_a_second(nodes: Any) -> None:
    from queueapp.service_keys import Refused

    a = await nodes("a")
    b = await nodes("b")
    made = await a.keys.create("billing", ["enqueue"], ["payments"], None, "", "admin")
    # Each node reads the keys every FOLLOW_MS (half a second); the bounds here are a
    # loaded machine's, not the promise.
    await wait_for(lambda: b.keys.principal(made.secret) is not None, timeout=10)
    await a.keys.revoke(made.key.id, "admin")
    await wait_for(lambda: isinstance(b.keys.principal(made.secret), Refused), timeout=10)
