"""Fault tests with a real ``queueapp serve`` process: kill -9, restart, inspect."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
import time

import aiohttp
from conftest import iso_ms, wait_for


async def _enqueue(http: aiohttp.ClientSession, url: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        async with http.post(f"{url}/queues/jobs", json={"name": "external", "data": {"i": i}}) as r:
            assert r.status == 201
            ids.append((await r.json())["id"])
    return ids


async def test_acknowledged_enqueues_survive_kill_9(serve, http, db_path):
    server = serve("--durability", "full")
    acknowledged = await _enqueue(http, server.url, 20)

    # Many clients at once, so acknowledgements come from group commits; the kill lands
    # while some requests are still in flight.
    async def one(i: int) -> str | None:
        try:
            async with http.post(
                f"{server.url}/queues/jobs", json={"name": "external", "data": {"burst": i}}
            ) as r:
                return (await r.json())["id"] if r.status == 201 else None
        except (TimeoutError, aiohttp.ClientError):
            return None

    tasks = [asyncio.create_task(one(i)) for i in range(300)]
    done_first = []
    for task in asyncio.as_completed(tasks):
        result = await task
        if result is not None:
            done_first.append(result)
        if len(done_first) >= 100:
            break
    server.kill9()
    rest = await asyncio.gather(*tasks)
    acknowledged += [r for r in rest if r is not None]
    assert len(acknowledged) >= 120

    restarted = serve()
    for job_id in acknowledged:
        async with http.get(f"{restarted.url}/queues/jobs/{job_id}") as r:
            assert r.status == 200, job_id
            assert (await r.json())["state"] == "waiting"
    async with http.get(f"{restarted.url}/queues/metrics") as r:
        assert (await r.json())["waiting"] >= len(acknowledged)


async def test_a_lease_outlives_a_crash_and_is_returned_when_it_runs_out(serve, http):
    """The worker holding a lease may be alive when the appliance dies: its lease is
    kept across the restart, and its job comes back only once the lease runs out.
    (How long the restart takes is the machine's: read before the lease's end, the
    job is still leased; either way it comes back no sooner than the lease's end.)"""
    server = serve()
    async with http.post(f"{server.url}/queues/jobs",
                         json={"name": "external", "options": {"attempts": 2}}) as r:
        job_id = (await r.json())["id"]
    async with http.post(f"{server.url}/queues/jobs/lease", json={"max": 1, "leaseMs": 3000}) as r:
        leased = (await r.json())["jobs"]
    assert [j["id"] for j in leased] == [job_id]
    expires = iso_ms(leased[0]["leaseExpiresAt"])
    assert expires == iso_ms(leased[0]["startedAt"]) + 3000
    server.kill9()

    restarted = serve()
    async with http.get(f"{restarted.url}/queues/jobs/{job_id}") as r:
        seen = await r.json()
    if time.time() * 1000 < expires - 100:
        assert seen["state"] == "active", seen

    async def returned():
        async with http.get(f"{restarted.url}/queues/jobs/{job_id}") as r:
            job = await r.json()
        return job if job["state"] in ("waiting", "delayed") else None

    job = await wait_for(returned)
    assert job["attemptsMade"] == 1
    assert "lease expired" in job["error"]
    assert iso_ms(job["errors"][-1]["at"]) >= expires  # not returned before its lease ran out
    # the old worker's answer is stale now
    async with http.post(f"{restarted.url}/queues/jobs/{job_id}/complete",
                         json={"leaseToken": leased[0]["leaseToken"]}) as r:
        assert r.status == 409
        assert (await r.json())["error"]["code"] == "conflict"


async def test_a_worker_finishes_its_job_across_a_crash(serve, http):
    server = serve()
    async with http.post(f"{server.url}/queues/jobs", json={"name": "external"}) as r:
        job_id = (await r.json())["id"]
    async with http.post(f"{server.url}/queues/jobs/lease", json={"max": 1, "leaseMs": 60_000}) as r:
        token = (await r.json())["jobs"][0]["leaseToken"]
    server.kill9()
    restarted = serve()
    async with http.post(f"{restarted.url}/queues/jobs/{job_id}/complete",
                         json={"leaseToken": token, "result": "done"}) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "completed"


async def test_sqlite3_reads_the_database_while_the_service_runs(serve, http, db_path):
    server = serve()
    await _enqueue(http, server.url, 3)
    query = "select state, count(*) from jobs group by state"
    if shutil.which("sqlite3"):
        out = subprocess.run(["sqlite3", str(db_path), query], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    else:  # the same SQLite library, from another process
        out = subprocess.run(
            [sys.executable, "-c",
             f"import sqlite3; [print('|'.join(map(str, r))) for r in "
             f"sqlite3.connect({str(db_path)!r}).execute({query!r})]"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout
    assert out.strip() == "waiting|3"
    # and the service keeps writing while a reader holds the file open
    reader = sqlite3.connect(db_path)
    reader.execute("BEGIN")
    reader.execute("select count(*) from jobs").fetchone()
    await _enqueue(http, server.url, 2)
    reader.rollback()
    assert reader.execute("select count(*) from jobs").fetchone()[0] == 5
    reader.close()


async def test_sigterm_stops_cleanly(serve, http):
    server = serve()
    await _enqueue(http, server.url, 1)
    assert server.terminate() == 0
    assert "appliance stopped" in server.log_path.read_text()
