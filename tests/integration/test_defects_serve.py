"""Reproduced defects, against a real ``queueapp serve``: each must fail on the code
that had it and pass now, and after each the self-audit finds memory and table in
agreement (and ``queueapp check`` finds the table sound)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, wait_for

HERE = Path(__file__).parent.parent
AUDIT = ("--audit-interval-ms", "60000")
HANDLERS = ("--handlers", "defect_handlers")
ENV = {"PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


async def audit_clean(http, url: str) -> None:
    async with http.get(f"{url}/debug/audit") as r:
        body = await r.json()
    assert r.status == 200 and body == {"ok": True, "problems": []}, body


def check_clean(db: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "queueapp", "check", "--db", str(db)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def post(http, url, path, body):
    async with http.post(url + path, json=body) as r:
        return r.status, await r.json()


async def test_1_huge_keep_counts_and_grace_are_refused(serve, http, db_path):
    server = serve(*AUDIT)
    for option in ("removeOnComplete", "removeOnFail"):
        for value in (2**63, 2**64, 1_000_001):
            status, body = await post(http, server.url, "/queues/jobs",
                                      {"name": "x", "options": {option: value}})
            assert status == 400 and body["error"]["details"][0]["field"].startswith(f"options.{option}")
    status, body = await post(http, server.url, "/queues/clean", {"grace": 2**64})
    assert status == 400
    # the largest allowed count works end to end
    status, job = await post(http, server.url, "/queues/jobs",
                             {"name": "x", "options": {"removeOnComplete": 1_000_000}})
    assert status == 201
    status, body = await post(http, server.url, "/queues/jobs/lease", {"max": 1})
    (leased,) = body["jobs"]
    status, done = await post(http, server.url, f"/queues/jobs/{leased['id']}/complete",
                              {"leaseToken": leased["leaseToken"]})
    assert status == 200 and done["state"] == "completed"
    await audit_clean(http, server.url)
    server.terminate()
    check_clean(db_path)


@pytest.mark.parametrize("raw", [b'{"name":"x","data":{"v":NaN}}', b'{"name":"x","data":{"v":1e400}}',
                                 b'{"name":"x","data":{"v":-Infinity}}'])
async def test_2_numbers_json_cannot_carry_are_refused(serve, http, raw):
    server = serve()
    async with http.post(f"{server.url}/queues/jobs", data=raw,
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert "finite" in (await r.json())["error"]["message"]
    async with http.get(f"{server.url}/queues/metrics") as r:
        assert (await r.json())["waiting"] == 0


async def test_2_infinite_progress_is_refused_and_the_job_still_finishes(serve, http, db_path):
    server = serve(*AUDIT, *HANDLERS, env=ENV)
    await post(http, server.url, "/queues/jobs", {"name": "external"})
    _, leased = await post(http, server.url, "/queues/jobs/lease", {"max": 1})
    job_id, token = leased["jobs"][0]["id"], leased["jobs"][0]["leaseToken"]
    async with http.post(f"{server.url}/queues/jobs/{job_id}/heartbeat",
                         data=b'{"leaseToken":"%s","progress":1e400}' % token.encode(),
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    status, done = await post(http, server.url, f"/queues/jobs/{job_id}/complete", {"leaseToken": token})
    assert status == 200 and done["state"] == "completed"
    # in-process: a handler reporting infinite progress fails its attempt, saying why
    _, job = await post(http, server.url, "/queues/jobs", {"name": "infinite-progress",
                                                          "options": {"attempts": 1}})

    async def settled():
        async with http.get(f"{server.url}/queues/jobs/{job['id']}") as r:
            body = await r.json()
        return body if body["state"] == "failed" else None

    failed = await wait_for(settled)
    assert "progress must be a number from 0 to 100" in failed["error"]
    await audit_clean(http, server.url)
    server.terminate()
    check_clean(db_path)


async def test_3_a_long_poll_whose_client_left_claims_nothing(serve, http):
    server = serve(*AUDIT)
    with socket.create_connection(("127.0.0.1", server.port)) as gone:
        body = json.dumps({"max": 1, "waitMs": 30_000}).encode()
        gone.sendall(b"POST /queues/jobs/lease HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await asyncio.sleep(0.2)  # let the server take the poll up before the client leaves
    status, job = await post(http, server.url, "/queues/jobs", {"name": "external", "options": {"attempts": 1}})
    assert status == 201
    status, leased = await post(http, server.url, "/queues/jobs/lease", {"max": 1, "waitMs": 5000})
    assert [j["id"] for j in leased["jobs"]] == [job["id"]]
    assert leased["jobs"][0]["attemptsMade"] == 1
    await audit_clean(http, server.url)


async def test_4_a_second_appliance_on_one_database_is_refused_and_changes_nothing(serve, http, db_path):
    first = serve(*AUDIT)
    _, job = await post(http, first.url, "/queues/jobs", {"name": "external"})
    _, leased = await post(http, first.url, "/queues/jobs/lease", {"max": 1})
    before = sqlite3.connect(db_path).execute("select state, lease_token from jobs").fetchall()
    second = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", str(db_path),
                             "--port", str(free_port())], capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "in use by another queueapp process" in second.stderr and str(first.proc.pid) in second.stderr
    assert sqlite3.connect(db_path).execute("select state, lease_token from jobs").fetchall() == before
    status, done = await post(http, first.url, f"/queues/jobs/{job['id']}/complete",
                              {"leaseToken": leased["jobs"][0]["leaseToken"]})
    assert status == 200
    await audit_clean(http, first.url)


def test_4_a_taken_port_or_an_unknown_database_exits_at_once_having_made_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "never.db"
        result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", str(db), "--port", str(port)],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot listen" in result.stderr
    assert not db.exists()
    result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", "mysql://u@localhost/q"],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and "unknown scheme 'mysql'" in result.stderr
    closed = free_port()  # a PostgreSQL URL whose server is not there: one line, nothing made
    result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", f"postgresql://u@127.0.0.1:{closed}/q",
                             "--port", str(free_port())], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("queueapp: ") and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


async def test_5_restore_under_a_running_appliance_is_refused(serve, http, db_path, tmp_path):
    server = serve()
    await post(http, server.url, "/queues/jobs", {"name": "keep"})
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db_path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    await post(http, server.url, "/queues/jobs", {"name": "after-backup"})
    result = subprocess.run([sys.executable, "-m", "queueapp", "restore", str(backup), "--db", str(db_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "in use" in result.stderr
    assert sqlite3.connect(db_path).execute("select count(*) from jobs").fetchone()[0] == 2
    server.terminate()
    result = subprocess.run([sys.executable, "-m", "queueapp", "restore", str(backup), "--db", str(db_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


async def test_6_invalid_schedules_are_refused(serve, http):
    server = serve()
    status, body = await post(http, server.url, "/queues/schedules",
                              {"name": "ping", "jobName": "http", "everyMs": 1000})
    assert status == 400 and "data.url" in body["error"]["message"]
    status, body = await post(http, server.url, "/queues/schedules", {"name": "feb30", "cron": "0 0 30 2 *"})
    assert status == 400 and "never fires" in body["error"]["message"]
    async with http.get(f"{server.url}/queues/schedules?queue=default") as r:
        assert {"ping", "feb30"}.isdisjoint(s["name"] for s in (await r.json())["schedules"])


async def test_8_a_graceful_restart_keeps_leases_and_dead_letters_nothing(serve, http, db_path):
    server = serve(*AUDIT, *HANDLERS, "--shutdown-grace-ms", "300", env=ENV)
    _, external = await post(http, server.url, "/queues/jobs", {"name": "external", "options": {"attempts": 1}})
    _, leased = await post(http, server.url, "/queues/jobs/lease", {"max": 1, "leaseMs": 60_000})
    _, slow = await post(http, server.url, "/queues/jobs", {"name": "slow", "options": {"attempts": 1}})

    async def running():
        async with http.get(f"{server.url}/queues/jobs/{slow['id']}") as r:
            return (await r.json())["state"] == "active"

    await wait_for(running)
    assert server.terminate() == 0
    restarted = serve(*AUDIT, env=ENV)  # no handlers now: the slow job waits for a worker
    async with http.get(f"{restarted.url}/queues/jobs/{slow['id']}") as r:
        back = await r.json()
    assert back["state"] == "waiting" and back["attemptsMade"] == 0 and back["error"] is None
    status, done = await post(http, restarted.url, f"/queues/jobs/{external['id']}/complete",
                              {"leaseToken": leased["jobs"][0]["leaseToken"], "result": 1})
    assert status == 200 and done["state"] == "completed"
    await audit_clean(http, restarted.url)
    restarted.terminate()
    check_clean(db_path)


async def test_9_sigterm_with_open_streams_and_polls_exits_within_the_grace(serve, http):
    server = serve(*HANDLERS, "--shutdown-grace-ms", "1000", env=ENV)
    await post(http, server.url, "/queues/jobs", {"name": "slow"})
    events = await http.get(f"{server.url}/queues/events")
    await events.content.readline()  # connected
    poll = asyncio.ensure_future(http.post(f"{server.url}/queues/jobs/lease", json={"waitMs": 30_000}))

    async def poll_is_open() -> bool:  # the server's own count of waiting polls
        async with http.get(f"{server.url}/metrics") as r:
            return "queueapp_lease_polls_waiting 1" in await r.text()

    await wait_for(poll_is_open, timeout=20)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.proc.wait, 30)
    took = time.monotonic() - started
    assert code == 0
    assert took < 1.0 + 1.0, f"stopping took {took:.1f} s"  # shutdown_grace_ms plus one second
    events.close()
    (await poll).close()


def test_9_the_systemd_unit_waits_longer_than_the_grace_and_allows_many_connections():
    from queueapp.config import Config

    unit = (HERE.parent / "deploy" / "queueapp.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert int(settings["TimeoutStopSec"]) > Config().shutdown_grace_ms / 1000 + 1
    assert int(settings["LimitNOFILE"]) >= 65536


async def test_19_odd_ids_and_headers_get_json_errors(serve, http):
    server = serve("--token", "sesame")
    async with http.get(f"{server.url}/queues/jobs/%C2%B2", headers={"Authorization": "Bearer sesame"}) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /queues HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\n"
                  b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_21_refused_connections_are_logged_once_not_per_attempt(tmp_path):
    """With file descriptors exhausted, the accept error is logged at most once a
    minute (the standard event loop retries, and reports, every second), and the
    appliance serves again once connections close."""
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (60, 60))

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "queueapp", "serve", "--db", str(tmp_path / "q.db"),
                                 "--port", str(port), "--event-loop", "asyncio"],
                                stdout=log, stderr=log, preexec_fn=low_limit)
    held = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"listening" not in log_path.read_bytes():
            time.sleep(0.05)  # a child process's readiness: no event to wait on
        for _ in range(120):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                break
        time.sleep(3)  # the loop retries accept() every second meanwhile; the log must not grow with it
        for s in held:
            s.close()
        held.clear()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the appliance did not serve again")
        lines = [line for line in log_path.read_text().splitlines() if "accept" in line.lower()]
        assert len(lines) == 1, lines
    finally:
        for s in held:
            s.close()
        proc.kill()
        proc.wait(10)


def test_4_a_damaged_database_fails_the_start_at_once_with_one_line(tmp_path):
    db = tmp_path / "damaged.db"
    db.write_bytes(b"not a database at all" * 5000)
    result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", str(db), "--port", str(free_port())],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "queueapp: start-up failed: file is not a database" in result.stderr.splitlines()


def test_21_idle_keep_alive_connections_are_closed(serve):
    server = serve("--idle-timeout-ms", "300")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # keep-alive by default
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(1) == b""  # the server closes the idle connection
        assert time.monotonic() - started < 5
