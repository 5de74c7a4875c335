"""Built-in job types against real peers on loopback: an HTTP server, an SMTP server,
the sqlite3 library reading a backup, and the files of a report."""

from __future__ import annotations

import asyncio
import csv
import email
import json
import sqlite3
import subprocess
import sys

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from queueapp.api.keys import SERVICE
from queueapp.model import JobState


@pytest.fixture
async def peer(aiohttp_server):
    """A local HTTP server whose answer each test scripts, recording every request."""
    seen: list[dict] = []
    script: dict = {"answers": []}

    async def anything(request: web.Request) -> web.StreamResponse:
        body = await request.text()
        seen.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                     "body": json.loads(body) if body else None})
        answer = script["answers"].pop(0) if script["answers"] else {"status": 200, "json": {"ok": True}}
        if answer.get("sleep"):
            await asyncio.sleep(answer["sleep"])
        return web.json_response(answer.get("json", {}), status=answer["status"],
                                 headers=answer.get("headers"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = await aiohttp_server(app)
    return server, seen, script


async def run_job(client, body, *, until=("completed", "failed")):
    """Enqueue over HTTP and wait (on the event stream) until the job settles."""
    dispatcher = client.server.app[SERVICE].dispatcher
    with dispatcher.events.subscribe() as events:
        r = await client.post("/queues/jobs", json=body)
        assert r.status == 201, await r.text()
        job_id = int((await r.json())["id"])
        event = await events.until(lambda e: e.job_id == job_id and e.type in until, timeout=20)
    job = await (await client.get(f"/queues/jobs/{job_id}")).json()
    return event, job


async def test_http_job_success_sends_an_idempotency_key(make_client, peer):
    server, seen, script = peer
    client = await make_client(http_allowed_hosts="127.0.0.1")
    script["answers"] = [{"status": 201, "json": {"created": 7}}]
    event, job = await run_job(client, {"name": "http", "data": {
        "url": str(server.make_url("/hooks/order")), "method": "POST", "body": {"order": 7},
        "headers": {"X-Trace": "abc"}}})
    assert event.type == "completed"
    assert job["result"] == {"status": 201, "body": {"created": 7}}
    assert seen[0]["headers"]["Idempotency-Key"] == job["id"]
    assert seen[0]["headers"]["X-Trace"] == "abc" and seen[0]["body"] == {"order": 7}


async def test_http_job_retries_5xx_then_succeeds(make_client, peer):
    server, seen, script = peer
    client = await make_client(http_allowed_hosts="127.0.0.1")
    script["answers"] = [{"status": 500}, {"status": 503}, {"status": 200, "json": {"fine": 1}}]
    event, job = await run_job(client, {"name": "http", "data": {"url": str(server.make_url("/x"))},
                                        "options": {"attempts": 3, "backoff": {"type": "fixed", "delay": 10}}})
    assert event.type == "completed" and job["attemptsMade"] == 3
    assert [e["message"][:8] for e in job["errors"]] == ["HTTP 500", "HTTP 503"]
    assert len({s["headers"]["Idempotency-Key"] for s in seen}) == 1  # the same key on every retry


async def test_http_job_4xx_fails_for_good(make_client, peer):
    server, seen, script = peer
    client = await make_client(http_allowed_hosts="127.0.0.1")
    script["answers"] = [{"status": 404, "json": {"error": "gone"}}]
    event, job = await run_job(client, {"name": "http", "data": {"url": str(server.make_url("/x"))},
                                        "options": {"attempts": 5}})
    assert event.type == "failed" and job["attemptsMade"] == 1
    assert job["error"].startswith("HTTP 404")


async def test_http_job_429_waits_for_retry_after(make_client, peer):
    server, seen, script = peer
    client = await make_client(http_allowed_hosts="127.0.0.1")
    script["answers"] = [{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 200}]
    dispatcher = client.server.app[SERVICE].dispatcher
    with dispatcher.events.subscribe() as events:
        r = await client.post("/queues/jobs", json={
            "name": "http", "data": {"url": str(server.make_url("/x"))},
            "options": {"attempts": 2, "backoff": {"type": "fixed", "delay": 60_000}}})
        job_id = int((await r.json())["id"])
        retrying = await events.until(lambda e: e.type == "retrying", timeout=20)
        await events.until(lambda e: e.type == "completed", timeout=20)
    job = await (await client.get(f"/queues/jobs/{job_id}")).json()
    # the server's Retry-After (1 s), not the job's 60 s backoff
    assert retrying.detail["runAt"] <= job["finishedAt"]
    assert job["state"] == "completed" and job["attemptsMade"] == 2
    assert "429" in job["errors"][0]["message"]


async def test_http_job_timeout_retries(make_client, peer):
    server, seen, script = peer
    client = await make_client(http_allowed_hosts="127.0.0.1")
    script["answers"] = [{"status": 200, "sleep": 2}, {"status": 200, "json": {"late": False}}]
    event, job = await run_job(client, {"name": "http", "data": {"url": str(server.make_url("/slow")),
                                                                 "timeoutMs": 200},
                                        "options": {"attempts": 2, "backoff": {"type": "fixed", "delay": 0}}})
    assert event.type == "completed"
    assert "timed out after 200 ms" in job["errors"][0]["message"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "data.url is required"),
        ({"url": "ftp://example.com/file"}, "http:// or https://"),
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        ({"url": "http://"}, "no host"),
        ({"url": "http://x", "method": "BREW"}, "data.method"),
        ({"url": "http://x", "timeoutMs": 0}, "timeoutMs"),
    ],
)
async def test_bad_http_jobs_are_refused_at_enqueue(make_client, db_path, data, message):
    client = await make_client(http_allowed_hosts="127.0.0.1")
    r = await client.post("/queues/jobs", json={"name": "http", "data": data})
    assert r.status == 400
    assert message in (await r.json())["error"]["message"]
    r = await client.post("/queues/jobs/bulk", json={"jobs": [{"name": "x"}, {"name": "http", "data": data}]})
    assert r.status == 400
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("select count(*) from jobs").fetchone()[0] == 0


