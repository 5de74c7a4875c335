"""options.dependsOn over a real store and a real server: a job waits in `blocked`
until every dependency completed, moves on in the same transaction as the last
completion, fails with a reason naming a dependency that failed for good (unless
allowDependencyFailure), and a SIGKILL in the middle of a chain and a fan-in of a
hundred loses nothing and runs nothing early."""

from __future__ import annotations

import pytest

from queueapp.clock import FakeClock
from queueapp.model import JobState
from queueapp.retry import Failure


async def _lease_one(service, name: str):
    [job] = await service.workers.lease("default", [name], 1, 60_000, 0)
    return job


async def test_a_fan_in_of_a_hundred_runs_after_the_last_child(make_service):
    service = await make_service(background=False)
    items = [{"name": "part", "data": {"i": i}} for i in range(100)]
    items.append({"name": "report", "options": {"dependsOn": [f"#{i}" for i in range(100)]}})
    added = await service.add_jobs(service.build_jobs(items))
    report = added[-1].job
    assert report.state is JobState.BLOCKED
    for _ in range(100):
        assert await service.workers.lease("default", ["report"], 1, 60_000, 0) == []  # never early
        part = await _lease_one(service, "part")
        await service.workers.complete(part.id, part.lease_token, None)
    got = await _lease_one(service, "report")  # moved on with the last child's completion
    assert got.id == report.id
    assert await service.audit() == []


async def test_a_chain_runs_in_order_and_a_failure_fails_what_waits_on_it(make_service):
    service = await make_service(background=False)
    a = await service.add_job("a", {})
    b = await service.add_job("b", {}, {"dependsOn": [str(a.id)]})
    c = await service.add_job("c", {}, {"dependsOn": [str(b.id)]})
    tolerant = await service.add_job("t", {}, {"dependsOn": [str(b.id)], "allowDependencyFailure": True})
    assert (b.state, c.state) == (JobState.BLOCKED, JobState.BLOCKED)
    job = await _lease_one(service, "a")
    await service.workers.complete(job.id, job.lease_token, None)
    assert (await service.get_job(b.id)).state is JobState.WAITING
    job = await _lease_one(service, "b")
    await service.workers.fail(job.id, job.lease_token, Failure("broken", retry=False))
    failed = await service.get_job(c.id)
    assert failed.state is JobState.FAILED and failed.error == f"dependency {b.id} failed"
    assert (await service.get_job(tolerant.id)).state is JobState.WAITING
    counts = service.dispatcher.metrics.peek("default").counts
    assert counts[JobState.BLOCKED] == 0 and counts[JobState.FAILED] == 2
    assert await service.audit() == []


async def test_cancelled_and_expired_dependencies_and_a_dependency_already_done(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    done = await service.add_job("d", {})
    job = await _lease_one(service, "d")
    await service.workers.complete(job.id, job.lease_token, None)
    ready = await service.add_job("x", {}, {"dependsOn": [str(done.id)]})
    assert ready.state is JobState.WAITING  # its dependency had completed already
    gone = await service.add_job("g", {}, {"delay": 60_000})
    waits = await service.add_job("w", {}, {"dependsOn": [str(gone.id)]})
    await service.cancel_job(gone.id)
    assert (await service.get_job(waits.id)).error == f"dependency {gone.id} cancelled"
    short = await service.add_job("s", {}, {"expireInMs": 1_000})
    after = await service.add_job("y", {}, {"dependsOn": [str(short.id)]})
    clock.advance(2_000)
    with service.dispatcher.events.subscribe() as events:
        assert await service.workers.lease("default", ["s"], 1, 60_000, 0) == []  # the claim finds it expired
        await events.until(lambda e: e.type == "failed" and e.job_id == after.id)
    assert (await service.get_job(after.id)).error == f"dependency {short.id} expired"
    assert await service.audit() == []


@pytest.mark.parametrize("options", [{"dependsOn": []}, {"dependsOn": ["x"]}, {"dependsOn": ["#1"] * 101},
                                     {"dependsOn": "1"}, {"allowDependencyFailure": "yes"}])
async def test_bad_dependencies_are_refused(make_client, options):
    client = await make_client()
    r = await client.post("/queues/jobs", json={"name": "x", "options": options})
    assert r.status == 400
    for body in ({"name": "x", "options": {"dependsOn": ["424242"]}}, {"name": "x", "options": {"dependsOn": ["#0"]}}):
        r = await client.post("/queues/jobs", json=body)
        assert r.status == 404 and "dependsOn" in (await r.json())["error"]["message"]
    assert (await (await client.get("/queues/metrics")).json())["total"] == 0


async def test_a_sigkill_in_the_middle_of_a_chain_and_a_fan_in_loses_nothing(serve):
    import aiohttp

    server = serve("--audit-interval-ms", "600000")
    items = [{"name": "child", "data": {"i": i}} for i in range(100)]
    items.append({"name": "parent", "options": {"dependsOn": [f"#{i}" for i in range(100)]}})
    items += [{"name": "link", "options": {"dependsOn": ["#100"]}}]
    items += [{"name": "link", "options": {"dependsOn": [f"#{101 + i}"]}} for i in range(4)]
    completed: list[str] = []

    async def work(url: str, names: list[str], count: int) -> None:
        async with aiohttp.ClientSession() as http:  # a new one after each kill: no connection to the dead
            await _work(http, url, names, count)

    async def _work(http: aiohttp.ClientSession, url: str, names: list[str], count: int) -> None:
        for _ in range(count):
            async with http.post(f"{url}/queues/jobs/lease", json={"names": names, "max": 1}) as r:
                [job] = (await r.json())["jobs"]
            deps = job["options"].get("dependsOn", [])
            for dep in deps:  # nothing runs before what it waits on has completed
                dep_id = ids[int(dep[1:])] if dep.startswith("#") else dep
                assert dep_id in completed, (job["id"], dep_id)
            done = {"leaseToken": job["leaseToken"]}
            async with http.post(f"{url}/queues/jobs/{job['id']}/complete", json=done) as r:
                assert r.status == 200
            completed.append(job["id"])

    async with aiohttp.ClientSession() as http, http.post(f"{server.url}/queues/jobs/bulk?return=ids",
                                                          json={"jobs": items}) as r:
        ids = (await r.json())["ids"]
    await work(server.url, ["child"], 60)
    server.kill9()
    server.start()
    await work(server.url, ["child"], 40)
    await work(server.url, ["parent"], 1)
    for _ in range(4):
        await work(server.url, ["link"], 1)
    server.kill9()
    server.start()
    await work(server.url, ["link"], 1)
    assert sorted(completed, key=int) == ids
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/debug/audit") as r:
        assert (await r.json())["ok"]
