"""Metrics, health, alerts, stuck-job recovery, Prometheus and live events."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from queueapp.api import streams
from queueapp.api.keys import SERVICE
from queueapp.background.recovery import LeaseReaper
from queueapp.clock import FakeClock
from queueapp.model import JobState
from queueapp.retry import Failure
from queueapp.version import __version__


async def lease_one(client, **body):
    r = await client.post("/queues/jobs/lease", json={"max": 1, **body})
    (job,) = (await r.json())["jobs"]
    return job


async def test_metrics_and_health_field_for_field_after_a_known_mix(make_client, registry):
    client = await make_client()
    for i in range(4):
        await client.post("/queues/jobs", json={"name": "w", "data": {"i": i}, "options": {"attempts": 1}})
    await client.post("/queues/jobs", json={"name": "later", "options": {"delay": 3_600_000}})
    done = [await lease_one(client) for _ in range(3)]
    await client.post(f"/queues/jobs/{done[0]['id']}/complete", json={"leaseToken": done[0]["leaseToken"]})
    await client.post(f"/queues/jobs/{done[1]['id']}/complete", json={"leaseToken": done[1]["leaseToken"]})
    await client.post(f"/queues/jobs/{done[2]['id']}/fail",
                      json={"leaseToken": done[2]["leaseToken"], "error": "bad"})
    active = await lease_one(client)
    metrics = await (await client.get("/queues/metrics")).json()
    assert {k: v for k, v in metrics.items() if k != "avgProcessingTime"} == {
        "queueName": "default", "waiting": 0, "active": 1, "completed": 2, "failed": 1,
        "delayed": 1, "paused": 0, "total": 5, "throughput": 2,
    }
    assert metrics["avgProcessingTime"] >= 0
    r = await client.get("/queues/health")
    health = await r.json()
    # one failure in three finished jobs: 33 % is above the 20 % critical threshold
    assert r.status == 503
    assert health["status"] == "critical"
    assert health["issues"] == ["failure rate 33.3% over the last 5 minutes is above 20%"]
    assert health["metrics"] == metrics
    assert active["state"] == "active"


@pytest.mark.parametrize(
    ("settings", "setup", "status", "issue"),
    [
        ({"health_waiting_warning": 2}, {"waiting": 3}, "warning", "3 jobs waiting, above 2"),
        ({"health_waiting_critical": 2}, {"waiting": 3}, "critical", "3 jobs waiting, above 2"),
        ({"health_delayed_warning": 1}, {"delayed": 2}, "warning", "2 jobs delayed, above 1"),
        ({"health_active_warning": 1}, {"active": 2}, "warning", "2 jobs active, above 1"),
        ({"health_failure_rate_warning": 0.4, "health_failure_rate_critical": 0.6},
         {"fail": 1, "complete": 1}, "warning", "failure rate 50.0% over the last 5 minutes is above 40%"),
        ({}, {"waiting": 1}, "healthy", None),
    ],
)
async def test_each_threshold_gives_its_status_and_issue(make_client, settings, setup, status, issue):
    client = await make_client(**settings)
    for _ in range(setup.get("waiting", 0)):
        await client.post("/queues/jobs", json={"name": "x"})
    for _ in range(setup.get("delayed", 0)):
        await client.post("/queues/jobs", json={"name": "x", "options": {"delay": 60_000}})
    for _ in range(setup.get("active", 0)):
        await client.post("/queues/jobs", json={"name": "x"})
        await lease_one(client)
    for outcome in ("fail", "complete"):
        for _ in range(setup.get(outcome, 0)):
            await client.post("/queues/jobs", json={"name": "x", "options": {"attempts": 1}})
            job = await lease_one(client)
            await client.post(f"/queues/jobs/{job['id']}/{outcome}", json={"leaseToken": job["leaseToken"]})
    r = await client.get("/queues/health")
    health = await r.json()
    assert health["status"] == status
    assert health["issues"] == ([issue] if issue else [])
    assert r.status == (503 if status == "critical" else 200)


async def test_per_queue_thresholds_from_the_config_file(make_client):
    client = await make_client(queues={"tiny": {"health_waiting_warning": 0}})
    await client.post("/queues/jobs?queue=tiny", json={"name": "x"})
    await client.post("/queues/jobs", json={"name": "x"})
    assert (await (await client.get("/queues/health?queue=tiny")).json())["status"] == "warning"
    assert (await (await client.get("/queues/health")).json())["status"] == "healthy"


@pytest.fixture
async def webhook(aiohttp_server):
    """A local HTTP server that records the alerts it receives; fails the first N."""
    received: asyncio.Queue = asyncio.Queue()
    state = {"fail_first": 0}

    async def hook(request: web.Request) -> web.Response:
        if state["fail_first"] > 0:
            state["fail_first"] -= 1
            return web.Response(status=502)
        await received.put(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    return server, received, state


async def test_an_alert_reaches_the_webhook_and_retries_when_it_is_down(make_client, webhook):
    server, received, state = webhook
    state["fail_first"] = 2
    client = await make_client(alert_webhook_url=str(server.make_url("/hook")), health_waiting_critical=1)
    monitor = client.server.app[SERVICE].monitor
    monitor.alerter.first_backoff_s = 0.01
    await monitor.tick()  # healthy: nothing to say
    await client.post("/queues/jobs", json={"name": "x"})
    await client.post("/queues/jobs", json={"name": "x"})
    await monitor.tick()
    alert = await asyncio.wait_for(received.get(), 10)
    assert alert["status"] == "critical" and alert["previousStatus"] == "healthy"
    assert alert["queue"] == "default"
    assert alert["text"] == "queueapp: queue default is critical (was healthy): 2 jobs waiting, above 1"
    assert alert["metrics"]["waiting"] == 2
    await monitor.tick()  # still critical: said again
    assert (await asyncio.wait_for(received.get(), 10))["previousStatus"] == "critical"
    # back to healthy: one more, then quiet
    for job in (await (await client.post("/queues/jobs/lease", json={"max": 5})).json())["jobs"]:
        await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": job["leaseToken"]})
    await monitor.tick()
    assert (await asyncio.wait_for(received.get(), 10))["status"] == "healthy"
    await monitor.tick()
    assert received.empty()
    assert monitor.alerter.delivered == 3 and monitor.alerter.failed == 0


async def test_a_dead_webhook_never_blocks_the_monitor(make_client):
    client = await make_client(alert_webhook_url="http://127.0.0.1:9/nothing-listens", health_waiting_critical=0)
    monitor = client.server.app[SERVICE].monitor
    monitor.alerter.attempts = 2
    monitor.alerter.first_backoff_s = 0.01
    await client.post("/queues/jobs", json={"name": "x"})
    for _ in range(150):  # more alerts than the buffer holds, sent faster than they fail
        reports = await monitor.tick()
        assert reports[0].status == "critical"
    assert monitor.alerter.dropped >= 49


async def test_a_leased_and_abandoned_job_is_recovered_after_its_lease(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock)
    job = await service.add_job("remote", {}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 0}})
    (leased,) = await service.dispatcher.leases.lease("default", None, 1, 5_000, 0)
    reaper = LeaseReaper(service.dispatcher)
    clock.advance(4_000)
    assert await reaper.tick() == 0
    with service.dispatcher.events.subscribe() as events:
        clock.advance(2_000)
        assert await reaper.tick() == 1
        stalled = await events.until(lambda e: e.type == "stalled")
    assert stalled.job_id == job.id
    stored = await service.get_job(job.id)
    assert stored.state is JobState.WAITING and stored.attempts_made == 1
    assert "lease expired" in stored.error
    from queueapp.errors import Conflict

    with pytest.raises(Conflict):
        await service.dispatcher.outcomes.complete(job.id, leased.lease_token, "late")
    (again,) = await service.dispatcher.leases.lease("default", None, 1, 5_000, 0)
    assert again.id == job.id and again.lease_token != leased.lease_token
    clock.advance(6_000)
    await reaper.tick()
    assert (await service.get_job(job.id)).state is JobState.FAILED  # attempts spent


async def test_stuck_jobs_are_listed(make_client):
    client = await make_client(stuck_after_ms=1)
    await client.post("/queues/jobs", json={"name": "x"})
    job = await lease_one(client)
    await asyncio.sleep(0.01)  # let the job age past the 1 ms threshold
    stuck = await (await client.get("/queues/jobs/stuck")).json()
    assert [j["id"] for j in stuck["jobs"]] == [job["id"]]
    health = await (await client.get("/queues/health")).json()
    assert health["issues"] == ["1 jobs stuck: active for more than 1 ms without a heartbeat"]


async def test_prometheus_metrics_parse(make_client):
    client = await make_client()
    await client.post("/queues/jobs", json={"name": "x"})
    job = await lease_one(client)
    await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": job["leaseToken"]})
    await client.post("/queues/jobs?queue=other", json={"name": "y"})
    r = await client.get("/metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(await r.text())}
    jobs = {(s.labels["queue"], s.labels["state"]): s.value for s in families["queueapp_jobs"].samples}
    assert jobs[("default", "completed")] == 1 and jobs[("other", "waiting")] == 1
    completed = {s.labels["queue"]: s.value for s in families["queueapp_jobs_completed"].samples
                 if s.name.endswith("_total")}
    assert completed["default"] == 1
    assert families["queueapp_job_processing_seconds"].type == "histogram"
    wait = [s for s in families["queueapp_job_wait_seconds"].samples
            if s.name.endswith("_count") and s.labels["queue"] == "default"]
    assert wait[0].value == 1
    assert families["queueapp_store_commit_seconds"].type == "histogram"
    process = {name: families[name].samples[0].value for name in (  # a counter's family: no _total
        "process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
        "process_start_time_seconds")}
    assert 10 * 2**20 < process["process_resident_memory_bytes"] < 4 * 2**30
    assert 0 < process["process_cpu_seconds"] and 3 < process["process_open_fds"] <= process["process_max_fds"]
    assert time.time() - 3600 < process["process_start_time_seconds"] <= time.time()
    [build] = families["queueapp_build_info"].samples
    assert build.value == 1 and build.labels["version"] == __version__ and build.labels["store"] == "sqlite"
    assert build.labels["sqlite"] == sqlite3.sqlite_version and build.labels["event_loop"] in ("uvloop", "asyncio")


async def test_openmetrics_when_the_scraper_asks_for_it(make_client):
    client = await make_client()
    await client.post("/queues/jobs", json={"name": "x"})
    r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0,"
                                                         "text/plain;version=0.0.4;q=0.5"})
    assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = await r.text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}  # the strict parser: it refuses what is not
    assert families["queueapp_jobs_added"].type == "counter"
    assert [s.value for s in families["queueapp_jobs_added"].samples if s.name == "queueapp_jobs_added_total"] == [1]
    assert families["queueapp_build"].type == "info"
    assert families["process_cpu_seconds"].type == "counter"
    assert families["queueapp_job_wait_seconds"].type == "histogram"


async def _read_events(response, count):
    """(event, data) of the next ``count`` events."""
    return [(kind, data) for _, kind, data in await _read_blocks(response, count)]


async def test_an_event_stream_client_sees_a_job_move_in_order(make_client):
    client = await make_client()
    stream = await client.get("/queues/events?name=watched")
    await stream.content.readuntil(b"\n\n")  # connected
    await client.post("/queues/jobs", json={"name": "ignored"})
    r = await client.post("/queues/jobs", json={"name": "watched", "options": {"attempts": 2,
                                                "backoff": {"type": "fixed", "delay": 0}}})
    job_id = (await r.json())["id"]
    job = await lease_one(client, names=["watched"])
    await client.post(f"/queues/jobs/{job_id}/heartbeat", json={"leaseToken": job["leaseToken"], "progress": 50})
    await client.post(f"/queues/jobs/{job_id}/fail", json={"leaseToken": job["leaseToken"], "error": "e"})
    job = await lease_one(client, names=["watched"])
    await client.post(f"/queues/jobs/{job_id}/complete", json={"leaseToken": job["leaseToken"], "result": 7})
    events = await asyncio.wait_for(_read_events(stream, 6), 10)
    assert [e for e, _ in events] == ["added", "active", "progress", "retrying", "active", "completed"]
    assert all(data["jobId"] == job_id for _, data in events)
    assert events[2][1]["progress"] == 50 and events[5][1]["result"] == 7
    stream.close()


async def test_a_client_that_stops_reading_is_dropped(make_client, monkeypatch):
    monkeypatch.setattr(streams, "EVENT_BUFFER", 20)
    monkeypatch.setattr(streams, "WRITE_TIMEOUT_S", 0.5)
    client = await make_client(max_body_bytes=4_000_000)
    dispatcher = client.server.app[SERVICE].dispatcher
    port = client.server.port
    # a raw socket that asks for the stream and then never reads a byte
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /queues/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(10):
        while len(dispatcher.events) == 0:
            await asyncio.sleep(0.01)
    big = "x" * 200_000
    for _ in range(60):  # about 12 MB of events: more than any socket buffer holds
        await client.post("/queues/jobs", json={"name": "x"})
        job = await lease_one(client)
        await client.post(f"/queues/jobs/{job['id']}/complete",
                          json={"leaseToken": job["leaseToken"], "result": big})
        if len(dispatcher.events) == 0:
            break
    async with asyncio.timeout(10):
        while len(dispatcher.events):
            await asyncio.sleep(0.01)
    writer.close()
    # the queue went on working throughout
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["completed"] >= 1 and metrics["active"] == 0


async def test_a_client_that_disconnects_is_unsubscribed(make_client):
    client = await make_client()
    dispatcher = client.server.app[SERVICE].dispatcher
    async with aiohttp.ClientSession() as session:
        response = await session.get(client.make_url("/queues/events"))
        await response.content.readuntil(b"\n\n")
        assert len(dispatcher.events) == 1
        response.close()
    await client.post("/queues/jobs", json={"name": "x"})  # the next write finds it gone
    async with asyncio.timeout(10):
        while len(dispatcher.events):
            await client.post("/queues/jobs", json={"name": "x"})
            await asyncio.sleep(0.01)


async def test_metrics_stay_right_across_a_restart(make_service):
    service = await make_service()
    for outcome in ("complete", "complete", "fail"):
        await service.add_job("m", {}, {"attempts": 1})
        (job,) = await service.dispatcher.leases.lease("default", None, 1, 60_000, 0)
        if outcome == "complete":
            await service.dispatcher.outcomes.complete(job.id, job.lease_token, None)
        else:
            await service.dispatcher.outcomes.fail(job.id, job.lease_token, Failure("x"))
    await service.add_job("m", {}, {"delay": 60_000})
    before = service.get_queue_metrics()
    await service.stop()
    revived = await make_service()
    after = revived.get_queue_metrics()
    assert after == before
    assert (after["completed"], after["failed"], after["delayed"], after["throughput"]) == (2, 1, 1, 2)


def test_metric_windows_count_by_second_and_forget_after_five_minutes():
    from queueapp.metrics import QueueMetrics

    m = QueueMetrics()
    start = 1_800_000_000_000
    for i in range(1000):  # a thousand jobs in one second take one bucket
        m.add_finish(start + i % 1000, 40, failed=i % 10 == 0)
    assert len(m.finished) == 1
    assert m.window(start + 1000) == (900, 40.0, 0.1)
    assert m.window(start + 61_000)[0] == 0  # out of the 60 s throughput window
    assert m.window(start + 299_000)[2] == 0.1  # still in the 5 minute window
    assert m.window(start + 302_000) == (0, 0.0, None)
    assert len(m.finished) == 0


async def test_the_background_reaper_returns_an_abandoned_lease(make_client):
    client = await make_client()
    dispatcher = client.server.app[SERVICE].dispatcher
    await client.post("/queues/jobs", json={"name": "x", "options": {"attempts": 2,
                                                                      "backoff": {"type": "fixed", "delay": 0}}})
    with dispatcher.events.subscribe() as events:
        job = await lease_one(client, leaseMs=1000)  # the shortest lease; nobody heartbeats
        stalled = await events.until(lambda e: e.type == "stalled", timeout=10)
    assert str(stalled.job_id) == job["id"]
    again = await (await client.get(f"/queues/jobs/{job['id']}")).json()
    assert again["state"] == "waiting" and again["attemptsMade"] == 1
    r = await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": job["leaseToken"]})
    assert r.status == 409


async def _read_blocks(response, count):
    """(id, event, data) of the next ``count`` events, comments skipped."""
    found, buffer = [], b""
    while len(found) < count:
        buffer += await response.content.readany()
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            lines = dict(line.split(": ", 1) for line in block.decode().splitlines() if not line.startswith(":"))
            if lines:
                found.append((lines.get("id"), lines["event"], json.loads(lines["data"])))
    return found


async def test_a_reconnecting_reader_resumes_after_its_last_event_or_is_told_of_a_gap(make_client):
    client = await make_client()
    stream = await client.get("/queues/events?name=seen")
    await stream.content.readuntil(b"\n\n")
    first = (await (await client.post("/queues/jobs", json={"name": "seen"})).json())["id"]
    ((last_id, kind, data),) = await asyncio.wait_for(_read_blocks(stream, 1), 10)
    assert kind == "added" and data["jobId"] == first and last_id
    stream.close()
    missed = [(await (await client.post("/queues/jobs", json={"name": name})).json())["id"]
              for name in ("seen", "other", "seen", "seen")]

    again = await client.get("/queues/events?name=seen", headers={"Last-Event-ID": last_id})
    await again.content.readuntil(b"\n\n")
    later = (await (await client.post("/queues/jobs", json={"name": "seen"})).json())["id"]
    blocks = await asyncio.wait_for(_read_blocks(again, 4), 10)
    assert [d["jobId"] for _, _, d in blocks] == [missed[0], missed[2], missed[3], later]  # in order, once each
    ids = [i for i, _, _ in blocks]
    assert len(set(ids)) == 4 and all(i.split("-")[0] == last_id.split("-")[0] for i in ids)
    again.close()

    # an id of another run: the reader is told, then goes on live
    other = await client.get("/queues/events?name=seen&lastEventId=1-5")
    await other.content.readuntil(b"\n\n")
    ((_, kind, data),) = await asyncio.wait_for(_read_blocks(other, 1), 10)
    assert kind == "gap" and data["after"] == "1-5"
    other.close()

    # older than the events kept: a gap, then what is kept
    bus = client.server.app[SERVICE].events
    bus._recent = type(bus._recent)(list(bus._recent)[-2:], maxlen=2)
    old = await client.get("/queues/events?name=seen", headers={"Last-Event-ID": last_id})
    await old.content.readuntil(b"\n\n")
    blocks = await asyncio.wait_for(_read_blocks(old, 3), 10)
    assert blocks[0][1] == "gap" and blocks[0][2]["from"] == bus.event_id(bus.last_seq - 1)
    assert [d["jobId"] for _, _, d in blocks[1:]] == [missed[3], later]
    old.close()
