"""Reproduced defects through the library, the built-in jobs and the worker, with
real peers on loopback (an HTTP server, an SMTP server, a proxy); after each the
self-audit finds memory and table in agreement."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiohttp import web
from conftest import free_port, wait_for

from queueapp.api.keys import SERVICE
from queueapp.background.recovery import LeaseReaper
from queueapp.clock import Clock, FakeClock
from queueapp.errors import ValidationFailed
from queueapp.model import JobState
from queueapp.workers.http_call import MAX_RETRY_AFTER_MS, retry_after_ms

HERE = Path(__file__).parent.parent


async def settle(service) -> None:
    """Wait until memory and table agree (work may still be committing)."""
    await wait_for(lambda: _clean(service))


async def _clean(service) -> bool:
    problems = await service.dispatcher.audit()
    return not problems


async def test_6_one_failing_schedule_does_not_stop_the_others(make_service, registry):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    await service.schedule_recurring_job("fragile", every_ms=1000, job_name="strict")
    await service.schedule_recurring_job("steady", every_ms=1000, job_name="plain")

    def refuse(data):
        raise ValueError("no longer acceptable")

    registry.validator("strict", refuse)  # the job became invalid after the schedule was made
    clock.advance(1000)
    assert await service.scheduler.tick() == 1
    clock.advance(1000)
    assert await service.scheduler.tick() == 1  # steady fires on; fragile waits out its retry
    assert service.get_queue_metrics()["waiting"] == 2
    await settle(service)


def test_7_retry_after_is_bounded():
    assert retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT") == MAX_RETRY_AFTER_MS
    assert retry_after_ms("99999999999999999999") == MAX_RETRY_AFTER_MS
    assert retry_after_ms("²") is None
    assert retry_after_ms("120") == 120_000


@pytest.mark.parametrize("header", ["99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_7_a_server_cannot_push_a_job_past_a_day(make_client, aiohttp_server, header):
    async def busy(request):
        return web.json_response({}, status=429, headers={"Retry-After": header})

    app = web.Application()
    app.router.add_get("/", busy)
    peer = await aiohttp_server(app)
    client = await make_client(http_allowed_hosts="127.0.0.1", audit_interval_ms=60_000)
    service = client.server.app[SERVICE]
    with service.dispatcher.events.subscribe() as events:
        r = await client.post("/queues/jobs", json={"name": "http", "data": {"url": str(peer.make_url("/"))}})
        job = await r.json()
        await events.until(lambda e: e.type == "retrying" and e.job_id == int(job["id"]))
    stored = await service.get_job(int(job["id"]))
    assert stored.state is JobState.DELAYED
    assert stored.run_at <= service.clock.now_ms() + MAX_RETRY_AFTER_MS
    assert (await (await client.get("/debug/audit")).json())["ok"]


class SteppedClock(Clock):
    """Real time, with a wall clock that can be stepped (NTP, an operator)."""

    def __init__(self) -> None:
        self.step = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.step


async def test_10_a_wall_clock_step_expires_no_lease(make_service):
    clock = SteppedClock()
    service = await make_service(clock=clock, background=False)
    await service.add_job("external")
    (job,) = await service.dispatcher.leases.lease("default", None, 1, 30_000, 0)
    clock.step = 3_600_000
    assert await LeaseReaper(service.dispatcher).tick() == 0
    assert (await service.get_job(job.id)).state is JobState.ACTIVE
    await service.dispatcher.outcomes.complete(job.id, job.lease_token, None)
    await settle(service)


async def test_11_a_cancelled_add_job_still_reaches_the_line(make_service):
    service = await make_service()
    for yields in range(12):
        task = asyncio.create_task(service.add_job("external", {"n": yields}))
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await settle(service)  # every committed job is in line, every count right
    waiting = service.get_queue_metrics()["waiting"]
    leased = await service.dispatcher.leases.lease("default", None, 100, 30_000, 0)
    assert len(leased) == waiting


async def test_11_a_cancelled_lease_hands_its_jobs_back(make_service):
    service = await make_service()
    for yields in range(12):
        job = await service.add_job("external", {}, {"attempts": 1})
        task = asyncio.create_task(service.dispatcher.leases.lease("default", None, 1, 60_000, 1000))
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        got = await asyncio.gather(task, return_exceptions=True)

        async def returned(job_id=job.id, got=got):
            stored = await service.get_job(job_id)
            # a lease that finished before the cancel keeps its job; any other is back in line
            return stored.state is JobState.WAITING or (isinstance(got[0], list) and got[0])

        await wait_for(returned)
    await settle(service)


async def _flaky_proxy(aiohttp_server, target: str, faults: dict[str, list]) -> str:
    """A proxy on loopback in front of the appliance that answers some requests itself
    (a restart's 503, a load balancer's 502 page) before forwarding the rest."""
    import aiohttp

    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        kind = request.path.rsplit("/", 1)[-1]
        if faults.get(kind):
            status, content_type, text = faults[kind].pop(0)
            return web.Response(status=status, text=text, content_type=content_type)
        async with session.request(request.method, target + request.path_qs, data=await request.read(),
                                   headers={"Content-Type": "application/json"}) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(lambda _app: session.close())
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_12_the_worker_rides_out_a_proxy_error_and_a_503(serve, http, aiohttp_server):
    from queueapp.client import QueueClient, RemoteWorker
    from queueapp.workers.registry import HandlerRegistry

    server = serve("--audit-interval-ms", "60000")
    faults = {"lease": [(502, "text/html", "<html>Bad Gateway</html>")],
              "complete": [(503, "application/json", '{"error":{"code":"store_unavailable","message":"x"}}')]}
    url = await _flaky_proxy(aiohttp_server, server.url, faults)
    async with http.post(f"{server.url}/queues/jobs", json={"name": "work", "options": {"attempts": 1}}) as r:
        job_id = (await r.json())["id"]
    registry = HandlerRegistry()
    registry.register("work", lambda job: asyncio.sleep(0, {"done": job.id}))
    stop = asyncio.Event()
    async with QueueClient(url) as client:
        worker = RemoteWorker(client, registry, lease_ms=5000, poll_ms=200)
        running = asyncio.create_task(worker.run(stop))
        await wait_for(lambda: worker.completed == 1, timeout=20)
        stop.set()
        await running
    async with http.get(f"{server.url}/queues/jobs/{job_id}") as r:
        job = await r.json()
    assert job["state"] == "completed" and job["attemptsMade"] == 1
    assert faults == {"lease": [], "complete": []}
    async with http.get(f"{server.url}/debug/audit") as r:
        assert (await r.json())["ok"]


def test_12_a_worker_with_a_wrong_token_exits_saying_so(serve):
    server = serve("--token", "right")
    result = subprocess.run(
        [sys.executable, "-m", "queueapp", "worker", "--url", server.url, "--handlers", "worker_handlers",
         "--token", "wrong"], capture_output=True, text=True, timeout=30, cwd=HERE)
    assert result.returncode == 1
    assert "token" in result.stderr and result.stderr.count("\n") <= 3, result.stderr


@pytest.fixture
def stalling_smtp():
    """An SMTP server that holds each RCPT until the test opens the gate, and records
    whether the client had gone by then (or went meanwhile), and every message received."""
    from aiosmtpd.controller import Controller

    gate = threading.Event()
    client_gone: list[bool] = []
    received: list = []

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            try:
                await asyncio.get_running_loop().run_in_executor(None, gate.wait, 20)
            except asyncio.CancelledError:  # aiosmtpd stops a session whose client has gone
                client_gone.append(True)
                raise
            client_gone.append(server.transport is None or server.transport.is_closing())
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append(envelope)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, gate, client_gone, received
    gate.set()
    controller.stop()


async def test_13_a_timed_out_email_is_not_sent_after_all(make_client, stalling_smtp):
    controller, gate, client_gone, received = stalling_smtp
    client = await make_client(smtp_host="127.0.0.1", smtp_port=controller.port, smtp_security="none")
    service = client.server.app[SERVICE]
    with service.dispatcher.events.subscribe() as events:
        r = await client.post("/queues/jobs", json={"name": "send-email", "data": {"to": "a@example.com"},
                                                    "options": {"attempts": 1, "timeout": 300}})
        job_id = int((await r.json())["id"])
        await events.until(lambda e: e.type == "failed" and e.job_id == job_id)
    gate.set()
    await wait_for(lambda: client_gone)
    assert client_gone == [True] and received == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]/", "http://10.0.0.1/", "http://0.0.0.0/"])
async def test_14_http_jobs_to_inner_addresses_are_refused_at_enqueue(make_client, db_path, url):
    client = await make_client()
    r = await client.post("/queues/jobs", json={"name": "http", "data": {"url": url}})
    assert r.status == 400
    assert "http_allowed_hosts" in (await r.json())["error"]["message"]


async def test_14_names_and_redirects_that_lead_inside_are_refused(make_client, aiohttp_server):
    async def hop(request):
        raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/secret")

    app = web.Application()
    app.router.add_get("/hop", hop)
    peer = await aiohttp_server(app)
    client = await make_client(http_allowed_hosts="127.0.0.1")
    service = client.server.app[SERVICE]
    for url in (f"http://localhost:{peer.port}/hop", str(peer.make_url("/hop"))):
        with service.dispatcher.events.subscribe() as events:
            allowed_host = url.startswith("http://127.0.0.1")
            r = await client.post("/queues/jobs", json={"name": "http", "data": {"url": url}})
            job_id = int((await r.json())["id"])
            await events.until(lambda e, j=job_id: e.type == "failed" and e.job_id == j)
        job = await service.get_job(job_id)
        assert "refused" in job.error and ("127.0.0.2" in job.error if allowed_host else "localhost" in job.error)
        assert job.attempts_made == 1  # refused for good, not retried


@pytest.mark.sqlite_only
async def test_15_a_backup_finishes_under_steady_writes(make_service, tmp_path):
    from queueapp.model import NewJob

    service = await make_service()
    store = service.store
    pad = "x" * 1000
    for _ in range(2):
        await service.dispatcher.add([NewJob("default", "fill", {"pad": pad}, 3, 1, 0) for _ in range(10_000)])
    stop = asyncio.Event()

    async def writer():
        while not stop.is_set():
            await service.add_job("steady", {"pad": pad})

    writers = [asyncio.create_task(writer()) for _ in range(4)]
    try:
        async with asyncio.timeout(60):
            size = await store.backup_to(str(tmp_path / "copy.db"))
    finally:
        stop.set()
        await asyncio.gather(*writers)
    import sqlite3

    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert copy.execute("select count(*) from jobs where name = 'fill'").fetchone()[0] == 20_000
    assert size > 20_000_000
    await settle(service)


async def test_16_leasing_across_thirty_thousand_names_keeps_global_order(make_client):
    client = await make_client(audit_interval_ms=60_000)
    ids = []
    for block in range(3):
        r = await client.post("/queues/jobs/bulk", json={"jobs": [
            {"name": f"name-{block}-{i}"} for i in range(10_000)]})
        ids += [j["id"] for j in (await r.json())["jobs"]]
    r = await client.post("/queues/jobs/lease", json={"max": 1000})
    assert [j["id"] for j in (await r.json())["jobs"]] == ids[:1000]
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_17_reads_of_unknown_queues_create_nothing_and_empty_queues_are_forgotten(make_client):
    client = await make_client(audit_interval_ms=60_000)
    service = client.server.app[SERVICE]
    before = set(service.dispatcher.queues)
    for i in range(200):
        for path in ("/queues/metrics", "/queues/health", "/queues/jobs", "/queues/jobs/failed"):
            assert (await client.get(f"{path}?queue=ghost-{i}")).status in (200, 503)
        r = await client.post(f"/queues/jobs/lease?queue=ghost-{i}", json={"waitMs": 0})
        assert (await r.json())["jobs"] == []
    assert set(service.dispatcher.queues) == before
    assert set(service.dispatcher.metrics.queues) <= before
    # a long poll on a queue that does not exist yet is woken by its first job
    poll = asyncio.create_task(client.post("/queues/jobs/lease?queue=fresh", json={"waitMs": 10_000}))
    await asyncio.sleep(0.05)
    r = await client.post("/queues/jobs?queue=fresh", json={"name": "x"})
    job = await r.json()
    answer = await (await poll).json()
    assert [j["id"] for j in answer["jobs"]] == [job["id"]]
    r = await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": answer["jobs"][0]["leaseToken"]})
    assert r.status == 200
    await client.post("/queues/clean?queue=fresh", json={"grace": 0})
    assert service.reclaim_memory() >= 1
    assert "fresh" not in service.dispatcher.queues
    assert (await client.post("/queues/jobs?queue=fresh", json={"name": "again"})).status == 201
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_18_schedules_and_retries_count_against_the_rate_limit(make_client):
    client = await make_client(rate_limit=1, rate_burst=1)
    first = await client.post("/queues/schedules", json={"name": "a", "everyMs": 60_000})
    second = await client.post("/queues/schedules", json={"name": "b", "everyMs": 60_000})
    assert (first.status, second.status) == (201, 429)


@pytest.mark.parametrize("trusted", ["127.0.0.1", ""])
async def test_18_clients_behind_a_trusted_proxy_have_buckets_of_their_own(make_client, trusted):
    client = await make_client(rate_limit=1, rate_burst=1, trusted_proxies=trusted)

    async def post(forwarded):
        return (await client.post("/queues/jobs", json={"name": "x"},
                                  headers={"X-Forwarded-For": forwarded})).status

    statuses = [await post("203.0.113.1"), await post("203.0.113.1"), await post("203.0.113.2")]
    assert statuses == ([201, 429, 201] if trusted else [201, 429, 429])


async def test_20_reports_of_queues_with_dots_do_not_overwrite_each_other(make_client, tmp_path):
    client = await make_client(report_dir=str(tmp_path / "reports"))
    service = client.server.app[SERVICE]
    paths = []
    for queue in ("emails.v2", "emails.v3"):
        with service.dispatcher.events.subscribe() as events:
            r = await client.post("/queues/jobs", json={"name": "generate-report", "data": {"queue": queue}})
            job_id = int((await r.json())["id"])
            await events.until(lambda e, j=job_id: e.type == "completed" and e.job_id == j)
        result = (await service.get_job(job_id)).result
        assert result["json"].endswith(".json") and result["csv"].endswith(".csv")
        assert f"report-{queue}-" in result["json"]
        paths += [result["json"], result["csv"]]
    assert len(set(paths)) == 4 and all(Path(p).is_file() for p in paths)


async def test_20_secrets_are_redacted_from_job_errors_and_logs(make_client, caplog):
    port = free_port()  # nothing listens there: the payment call fails, naming its URL
    client = await make_client(payment_url=f"http://shop:hunter2secret@127.0.0.1:{port}/charges",
                               payment_token="tok_supersecret", token="api-token-secret")
    service = client.server.app[SERVICE]
    headers = {"Authorization": "Bearer api-token-secret"}
    with service.dispatcher.events.subscribe() as events:
        r = await client.post("/queues/jobs", headers=headers, json={
            "name": "process-payment", "data": {"amount": 5, "userId": 1}, "options": {"attempts": 1}})
        job_id = int((await r.json())["id"])
        await events.until(lambda e: e.type == "failed" and e.job_id == job_id)
    answer = await (await client.get(f"/queues/jobs/{job_id}", headers=headers)).text()
    assert "127.0.0.1" in answer and "hunter2secret" not in answer
    from queueapp.logs import LogfmtFormatter

    text = "\n".join(LogfmtFormatter().format(record) for record in caplog.records)
    for secret in ("hunter2secret", "tok_supersecret", "api-token-secret"):
        assert secret not in text


def test_20_the_log_format_hides_registered_secrets():
    import logging

    from queueapp.logs import LogfmtFormatter
    from queueapp.redact import register_secret

    register_secret("s3cr3t-value")
    record = logging.LogRecord("queueapp", logging.INFO, __file__, 1, "calling %s", ("https://u:pw@h/x",), None)
    record.detail = "token s3cr3t-value"
    line = LogfmtFormatter().format(record)
    assert "pw@" not in line and "s3cr3t-value" not in line and "***" in line


def test_library_inputs_are_bounded_too():
    from queueapp.options import JobOptions

    with pytest.raises(ValueError):
        JobOptions.model_validate({"removeOnComplete": 2**63})
    assert json.dumps(True)  # keep json imported for the module's other tests


async def test_library_clean_refuses_unbounded_grace(make_service):
    service = await make_service()
    with pytest.raises(ValidationFailed):
        await service.clean(2**64)


async def test_the_self_audit_sees_each_kind_of_difference(make_service):
    """The audit is only worth its silence if it speaks up: break memory on purpose."""
    from queueapp.dispatch.lanes import pack

    service = await make_service()
    waiting = await service.add_job("external")
    delayed = await service.add_job("external", {}, {"delay": 60_000})
    (active,) = await service.dispatcher.leases.lease("default", ["external"], 1, 60_000, 0)
    assert active.id == waiting.id
    another = await service.add_job("external")
    assert await service.dispatcher.audit() == []
    ledger = service.dispatcher.ledger
    q = ledger.queues["default"]
    service.dispatcher.source.lanes["default"].lane("external").kill(pack(another.priority, another.run_at, another.id))
    ledger.timers.kill(delayed.run_at, delayed.id)
    ledger.active.pop(active.id)
    ledger.metrics.of("default").counts[JobState.COMPLETED] += 1
    q.running += 1
    problems = "\n".join(await service.dispatcher.audit())
    assert f"job {another.id} is waiting in the table but in no lane" in problems
    assert f"job {delayed.id} is delayed in the table but has no timer" in problems
    assert f"job {active.id} is active in the table but unknown in memory" in problems
    assert "completed count is 1 in memory, 0 in the table" in problems
    assert "in-process slots taken" in problems
    q.running -= 1  # let the service stop cleanly
