"""Faults on purpose: a full disk, a read-only database, slow and idle clients."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from queueapp.api.keys import SERVICE


def writer_connection(client) -> sqlite3.Connection:
    """The store's own writer connection, to inject a fault at the SQLite level."""
    return client.server.app[SERVICE].store._writer._conn


def row_count(db_path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("select count(*) from jobs").fetchone()[0]


async def fill_until_full(client) -> int:
    """Enqueue until the store refuses; returns how many were acknowledged."""
    acknowledged = 0
    for i in range(10_000):
        r = await client.post("/queues/jobs", json={"name": "fill", "data": {"pad": "x" * 2000, "i": i}})
        if r.status == 201:
            acknowledged += 1
            continue
        assert r.status == 503, await r.text()
        error = (await r.json())["error"]
        assert error["code"] == "store_unavailable"
        assert "full" in error["message"]
        return acknowledged
    raise AssertionError("the store never filled up")


async def test_a_full_disk_answers_503_stores_nothing_and_recovers(make_client, db_path):
    client = await make_client()
    conn = writer_connection(client)
    pages = conn.execute("pragma page_count").fetchone()[0]
    # SQLite's own size cap stands in for a full disk: the same SQLITE_FULL error
    conn.execute(f"pragma max_page_count = {pages + 30}")
    acknowledged = await fill_until_full(client)
    assert acknowledged > 0
    stored = row_count(db_path)
    assert stored == acknowledged  # every 201 is there, nothing else is
    # everything that writes is refused the same way, and reading still works
    r = await client.post("/queues/jobs/bulk", json={"jobs": [{"name": "more"}] * 50})
    assert r.status == 503
    r = await client.post("/queues/schedules", json={"name": "s", "everyMs": 1000, "data": {"pad": "x" * 100_000}})
    assert r.status == 503
    assert (await client.get("/livez")).status == 200
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["waiting"] == acknowledged
    assert row_count(db_path) == stored
    # space returns: writes work again, and nothing was lost
    conn.execute("pragma max_page_count = 1073741823")
    r = await client.post("/queues/jobs", json={"name": "after"})
    assert r.status == 201
    assert row_count(db_path) == stored + 1


async def test_a_read_only_database_answers_503_and_recovers(make_client, db_path, registry):
    ran = asyncio.Event()

    @registry.handler("work")
    async def work(job):
        ran.set()
        return "done"

    client = await make_client()
    service = client.server.app[SERVICE]
    await service.pause()
    r = await client.post("/queues/jobs", json={"name": "work"})
    job_id = (await r.json())["id"]
    conn = writer_connection(client)
    conn.execute("pragma query_only = ON")  # every write now fails as on a read-only file
    r = await client.post("/queues/jobs", json={"name": "refused"})
    assert r.status == 503
    assert "readonly" in (await r.json())["error"]["message"]
    r = await client.post("/queues/resume")
    assert r.status == 503
    r = await client.delete(f"/queues/jobs/{job_id}")
    assert r.status == 503
    job = await (await client.get(f"/queues/jobs/{job_id}")).json()
    assert job["state"] == "waiting"  # the refused cancel changed nothing
    conn.execute("pragma query_only = OFF")
    assert (await client.post("/queues/resume")).status == 200
    await asyncio.wait_for(ran.wait(), 10)
    assert row_count(db_path) == 1


async def test_in_process_work_waits_for_the_store_and_is_not_lost(make_client, registry):
    release = asyncio.Event()
    started = asyncio.Event()

    @registry.handler("hold")
    async def hold(job):
        started.set()
        await release.wait()
        return {"ok": True}

    client = await make_client()
    service = client.server.app[SERVICE]
    r = await client.post("/queues/jobs", json={"name": "hold"})
    job_id = int((await r.json())["id"])
    await asyncio.wait_for(started.wait(), 10)
    conn = writer_connection(client)
    conn.execute("pragma query_only = ON")
    with service.dispatcher.events.subscribe() as events:
        release.set()  # the handler finishes while the store cannot write
        await asyncio.sleep(0.3)
        assert (await service.get_job(job_id)).state.value == "active"
        conn.execute("pragma query_only = OFF")
        await events.until(lambda e: e.type == "completed" and e.job_id == job_id)
    assert (await service.get_job(job_id)).result == {"ok": True}


async def test_slow_clients_do_not_hold_up_others(make_client):
    client = await make_client()
    port = client.server.port
    slow = []
    for _ in range(200):  # slowloris: headers that never finish
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /queues/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n")
        slow.append(writer)
    await asyncio.gather(*(w.drain() for w in slow))
    for _ in range(20):
        r = await client.post("/queues/jobs", json={"name": "normal"})
        assert r.status == 201
    # bodies that trickle in never finish either; the server still serves
    for w in slow[:50]:
        w.write(b"\r\n{\"na")
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["waiting"] == 20
    for w in slow:
        w.close()


async def test_thousands_of_idle_connections(make_client):
    client = await make_client()
    port = client.server.port
    idle = []
    for _ in range(2000):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        idle.append(writer)
    for _ in range(10):
        r = await client.post("/queues/jobs", json={"name": "x"})
        assert r.status == 201
    assert (await client.get("/livez")).status == 200
    for w in idle:
        w.close()


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 20 * 1024 * 1024])
async def test_oversized_bodies_are_refused_without_reading_them_all(make_client, db_path, size):
    client = await make_client()
    r = await client.post("/queues/jobs", data=b"{" + b" " * size + b"}",
                          headers={"Content-Type": "application/json"})
    assert r.status == 413
    assert row_count(db_path) == 0


def _mount_tmpfs(path, size: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, timeout=10)
    return result.returncode == 0


def test_a_really_full_disk_under_a_real_server(tmp_path):
    """The database on a 2 MB tmpfs: writes fail with 503 when it fills, every 201
    is kept, and after the disk grows the same process takes writes again."""
    import json
    import subprocess
    import urllib.error
    import urllib.request

    from conftest import ServeProcess

    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("this machine does not allow mounting a tmpfs (needs root)")
    server = None
    try:
        server = ServeProcess(disk / "queue.db").start()

        def post(body):
            req = urllib.request.Request(server.url + "/queues/jobs", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        acknowledged = []
        for i in range(5000):
            status, body = post({"name": "fill", "data": {"pad": "x" * 1500, "i": i}})
            if status != 201:
                break
            acknowledged.append(body["id"])
        assert status == 503, body
        assert body["error"]["code"] == "store_unavailable" and "full" in body["error"]["message"]
        status, body = post({"name": "fill", "data": {"pad": "x" * 1500, "i": -1}})
        assert status == 503  # still no room: refused again, stored nowhere
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True, timeout=10)
        status, body = post({"name": "after"})
        assert status == 201, body
        with urllib.request.urlopen(server.url + "/queues/metrics", timeout=10) as r:
            assert json.loads(r.read())["waiting"] == len(acknowledged) + 1  # the fills and "after"
        server.terminate()
        with sqlite3.connect(disk / "queue.db") as conn:
            ids = {str(r[0]) for r in conn.execute("select id from jobs where name = 'fill'")}
        assert ids == set(acknowledged)
    finally:
        if server is not None and server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)
