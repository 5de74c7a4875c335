"""A job's log: lines a handler or a worker appends while the job runs, kept with the
job (its newest 1,000), read back in order, removed with it."""

from __future__ import annotations

import asyncio
import sqlite3

from queueapp.api.keys import SERVICE
from queueapp.client import QueueClient, RemoteWorker
from queueapp.workers.registry import HandlerRegistry


async def lease_one(client, name: str) -> dict:
    (job,) = (await (await client.post("/queues/jobs/lease", json={"names": [name]})).json())["jobs"]
    return job


async def test_a_worker_appends_lines_read_back_in_order_and_bounded(make_client):
    client = await make_client()
    await client.post("/queues/jobs", json={"name": "chatty"})
    job = await lease_one(client, "chatty")
    url = f"/queues/jobs/{job['id']}"
    r = await client.post(f"{url}/log", json={"leaseToken": job["leaseToken"], "lines": ["starting", "step 1"]})
    assert (r.status, await r.json()) == (200, {"lastSeq": 2})
    secret = {"leaseToken": job["leaseToken"], "lines": ["calling https://pay.example/charge?key=s3cret"]}
    assert (await (await client.post(f"{url}/log", json=secret)).json()) == {"lastSeq": 3}
    page = await (await client.get(f"{url}/logs")).json()
    assert [(line["seq"], line["line"]) for line in page["lines"]] == [
        (1, "starting"), (2, "step 1"), (3, "calling https://pay.example/charge?key=***")]
    assert page["lastSeq"] == 3 and page["lines"][0]["at"].endswith("Z")
    after = await (await client.get(f"{url}/logs?after=2")).json()
    assert [line["seq"] for line in after["lines"]] == [3]
    assert await (await client.get(f"{url}/logs?after=3")).json() == {"lines": [], "lastSeq": 3}

    # bounds: a line, a call, and the job's newest 1,000 lines
    for body, field in (({"leaseToken": job["leaseToken"], "lines": ["x" * 2001]}, "lines.0"),
                        ({"leaseToken": job["leaseToken"], "lines": ["x"] * 101}, "lines"),
                        ({"leaseToken": job["leaseToken"], "lines": []}, "lines")):
        r = await client.post(f"{url}/log", json=body)
        assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == field
    for start in range(0, 1100, 100):
        lines = [f"line {n}" for n in range(start + 4, start + 104)]
        await client.post(f"{url}/log", json={"leaseToken": job["leaseToken"], "lines": lines})
    kept = (await (await client.get(f"{url}/logs")).json())["lines"]
    assert len(kept) == 1000 and kept[-1]["seq"] == 1103 and kept[0]["seq"] == 104

    # only under the live lease; a job that never was: 404
    r = await client.post(f"{url}/log", json={"leaseToken": "stale", "lines": ["late"]})
    assert r.status == 409
    assert (await client.get("/queues/jobs/99999/logs")).status == 404
    r = await client.post("/queues/jobs/99999/log", json={"leaseToken": "t", "lines": ["x"]})
    assert r.status == 404


async def test_the_log_goes_with_its_job(make_client, db_path):
    client = await make_client()
    await client.post("/queues/jobs", json={"name": "gone", "options": {"removeOnComplete": True}})
    job = await lease_one(client, "gone")
    await client.post(f"/queues/jobs/{job['id']}/log", json={"leaseToken": job["leaseToken"], "lines": ["a", "b"]})
    await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": job["leaseToken"]})
    await client.post("/queues/jobs", json={"name": "kept"})
    other = await lease_one(client, "kept")
    await client.post(f"/queues/jobs/{other['id']}/log", json={"leaseToken": other["leaseToken"], "lines": ["c"]})
    await client.post(f"/queues/jobs/{other['id']}/fail", json={"leaseToken": other["leaseToken"], "retry": False})
    r = await client.post("/queues/jobs/actions?state=failed", json={"action": "delete"})
    assert (await r.json())["changed"] == 1
    with sqlite3.connect(db_path) as conn:  # the table, as sqlite3 on the file sees it
        assert conn.execute("SELECT count(*) FROM job_logs").fetchone() == (0,)


async def test_in_process_handlers_and_the_python_worker_write_with_job_log(make_client):
    client = await make_client()
    service = client.server.app[SERVICE]

    async def inside(job):
        await job.log("one", "two\nthree")
        return "ok"

    service.registry.register("inside", inside)
    with service.dispatcher.events.subscribe() as events:
        job = await (await client.post("/queues/jobs", json={"name": "inside"})).json()
        await events.until(lambda e: e.type == "completed", timeout=10)
    lines = (await (await client.get(f"/queues/jobs/{job['id']}/logs")).json())["lines"]
    assert [line["line"] for line in lines] == ["one", "two", "three"]

    registry = HandlerRegistry()

    async def outside(job):
        await job.log("x" * 2500)
        return None

    registry.register("outside", outside)
    job = await (await client.post("/queues/jobs", json={"name": "outside"})).json()
    stop = asyncio.Event()
    async with QueueClient(str(client.make_url(""))) as api:
        worker = RemoteWorker(api, registry, concurrency=1, poll_ms=200)
        with service.dispatcher.events.subscribe() as events:
            task = asyncio.create_task(worker.run(stop))
            await events.until(lambda e: e.type == "completed", timeout=10)
        stop.set()
        await asyncio.wait_for(task, 10)
        page = await api.job_log(job["id"])
    (line,) = page["lines"]
    assert len(line["line"]) == 2000 and line["line"].endswith("\u2026")  # cut, saying so