@pytest.fixture
def smtp_server():
    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            received.append(envelope)
            return "250 OK"

    from conftest import free_port

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, received
    controller.stop()


async def test_send_email_reaches_a_real_smtp_server(make_client, smtp_server):
    controller, received = smtp_server
    client = await make_client(smtp_host="127.0.0.1", smtp_port=controller.port,
                               smtp_security="none", smtp_from="robot@example.com")
    event, job = await run_job(client, {"name": "send-email", "data": {
        "to": "user@example.com", "subject": "Welcome", "body": "Hello!"}})
    assert event.type == "completed", job["error"]
    assert job["result"] == {"accepted": ["user@example.com"], "refused": []}
    (envelope,) = received
    assert envelope.mail_from == "robot@example.com" and envelope.rcpt_tos == ["user@example.com"]
    message = email.message_from_bytes(envelope.content)
    assert message["Subject"] == "Welcome" and message.get_payload().strip() == "Hello!"


async def test_send_email_without_smtp_fails_saying_so(make_client):
    client = await make_client(builtin_jobs="send-email")
    event, job = await run_job(client, {"name": "send-email", "data": {"to": "user@example.com"}})
    assert event.type == "failed" and job["attemptsMade"] == 1
    assert "set smtp_host" in job["error"]


async def test_send_email_with_a_bad_address_is_refused(make_client):
    client = await make_client(builtin_jobs="send-email")
    r = await client.post("/queues/jobs", json={"name": "send-email", "data": {"to": "nobody"}})
    assert r.status == 400 and "data.to" in (await r.json())["error"]["message"]


async def test_process_payment_calls_the_endpoint_with_the_job_id_as_key(make_client, peer):
    server, seen, script = peer
    client = await make_client(payment_url=str(server.make_url("/charges")), payment_token="sk_test")
    script["answers"] = [{"status": 500}, {"status": 200, "json": {"charge": "ch_1"}}]
    event, job = await run_job(client, {"name": "process-payment", "data": {"amount": 99.99, "userId": "123"},
                                        "options": {"backoff": {"type": "fixed", "delay": 0}}})
    assert event.type == "completed"
    assert job["result"] == {"status": 200, "body": {"charge": "ch_1"}}
    assert [s["body"] for s in seen] == [{"amount": 99.99, "currency": "USD", "userId": "123",
                                          "reference": job["id"]}] * 2
    assert {s["headers"]["Idempotency-Key"] for s in seen} == {job["id"]}
    assert seen[0]["headers"]["Authorization"] == "Bearer sk_test"


