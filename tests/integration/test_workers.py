"""External workers over HTTP: the lease protocol, the Python worker, another language."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queueapp.api.keys import SERVICE
from queueapp.client import QueueClient, RemoteWorker
from queueapp.workers.registry import HandlerRegistry

HERE = Path(__file__).parent.parent


async def test_two_workers_leasing_at_once_never_share_a_job(make_client):
    client = await make_client()
    await client.post("/queues/jobs/bulk", json={"jobs": [{"name": "x", "data": {"i": i}} for i in range(300)]})

    async def worker():
        got = []
        while True:
            r = await client.post("/queues/jobs/lease", json={"max": 7})
            jobs = (await r.json())["jobs"]
            if not jobs:
                return got
            got += [j["id"] for j in jobs]

    a, b = await asyncio.gather(worker(), worker())
    assert len(a) + len(b) == 300
    assert not set(a) & set(b)
    assert a and b  # both really took part


async def test_long_poll_answers_within_50_ms_of_an_enqueue(make_client):
    client = await make_client()
    delays = []
    for i in range(9):
        poll = asyncio.create_task(client.post("/queues/jobs/lease", json={"waitMs": 5000, "names": ["lp"]}))
        await asyncio.sleep(0.02)  # let the poll settle in its wait first
        sent = time.perf_counter()
        await client.post("/queues/jobs", json={"name": "lp", "data": {"i": i}})
        enqueued = time.perf_counter()
        answer = await asyncio.wait_for(poll, 5)
        delays.append((time.perf_counter() - enqueued) * 1000)
        assert (await answer.json())["jobs"][0]["data"] == {"i": i}
        assert enqueued - sent < 5
    assert statistics.median(delays) < 50, delays


async def test_the_python_worker_runs_handlers_on_leased_jobs(make_client):
    client = await make_client()
    registry = HandlerRegistry()
    sys.path.insert(0, str(HERE))
    from worker_handlers import crunch, expected_digest

    registry.register("crunch", crunch)
    await client.post("/queues/jobs", json={"name": "crunch", "data": {}, "options": {"attempts": 1}})
    for i in range(6):
        await client.post("/queues/jobs", json={"name": "crunch", "data": {"seed": f"s{i}", "slices": 2}})
    stop = asyncio.Event()
    async with QueueClient(str(client.make_url(""))) as api:
        worker = RemoteWorker(api, registry, concurrency=3, lease_ms=3000, poll_ms=200)
        task = asyncio.create_task(worker.run(stop))
        dispatcher = client.server.app[SERVICE].dispatcher
        with dispatcher.events.subscribe() as events:
            settled = 0
            while settled < 7:
                await events.until(lambda e: e.type in ("completed", "failed"), timeout=30)
                settled += 1
        stop.set()
        await asyncio.wait_for(task, 10)
    page = await (await client.get("/queues/jobs?state=completed")).json()
    assert sorted(j["result"]["digest"] for j in page["jobs"]) == sorted(
        expected_digest(f"s{i}", 2) for i in range(6))
    (bad,) = (await (await client.get("/queues/jobs/failed")).json())["jobs"]
    assert bad["error"] == "KeyError: 'seed'" and bad["attemptsMade"] == 1
    first = bad["errors"][0]
    assert first["startedAt"] <= first["at"]  # the attempt's start, beside its failure
    assert first["worker"] == f"{socket.gethostname()}:{os.getpid()}"  # who ran it: host and process
    assert {j["worker"] for j in page["jobs"]} == {first["worker"]}
    stack = first["stack"]  # the handler's traceback, sent by the worker
    assert stack.startswith("Traceback (most recent call last):") and "worker_handlers.py" in stack
    assert stack.rstrip().endswith("KeyError: 'seed'")


async def test_a_failed_attempt_keeps_its_stack_redacted_and_bounded(make_client):
    client = await make_client()
    await client.post("/queues/jobs", json={"name": "trace", "options": {"attempts": 2}})
    for attempt, stack in enumerate([
        "Error: upstream refused\n    at call (https://api.example/pay?key=s3cret:10:5)",
        "Error: long\n" + "".join(f"    at frame{i} (file.js:{i}:1)\n" for i in range(2000)),
    ], start=1):
        (job,) = (await (await client.post("/queues/jobs/lease", json={"names": ["trace"]})).json())["jobs"]
        r = await client.post(f"/queues/jobs/{job['id']}/fail",
                              json={"leaseToken": job["leaseToken"], "error": "upstream refused", "stack": stack})
        assert r.status == 200
        if attempt == 1:
            await client.post(f"/queues/jobs/{job['id']}/promote")
    errors = (await (await client.get(f"/queues/jobs/{job['id']}")).json())["errors"]
    assert errors[0]["stack"].startswith("Error: upstream refused\n    at call (https://api.example/pay?key=***")
    assert "s3cret" not in errors[0]["stack"]
    kept = errors[1]["stack"]
    assert len(kept) <= 16_000 and "characters left out" in kept
    assert kept.startswith("Error: long\n    at frame0 ") and kept.endswith("at frame1999 (file.js:1999:1)\n")
    r = await client.post("/queues/jobs/lease", json={"names": ["trace"]})
    assert (await r.json())["jobs"] == []  # spent: attempts 2
    too_long = {"leaseToken": "t", "error": "x", "stack": "x" * 100_001}
    r = await client.post(f"/queues/jobs/{job['id']}/fail", json=too_long)
    assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "stack"


def test_sigterm_to_queueapp_worker_loses_no_job(serve, tmp_path):
    import json
    import urllib.request

    server = serve()

    def call(method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read())

    total = 24
    call("POST", "/queues/jobs/bulk", {"jobs": [
        {"name": "crunch", "data": {"seed": f"j{i}", "slices": 40}} for i in range(total)]})
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def start_worker():
        return subprocess.Popen(
            [sys.executable, "-m", "queueapp", "worker", "--url", server.url, "--handlers", "worker_handlers",
             "--concurrency", "3", "--grace-ms", "200"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    worker = start_worker()
    deadline = time.monotonic() + 60
    while call("GET", "/queues/metrics")["completed"] < 3:  # a child process: nothing to wait on but its effect
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.stdout.read().decode()
    log = worker.stdout.read().decode()
    assert "worker stopped" in log
    metrics = call("GET", "/queues/metrics")
    assert metrics["active"] == 0  # everything was finished or handed back
    assert metrics["completed"] + metrics["waiting"] == total
    waiting = call("GET", "/queues/jobs?state=waiting&limit=100")["jobs"]
    assert all(j["attemptsMade"] == 0 for j in waiting)  # handed back, not failed

    second = start_worker()
    deadline = time.monotonic() + 120
    while call("GET", "/queues/metrics")["completed"] < total:
        assert time.monotonic() < deadline and second.poll() is None
        time.sleep(0.05)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    sys.path.insert(0, str(HERE))
    from worker_handlers import expected_digest

    done = call("GET", "/queues/jobs?state=completed&limit=100")["jobs"]
    assert sorted(j["data"]["seed"] for j in done) == sorted(f"j{i}" for i in range(total))
    assert all(j["result"]["digest"] == expected_digest(j["data"]["seed"], 40) for j in done)
    assert all(j["attemptsMade"] == 1 for j in done)  # none ran twice


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_example_worker_speaks_the_protocol(serve):
    import json
    import urllib.request

    server = serve()
    for body in ({"width": 3, "height": 4}, {"width": 10, "height": 2}, {"width": 1, "height": 1}):
        req = urllib.request.Request(server.url + "/queues/jobs", method="POST",
                                     data=json.dumps({"name": "resize-image", "data": body}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
    result = subprocess.run(["node", str(HERE.parent / "scripts" / "worker-example.js"), server.url,
                             "resize-image", "3"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"done": 3}
    with urllib.request.urlopen(server.url + "/queues/jobs?state=completed", timeout=10) as r:
        jobs = json.loads(r.read())["jobs"]
    assert sorted(j["result"]["area"] for j in jobs) == [1, 12, 20]
