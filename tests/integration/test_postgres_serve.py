"""A real ``queueapp serve`` on a real PostgreSQL server (tests/pg.py), one node:
enqueues acknowledged over HTTP, jobs run by in-process handlers and leased by a
worker, the process SIGKILLed in the middle and started again: every acknowledged
job is there, every job completes, the self-audit agrees. A second node on the same
database is refused in one line; bad PostgreSQL URLs are refused as settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ServeProcess, free_port, wait_for

HERE = Path(__file__).parent.parent
ENV = {"PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "GROUP_LOG": os.devnull}





async def call(http, method: str, url: str, body=None):
    async with http.request(method, url, json=body) as r:
        return r.status, await r.json()


async def test_jobs_acknowledged_survive_a_sigkill_and_all_complete(postgres, http, tmp_path):
    db = postgres.create_database("serve_kill")
    args = ("--handlers", "group_handlers", "--audit-interval-ms", "60000")
    first = ServeProcess(db, *args, env=ENV, folder=tmp_path).start()
    acknowledged = set()
    for _ in range(5):
        status, body = await call(http, "POST", f"{first.url}/queues/jobs/bulk?queue=work&return=ids",
                                  {"jobs": [{"name": "tick"}] * 50 + [{"name": "remote"}] * 10})
        assert status == 201
        acknowledged.update(body["ids"])
    status, leased = await call(http, "POST", f"{first.url}/queues/jobs/lease?queue=work",
                                {"names": ["remote"], "max": 5, "leaseMs": 60_000})
    assert status == 200 and len(leased["jobs"]) == 5
    first.kill9()
    again = ServeProcess(db, *args, env=ENV, folder=tmp_path).start()
    for job in leased["jobs"]:  # the worker outlived the appliance: its leases are still good
        status, _ = await call(http, "POST", f"{again.url}/queues/jobs/{job['id']}/complete",
                               {"leaseToken": job["leaseToken"]})
        assert status == 200
    while True:
        status, more = await call(http, "POST", f"{again.url}/queues/jobs/lease?queue=work",
                                  {"names": ["remote"], "max": 20})
        if not more["jobs"]:
            break
        for job in more["jobs"]:
            await call(http, "POST", f"{again.url}/queues/jobs/{job['id']}/complete", {"leaseToken": job["leaseToken"]})

    async def all_completed() -> bool:
        return (await call(http, "GET", f"{again.url}/queues/metrics?queue=work"))[1]["completed"] == 300

    await wait_for(all_completed, timeout=60)
    for job_id in list(acknowledged)[::37]:
        status, job = await call(http, "GET", f"{again.url}/queues/jobs/{job_id}")
        assert status == 200 and job["state"] == "completed"
    assert (await call(http, "GET", f"{again.url}/debug/audit"))[1] == {"ok": True, "problems": []}

    refused = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", db, "--port", str(free_port())],
                             capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert refused.returncode == 1 and "another queueapp node serves" in refused.stderr
    assert "Traceback" not in refused.stderr
    again.terminate()


@pytest.mark.parametrize("url, says", [
    ("postgresql://u@h:5432/", "name the database"),
    ("postgresql://u@h:5432/q?sslmode=maybe", "sslmode must be one of"),
    ("postgresql://u@h:5432/q?pool=9", "unknown option 'pool'"),
    ("postgresql://u:secret@h:port/q", "the port must be a number"),
])
def test_bad_postgresql_urls_are_refused_as_settings(tmp_path, url, says):
    result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", url],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr and "secret" not in result.stderr
    assert list(tmp_path.iterdir()) == []