async def test_process_payment_without_an_endpoint_fails_saying_so(make_client):
    client = await make_client(builtin_jobs="process-payment")
    event, job = await run_job(client, {"name": "process-payment", "data": {"amount": 5, "userId": "1"}})
    assert event.type == "failed" and "set payment_url" in job["error"]
    r = await client.post("/queues/jobs", json={"name": "process-payment", "data": {"amount": -5, "userId": "1"}})
    assert r.status == 400


async def test_backup_opens_in_sqlite_and_restore_brings_it_back(make_client, tmp_path, db_path):
    backups = tmp_path / "backups"
    client = await make_client(backup_dir=str(backups), backup_keep=2)
    for i in range(5):
        await client.post("/queues/jobs", json={"name": "keep-me", "data": {"i": i}})
    _, job = await run_job(client, {"name": "backup-data"})
    path = job["result"]["path"]
    assert job["result"]["size"] > 0
    copy = sqlite3.connect(path)
    names = [r[0] for r in copy.execute("select name from jobs where name = 'keep-me' order by id")]
    assert names == ["keep-me"] * 5
    assert copy.execute("pragma integrity_check").fetchone()[0] == "ok"
    copy.close()
    for _ in range(2):
        _, newest = await run_job(client, {"name": "backup-data"})
    kept = sorted(str(p.resolve()) for p in backups.glob("queueapp-*.db"))
    assert len(kept) == 2 and path not in kept  # the newest two are kept
    path = newest["result"]["path"]
    # restore into a fresh database with the command-line tool
    target = tmp_path / "restored.db"
    result = subprocess.run([sys.executable, "-m", "queueapp", "restore", path, "--db", str(target)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(target) as conn:
        assert conn.execute("select count(*) from jobs where name = 'keep-me'").fetchone()[0] == 5
    bad = tmp_path / "not-a-db"
    bad.write_text("hello")
    result = subprocess.run([sys.executable, "-m", "queueapp", "restore", str(bad), "--db", str(target)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot restore" in result.stderr


async def test_report_numbers_match_the_jobs_run(make_client, tmp_path):
    client = await make_client(report_dir=str(tmp_path / "reports"))
    service = client.server.app[SERVICE]
    for name, outcome, n in [("resize", "complete", 3), ("resize", "fail", 1), ("email", "complete", 2)]:
        for _ in range(n):
            await client.post("/queues/jobs", json={"name": name, "options": {"attempts": 1}})
            (job,) = (await (await client.post("/queues/jobs/lease", json={"names": [name]})).json())["jobs"]
            body = {"leaseToken": job["leaseToken"]}
            if outcome == "fail":
                body["error"] = "disk full"
            r = await client.post(f"/queues/jobs/{job['id']}/{outcome}", json=body)
            assert r.status == 200, await r.text()
    _, job = await run_job(client, {"name": "generate-report", "data": {"windowMs": 3_600_000}})
    assert job["state"] == "completed", job["error"]
    report = json.loads(open(job["result"]["json"]).read())
    assert report["completed"] == 5 and report["failed"] == 1
    by_name = {r["name"]: r for r in report["byName"]}
    assert (by_name["resize"]["completed"], by_name["resize"]["failed"]) == (3, 1)
    assert by_name["email"]["completed"] == 2
    assert report["failureReasons"] == [{"error": "disk full", "count": 1}]
    assert report["counts"]["completed"] == 5 and report["counts"]["failed"] == 1
    assert report["throughputPerMinute"] == round(5 / 60, 3)
    rows = list(csv.DictReader(open(job["result"]["csv"])))
    assert {(r["name"], r["completed"], r["failed"]) for r in rows} == {("email", "2", "0"), ("resize", "3", "1")}
    assert service.dispatcher.metrics.of("default").counts[JobState.COMPLETED] == 6  # the report job too
