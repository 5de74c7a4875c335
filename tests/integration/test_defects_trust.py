"""Defects found by trying the appliance as an attacker, a careless operator and a
busy producer would, each against a real ``queueapp serve`` (or the real CLI): each
fails on the code that had it and passes now, and ends with a clean self-audit
where the appliance kept running."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from conftest import free_port, iso_ms, wait_for

AUDIT = ("--audit-interval-ms", "60000")
SECRET = "whsec-trust-1"


async def audit_clean(http, url: str) -> None:
    async with http.get(f"{url}/debug/audit") as r:
        body = await r.json()
    assert r.status == 200 and body == {"ok": True, "problems": []}, body


async def call(http, method: str, url: str, body=None, **kwargs):
    async with http.request(method, url, json=body, **kwargs) as r:
        return r.status, await r.json()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUEUEAPP_")}
    return subprocess.run([sys.executable, "-m", "queueapp", *args], capture_output=True, text=True,
                          timeout=60, env={**clean, **(env or {})})


class Receiver:
    """An HTTP peer on loopback that says whether each call it got was signed with
    ``SECRET`` (as docs/api.md tells a receiver to check)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        stamp = request.headers.get("X-Queueapp-Timestamp", "")
        given = request.headers.get("X-Queueapp-Signature")
        expected = "v1=" + hmac.new(SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
        self.calls.append({"path": request.path, "signed": given is not None,
                           "verified": given is not None and hmac.compare_digest(given, expected),
                           "body": body})
        self.arrived.set()
        return web.json_response({"ok": True})

    async def next_call(self) -> dict:
        await asyncio.wait_for(self.arrived.wait(), 30)
        self.arrived.clear()
        return self.calls[-1]


async def start_receiver(aiohttp_server, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


# -- 1. a signing oracle ----------------------------------------------------------------


async def test_1_nothing_a_producer_sends_is_signed_only_the_appliances_callbacks(serve, http, aiohttp_server):
    receiver = Receiver()
    base = await start_receiver(aiohttp_server, receiver)
    server = serve(*AUDIT, "--http-allowed-hosts", "127.0.0.1", env={"QUEUEAPP_CALLBACK_SECRET": SECRET})
    forged = {"id": "42", "state": "completed", "result": {"paid": 1_000_000}}
    for queue in ("default", "queueapp.callbacks"):
        status, body = await call(http, "POST", f"{server.url}/queues/jobs?queue={queue}", {
            "name": "http", "data": {"url": f"{base}/forged", "method": "POST", "body": forged, "sign": True}})
        assert status == 400 and body["error"]["details"][0]["field"] == "data", body
        assert "sign" in body["error"]["message"]
    # the same call without "sign" goes out, unsigned, even from the callbacks' queue
    status, _ = await call(http, "POST", f"{server.url}/queues/jobs?queue=queueapp.callbacks", {
        "name": "http", "data": {"url": f"{base}/plain", "method": "POST", "body": forged}})
    assert status == 201
    plain = await receiver.next_call()
    assert plain["path"] == "/plain" and not plain["signed"]
    # a finished job's own callback is signed, and verifies
    _, job = await call(http, "POST", f"{server.url}/queues/jobs?queue=work",
                        {"name": "resize", "options": {"callbackUrl": f"{base}/hook"}})
    _, leased = await call(http, "POST", f"{server.url}/queues/jobs/lease?queue=work", {"max": 1})
    await call(http, "POST", f"{server.url}/queues/jobs/{job['id']}/complete",
               {"leaseToken": leased["jobs"][0]["leaseToken"], "result": {"ok": 1}})
    hook = await receiver.next_call()
    assert hook["path"] == "/hook" and hook["verified"], hook
    assert all(c["path"] != "/forged" for c in receiver.calls)
    await audit_clean(http, server.url)


async def test_1_a_stored_http_job_asking_for_a_signature_outside_the_callbacks_is_sent_unsigned(
        aiohttp_server, make_service):
    """A job stored before the refusal existed (its data says sign) is not signed."""
    from queueapp.workers.builtin import BuiltinJobs, BuiltinSettings
    from queueapp.workers.http_call import http_job
    from queueapp.workers.registry import JobContext

    receiver = Receiver()
    base = await start_receiver(aiohttp_server, receiver)
    service = await make_service(background=False)
    builtins = BuiltinJobs(service.store, service.clock, BuiltinSettings(
        None, "", "", ".", 1, ".", "127.0.0.1", callback_secret=SECRET))
    try:
        from queueapp.model import Job, JobState

        job = Job(id=7, queue="default", name="http", state=JobState.ACTIVE, priority=3,
                  data={"url": f"{base}/old", "method": "POST", "body": {"x": 1}, "sign": True},
                  options={}, attempts=1, attempts_made=1, progress=None, result=None, error=None, errors=[],
                  job_key=None, created_at=0, run_at=0, started_at=0, finished_at=None)

        async def progress(_value: object) -> None:
            return None

        await http_job(builtins.http, JobContext(job, progress), SECRET)
    finally:
        await builtins.close()
    old = await receiver.next_call()
    assert old["path"] == "/old" and not old["signed"]


# -- 2. an empty secret file --------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   \n\t\n"])
@pytest.mark.parametrize("how", ["env", "option", "toml"])
def test_2_an_empty_or_blank_secret_file_is_refused_at_start(tmp_path, content, how):
    secret = tmp_path / "token"
    secret.write_text(content)
    port = free_port()
    args = ["serve", "--db", str(tmp_path / "q.db"), "--port", str(port)]
    env = {}
    if how == "env":
        env["QUEUEAPP_TOKEN_FILE"] = str(secret)
    elif how == "option":
        args += ["--token-file", str(secret)]
    else:
        config = tmp_path / "queueapp.toml"
        config.write_text(f'token_file = "{secret}"\n')
        args += ["--config", str(config)]
    result = cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "token" in lines[0] and "empty" in lines[0], result.stderr
    assert not (tmp_path / "q.db").exists()


@pytest.mark.parametrize("setting", ["READ_TOKEN", "CALLBACK_SECRET", "PAYMENT_TOKEN", "SMTP_PASSWORD"])
def test_2_every_secret_file_refuses_empty_and_unreadable(tmp_path, setting):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env = {"QUEUEAPP_TOKEN": "admin-token-1"} if setting == "READ_TOKEN" else {}
    for path in (empty, tmp_path / "missing"):
        result = cli("serve", "--db", str(tmp_path / "q.db"), "--port", str(free_port()),
                     env={**env, f"QUEUEAPP_{setting}_FILE": str(path)})
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert setting.lower() in result.stderr
    blank = cli("serve", "--db", str(tmp_path / "q.db"), "--port", str(free_port()), env={"QUEUEAPP_TOKEN": "  "})
    assert blank.returncode == 2 and "blank" in blank.stderr


def test_2_the_admin_cli_refuses_an_empty_token_file(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("")
    result = cli("queues", "--url", f"http://127.0.0.1:{free_port()}", "--token-file", str(empty))
    assert result.returncode == 2 and "empty" in result.stderr


# -- 3. "." and ".." --------------------------------------------------------------------------


async def test_3_dot_segments_are_never_keys_queues_or_schedules(serve, http):
    server = serve(*AUDIT)
    for key in (".", ".."):
        status, body = await call(http, "POST", f"{server.url}/queues/jobs",
                                  {"name": "x", "options": {"group": key}})
        assert status == 400 and body["error"]["details"][0]["field"] == "options.group", body
        status, body = await call(http, "POST", f"{server.url}/queues/jobs/bulk",
                                  {"jobs": [{"name": "x", "options": {"group": key}}]})
        assert status == 400, body
        status, _ = await call(http, "POST", f"{server.url}/queues/jobs?queue={key}", {"name": "x"})
        assert status == 400
        status, _ = await call(http, "POST", f"{server.url}/queues/schedules",
                               {"name": key, "cron": "* * * * *"})
        assert status == 400
    # names that only contain dots are fine
    status, _ = await call(http, "POST", f"{server.url}/queues/jobs?queue=...", {"name": "x",
                                                                                "options": {"group": "..."}})
    assert status == 201
    status, key = await call(http, "POST", f"{server.url}/queues/groups/.../pause?queue=...")
    assert status == 200 and key["paused"] is True
    _, queues = await call(http, "GET", f"{server.url}/queues")
    assert not any(q["paused"] for q in queues["queues"])
    await audit_clean(http, server.url)


# -- 5. a key's limits and its pause at once ---------------------------------------------------


async def test_5_a_keys_limits_and_pause_set_at_once_both_hold(serve, http, db_path):
    server = serve(*AUDIT)
    keys = [f"k{i}" for i in range(40)]

    async def both(key: str) -> None:
        results = await asyncio.gather(
            call(http, "PUT", f"{server.url}/queues/groups/{key}", {"concurrency": 3}),
            call(http, "POST", f"{server.url}/queues/groups/{key}/pause"))
        assert [status for status, _ in results] == [200, 200]

    await asyncio.gather(*(both(k) for k in keys))
    for key in keys:
        _, view = await call(http, "GET", f"{server.url}/queues/groups/{key}")
        assert view["limits"]["concurrency"] == 3 and view["paused"] is True, view
    # and one change names only its own part: resuming keeps the limits, new limits keep a pause
    await call(http, "POST", f"{server.url}/queues/groups/k0/resume")
    _, view = await call(http, "GET", f"{server.url}/queues/groups/k0")
    assert view["limits"]["concurrency"] == 3 and view["paused"] is False
    await call(http, "PUT", f"{server.url}/queues/groups/k1", {"concurrency": 5})
    _, view = await call(http, "GET", f"{server.url}/queues/groups/k1")
    assert view["limits"]["concurrency"] == 5 and view["paused"] is True
    await audit_clean(http, server.url)
    server.terminate()
    stored = dict(sqlite3.connect(db_path).execute("SELECT key, concurrency FROM group_keys WHERE paused = 1"))
    assert len(stored) == 39 and stored["k1"] == 5 and all(stored[k] == 3 for k in keys[2:])


# -- 6. numbers beyond 64 bits in a search ---------------------------------------------------


async def test_6_a_search_with_any_number_is_answered_never_a_500(serve, http):
    server = serve(*AUDIT)
    huge = "123456789012345678901234567890"
    async with http.post(f"{server.url}/queues/jobs", data=f'{{"name": "x", "data": {{"n": {huge}}}}}',
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 201
        job = await r.json()
    await call(http, "POST", f"{server.url}/queues/jobs", {"name": "x", "data": {"n": 1}})
    for number, found in ((huge, [job["id"]]), ("-9223372036854775809", []), ("18446744073709551616", [])):
        status, page = await call(http, "GET", f"{server.url}/queues/jobs", params={"q": f"data.n = {number}"})
        assert status == 200 and [j["id"] for j in page["jobs"]] == found, page
        status, acted = await call(http, "POST", f"{server.url}/queues/jobs/actions",
                                   {"action": "cancel", "dryRun": True}, params={"q": f"data.n = {number}"})
        assert status == 200 and acted["matched"] == len(found), acted
    status, body = await call(http, "GET", f"{server.url}/queues/jobs", params={"q": "data.n = 1e400"})
    assert status == 400 and "finite" in body["error"]["message"]
    listed = cli("jobs", "ls", "--search", f"data.n = {huge}", "-o", "json", "--url", server.url)
    assert listed.returncode == 0 and [j["id"] for j in json.loads(listed.stdout)] == [job["id"]]
    await audit_clean(http, server.url)


# -- 7. a producer leaving its stream ----------------------------------------------------------


async def test_7_producers_leaving_their_streams_are_one_info_line_and_their_jobs_stay(serve, http):
    server = serve(*AUDIT)
    line = b'{"name": "streamed"}\n'
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"POST /queues/jobs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(line), line))
            s.recv(1)  # the answer has begun: the job is stored
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST

    async def stored() -> bool:
        _, metrics = await call(http, "GET", f"{server.url}/queues/metrics")
        return metrics["waiting"] == 20

    await wait_for(stored)
    await audit_clean(http, server.url)
    server.terminate()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "level=error" not in log, log[-3000:]
    left = [ln for ln in log.splitlines() if "event=api.client_left" in ln]
    assert 1 <= len(left) <= 2 and "level=info" in left[0], left  # summarised, not one per producer


# -- 8. control characters in the CLI's tables -------------------------------------------------


async def test_8_the_cli_shows_control_characters_escaped(serve, http):
    server = serve(*AUDIT)
    hostile = "\x1b]0;pwned\x07\x1b[2J\x1b[1Aok\u202eevil\rX"
    _, job = await call(http, "POST", f"{server.url}/queues/jobs", {"name": hostile, "data": {"t": hostile}})
    for args in (("jobs", "ls"), ("jobs", "show", job["id"])):
        shown = cli(*args, "--url", server.url)
        assert shown.returncode == 0, shown.stderr
        assert not any(c in shown.stdout for c in "\x1b\x07\r\u202e"), repr(shown.stdout)
        assert "\\x1b]0;pwned\\x07" in shown.stdout and "\\u202e" in shown.stdout
    as_json = json.loads(cli("jobs", "show", job["id"], "-o", "json", "--url", server.url).stdout)
    assert as_json["name"] == hostile  # -o json keeps the value, escaped by JSON itself


# -- 9. DNS rebinding -------------------------------------------------------------------------


async def test_9_a_request_for_a_host_name_not_allowed_is_refused_before_any_route(serve, http):
    server = serve(*AUDIT)
    rebound = {"Host": f"evil.example:{server.port}", "Origin": f"http://evil.example:{server.port}"}
    status, body = await call(http, "POST", f"{server.url}/queues/pause", headers=rebound)
    assert status == 400 and body["error"]["code"] == "host_not_allowed", body
    status, _ = await call(http, "GET", f"{server.url}/queues/jobs", headers={"Host": "evil.example"})
    assert status == 400
    async with http.get(f"{server.url}/livez", headers={"Host": "lb.internal"}) as r:
        assert r.status == 200
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]", "app.localhost"):
        status, _ = await call(http, "GET", f"{server.url}/queues", headers={"Host": host})
        assert status == 200, host
    _, queues = await call(http, "GET", f"{server.url}/queues")
    assert not any(q["paused"] for q in queues["queues"])
    await audit_clean(http, server.url)
    server.terminate()
    named = serve("--allowed-hosts", "queue.example, .corp.example")
    for host, expected in (("queue.example", 200), ("a.corp.example", 200), ("corp.example", 200),
                           ("evil.example", 400), ("queue.example.evil", 400)):
        status, _ = await call(http, "GET", f"{named.url}/queues", headers={"Host": host})
        assert status == expected, host


# -- 10. unique replace and debounce against a blocked job ------------------------------------


async def test_10_replace_and_debounce_reach_a_blocked_holder(serve, http):
    server = serve(*AUDIT)
    url = server.url
    _, parent = await call(http, "POST", f"{url}/queues/jobs", {"name": "parent", "options": {"delay": 3_600_000}})
    for mode in ("replace", "debounce"):
        unique = {"key": f"k-{mode}", "mode": mode}
        _, held = await call(http, "POST", f"{url}/queues/jobs", {
            "name": "child", "data": {"v": 1}, "options": {"dependsOn": [parent["id"]], "unique": unique}})
        assert held["state"] == "blocked"
        status, kept = await call(http, "POST", f"{url}/queues/jobs", {
            "name": "child", "data": {"v": 2}, "options": {"unique": unique, "delay": 1000 if mode == "debounce"
                                                           else 0}})
        assert status == 200 and kept["id"] == held["id"], kept
        assert kept["data"] == {"v": 2} and kept["state"] == "blocked", kept
        _, read = await call(http, "GET", f"{url}/queues/jobs/{held['id']}")
        assert read["data"] == {"v": 2}
        if mode == "debounce":
            assert read["runAt"] > held["runAt"]
    # the parent done, both children move on with their new data
    await call(http, "POST", f"{url}/queues/jobs/{parent['id']}/promote")
    _, leased = await call(http, "POST", f"{url}/queues/jobs/lease", {"max": 1, "names": ["parent"]})
    await call(http, "POST", f"{url}/queues/jobs/{parent['id']}/complete",
               {"leaseToken": leased["jobs"][0]["leaseToken"]})
    _, children = await call(http, "GET", f"{url}/queues/jobs", params={"name": "child"})
    assert sorted(j["state"] for j in children["jobs"]) == ["delayed", "waiting"]
    assert all(j["data"] == {"v": 2} for j in children["jobs"])
    await audit_clean(http, url)


# -- 11. secrets in URLs ----------------------------------------------------------------------


async def test_11_a_urls_query_and_credentials_never_reach_an_error_or_the_log(serve, http):
    closed = free_port()
    server = serve(*AUDIT, "--http-allowed-hosts", "127.0.0.1",
                   "--payment-url", f"http://127.0.0.1:{closed}/pay?key=SECRET-PAY-1",
                   "--builtin-jobs", "http,process-payment")
    _, call_job = await call(http, "POST", f"{server.url}/queues/jobs", {
        "name": "http", "data": {"url": f"http://user:SECRET-PW-1@127.0.0.1:{closed}/x?token=SECRET-Q-1&a=1"},
        "options": {"attempts": 1}})
    _, payment = await call(http, "POST", f"{server.url}/queues/jobs", {
        "name": "process-payment", "data": {"amount": 10, "userId": "u1"}, "options": {"attempts": 1}})
    await call(http, "POST", f"{server.url}/queues/jobs", {"name": "external", "options": {"attempts": 1}})
    _, leased = await call(http, "POST", f"{server.url}/queues/jobs/lease", {"max": 1, "names": ["external"]})
    external = leased["jobs"][0]
    await call(http, "POST", f"{server.url}/queues/jobs/{external['id']}/fail", {
        "leaseToken": external["leaseToken"], "error": "GET https://api.example/v1?api_key=SECRET-W-1 gave 500"})

    async def failed(job_id: str):
        _, job = await call(http, "GET", f"{server.url}/queues/jobs/{job_id}")
        return job if job["state"] == "failed" else None

    errors = [(await wait_for(lambda j=j: failed(j), timeout=30))["error"]
              for j in (call_job["id"], payment["id"], external["id"])]
    assert "token=***" in errors[0] and "***@127.0.0.1" in errors[0], errors
    assert "key=***" in errors[1] and "api_key=***" in errors[2], errors
    _, listed = await call(http, "GET", f"{server.url}/queues/jobs", params={"state": "failed"})
    await audit_clean(http, server.url)
    server.terminate()
    # (the job's own data keeps the URL it was given: that is the caller's, not an error)
    seen = json.dumps([[j["error"], j["errors"]] for j in listed["jobs"]]) + server.log_path.read_text()
    leaked = [s for s in ("SECRET-PAY-1", "SECRET-PW-1", "SECRET-Q-1", "SECRET-W-1") if s in seen]
    assert not leaked, seen[-2000:]


# -- 4. priority aging at its default two levels -------------------------------------------


async def test_4_an_aged_low_job_starts_under_a_steady_stream_of_high_jobs(serve, http):
    every_ms = 300
    server = serve(*AUDIT, "--aging-every-ms", str(every_ms))
    url = server.url

    async def add(name: str, priority: int) -> dict:
        return (await call(http, "POST", f"{url}/queues/jobs", {"name": name, "options": {"priority": priority}}))[1]

    async def serve_one() -> dict:
        _, leased = await call(http, "POST", f"{url}/queues/jobs/lease", {"max": 1})
        job = leased["jobs"][0]
        await call(http, "POST", f"{url}/queues/jobs/{job['id']}/complete", {"leaseToken": job["leaseToken"]})
        return job

    # A LOW job, then a backlog of HIGH jobs due after it; once all have waited more
    # than two intervals, the LOW job competes as HIGH and was due first.
    low = await add("report", 4)
    for _ in range(20):
        await add("page", 2)
    await asyncio.sleep(3 * every_ms / 1000)  # the time aging is about: nothing to wait on but the clock
    assert (await serve_one())["id"] == low["id"]
    # Under a steady stream of HIGH jobs (arriving faster than they are served), a
    # second LOW job starts too, ahead of every HIGH job due after it had aged.
    low = await add("report", 4)
    served_before: list[dict] = []
    started = time.monotonic()
    while time.monotonic() - started < 20:
        await add("page", 2)
        await add("page", 2)
        job = await serve_one()
        if job["id"] == low["id"]:
            break
        served_before.append(job)
    else:
        pytest.fail(f"the LOW job did not start in 20 s; {len(served_before)} HIGH jobs went first")
    aged_at = iso_ms(low["createdAt"]) + 2 * every_ms
    assert not [j for j in served_before if iso_ms(j["createdAt"]) > aged_at], served_before[-3:]
    await audit_clean(http, url)


# -- 15. a test run leaves the checkout as it was -----------------------------------------------


def test_15_screenshots_go_to_a_folder_of_the_runs_own():
    import browser

    docs = Path(__file__).parent.parent.parent / "docs" / "img"
    assert browser.SHOTS.resolve() != docs.resolve() or os.environ.get("QUEUEAPP_SCREENSHOTS")


# -- 16. the OpenAPI says what the server enforces ---------------------------------------------


async def test_16_the_description_declares_every_answer_and_constraint(serve, http):
    server = serve(*AUDIT, "--max-body-bytes", "2000")
    _, spec = await call(http, "GET", f"{server.url}/openapi.json")
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if "requestBody" in op:
                assert "413" in op["responses"], (method, path)
            if path != "/livez":
                assert "400" in op["responses"], (method, path)  # a Host not allowed, at least
    links = spec["paths"]["/queues/jobs/lease"]["post"]["responses"]["200"]["links"]
    assert links["Complete"]["requestBody"] == {"leaseToken": "$response.body#/jobs/0/leaseToken"}
    zone = spec["components"]["schemas"]["ScheduleSpec"]["properties"]["timezone"]
    assert "Europe/Berlin" in zone["enum"] and "localtime" not in zone["enum"]
    # a bulk body over the size limit is answered as declared
    async with http.post(f"{server.url}/queues/jobs/bulk", json={"jobs": [{"name": "x" * 100}] * 50}) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "payload_too_large"
    for zone_name in ("Mars/Olympus", "localtime"):
        status, body = await call(http, "POST", f"{server.url}/queues/schedules",
                                  {"name": "tz", "cron": "* * * * *", "timezone": zone_name})
        assert status == 400 and "time zone" in body["error"]["message"], body
    await audit_clean(http, server.url)
