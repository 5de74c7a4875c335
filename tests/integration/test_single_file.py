"""The single executable: built from PyPI alone (scripts/build-single-file), copied
alone into an empty folder and run with an empty environment. It serves, takes a job
over HTTP, runs it through ``./queueapp worker`` with a handler module in that folder,
lists it with ``./queueapp jobs ls``, and stops cleanly on SIGTERM; it carries the
PostgreSQL driver and schema too (``./queueapp migrate`` on a real server), and the
OpenTelemetry exporter (spans reach a receiver on loopback). The
folder build beside it (its command starts without unpacking itself) runs every
operator command against that appliance."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port
from otlp import Receiver
from pg import postgres_server

ROOT = Path(__file__).parent.parent.parent
EMPTY_ENV = {"PATH": "/usr/bin:/bin"}
HANDLERS = """from queueapp import registry


@registry.handler("greet")
async def greet(job):
    return {"hello": job.data["who"]}
"""


@pytest.fixture(scope="module")
def single_file(tmp_path_factory) -> Path:
    build = subprocess.run([str(ROOT / "scripts" / "build-single-file")], cwd=ROOT, capture_output=True,
                           text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    folder = tmp_path_factory.mktemp("host")
    shutil.copy2(ROOT / "dist" / "queueapp", folder / "queueapp")
    shutil.copytree(ROOT / "dist" / "queueapp-folder", folder / "queueapp-folder", symlinks=True)
    (folder / "greeting.py").write_text(HANDLERS)
    return folder


def _serving(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    serve = subprocess.Popen(["./queueapp", "serve", "--port", str(port), *args], cwd=folder,
                             env={**EMPTY_ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    for line in serve.stdout:  # type: ignore[union-attr]
        if "appliance started" in line:
            break
    return serve, f"http://127.0.0.1:{port}"


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.timeout(900)
def test_the_single_file_runs_alone(single_file):
    folder = single_file
    version = subprocess.run(["./queueapp", "--version"], cwd=folder, env=EMPTY_ENV, capture_output=True,
                             text=True, timeout=60)
    assert version.returncode == 0 and "SQLite" in version.stdout and "event loop uvloop" in version.stdout
    serve, url = _serving(folder)
    worker = None
    try:
        request = urllib.request.Request(f"{url}/queues/jobs", method="POST",
                                         data=json.dumps({"name": "greet", "data": {"who": "host"}}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            job_id = json.loads(r.read())["id"]
        worker = subprocess.Popen(["./queueapp", "worker", "--url", url, "--handlers", "greeting"], cwd=folder,
                                  env=EMPTY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _get(f"{url}/queues/jobs/{job_id}")["state"] != "completed":
            assert time.monotonic() < deadline, "the worker did not complete the job"
            time.sleep(0.1)  # other processes' progress: nothing to wait on but their answers
        assert _get(f"{url}/queues/jobs/{job_id}")["result"] == {"hello": "host"}
        listed = subprocess.run(["./queueapp", "jobs", "ls", "--url", url, "-o", "json"], cwd=folder,
                                env=EMPTY_ENV, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["state"] == "completed"
        for page in ("/ui/", "/ui/static/app.js", "/ui/static/app.css"):  # the dashboard ships inside
            with urllib.request.urlopen(url + page, timeout=10) as r:
                assert r.status == 200 and len(r.read()) > 500
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
        assert (folder / "queueapp.db").is_file()
    finally:
        for proc in (worker, serve):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.mark.timeout(900)
def test_the_single_file_carries_the_postgresql_store(single_file):
    with postgres_server() as server:
        url = server.create_database("single_file")
        migrated = subprocess.run(["./queueapp", "migrate", "--db", url], cwd=single_file, env=EMPTY_ENV,
                                  capture_output=True, text=True, timeout=120)
        applied = migrated.stderr
        assert migrated.returncode == 0 and "0001_init" in applied and "0003_cluster_groups" in applied, applied


@pytest.mark.timeout(900)
def test_the_single_file_carries_the_opentelemetry_exporter(single_file):
    with Receiver() as receiver:
        serve, url = _serving(single_file, "--db", "traced.db", "--otel-endpoint", receiver.url,
                              env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
        try:
            request = urllib.request.Request(f"{url}/queues/jobs", method="POST",
                                             data=json.dumps({"name": "greet"}).encode(),
                                             headers={"Content-Type": "application/json",
                                                      "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
            with urllib.request.urlopen(request, timeout=10) as r:
                assert r.status == 201
            [sent] = receiver.wait_for(lambda spans: any(s.name == "send default" for s in spans))
            assert (sent.trace_id, sent.parent_span_id, sent.service) == ("a" * 32, "b" * 16, "queueapp")
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(30) == 0


def _call(url: str, method: str, path: str, body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, method=method, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.timeout(900)
@pytest.mark.parametrize("command", ["./queueapp", "./queueapp-folder/queueapp"])
def test_every_operator_command_runs_from_the_one_file_and_the_folder(single_file, command):
    """Each command of the operator's desk through the one file and through the folder
    build, as a host would run it, against the one file serving: failures by group
    (retried as one), running jobs, nodes, groups, jobs across queues, delete, the
    audit trail, keys, shell completion and the OpenAPI description; usage errors
    exit 2."""
    folder = single_file
    serve, url = _serving(folder, "--db", f"operator-{Path(command).parent.name}.db")

    def cli(*args: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([command, *args], cwd=folder, env={**EMPTY_ENV, "QUEUEAPP_URL": url},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done

    def as_json(*args: str):
        return json.loads(cli(*args, "-o", "json").stdout)

    try:
        version = cli("--version").stdout
        assert "SQLite" in version and "event loop uvloop" in version
        jobs = [{"name": "push", "options": {"attempts": 1}} for _ in range(5)]
        _call(url, "POST", "/queues/jobs/bulk?queue=pushes", {"jobs": jobs})
        leased = _call(url, "POST", "/queues/jobs/lease?queue=pushes", {"max": 5, "worker": "pusher-1:7"})["jobs"]
        for n, job in enumerate(leased):
            _call(url, "POST", f"/queues/jobs/{job['id']}/fail",
                  {"leaseToken": job["leaseToken"], "error": f"APNs rejected device token {n:040x}"})
        [group] = as_json("failures", "--queue", "pushes")
        assert (group["count"], group["fingerprint"]) == (5, "APNs rejected device token <id>")
        assert as_json("failures", "retry", group["group"], "--queue", "pushes", "--dry-run") == {
            "wouldChange": 5, "dryRun": True}
        assert as_json("failures", "retry", group["group"], "--queue", "pushes") == {"retried": 5}
        running = as_json("running", "--queue", "pushes")
        assert running == []
        assert as_json("nodes")["cluster"] is False
        assert as_json("groups", "set", "acct-7", "--concurrency", "2")
        assert as_json("groups", "show", "acct-7")["limits"]["concurrency"] == 2
        cli("enqueue", "welcome", "--queue", "mail", "--data", '{"to": "a@example.com"}')
        every = as_json("jobs", "ls", "--queue", "*", "--all")
        assert sorted((r["queue"], r["name"]) for r in every) == [("mail", "welcome")] + [("pushes", "push")] * 5
        ids = [r["id"] for r in every if r["queue"] == "pushes"]
        assert as_json("jobs", "delete", ids[0], "--queue", "pushes")["deleted"] == 1
        actions = [e["action"] for e in as_json("audit")]
        assert "delete" in actions and "retry" in actions
        table = cli("failures", "--queue", "pushes").stdout  # nothing failed now: said in words
        assert "None" not in table
        assert as_json("keys", "ls") == []
        refused = cli("keys", "create", "billing", "--role", "enqueue", "--queue", "payments", code=1).stderr
        assert "no token" in refused  # a key would limit nothing on an appliance without one
        assert "complete -F" in cli("completion", "bash").stdout
        assert "/queues/jobs/lease" in json.loads(cli("openapi").stdout)["paths"]
        assert "job ids are numbers, not 'abc'" in cli("jobs", "show", "abc", code=2).stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
