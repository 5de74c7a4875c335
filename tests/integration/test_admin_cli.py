"""The admin commands against a real ``queueapp serve``: tables, ``-o json``, the exit
codes scripts rely on (0 done, 1 refused or not found, 2 usage, 3 unreachable), and
a refused token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import free_port


def cli(server_url: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("QUEUEAPP_URL", "QUEUEAPP_TOKEN")}
    if token:
        env["QUEUEAPP_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "queueapp", *args, "--url", server_url],
                          capture_output=True, text=True, timeout=60, env=env)


def as_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_enqueue_list_show_cancel_retry_and_purge(serve):
    url = serve().url
    added = as_json(cli(url, "enqueue", "resize", "--data", '{"id": 7}', "--priority", "2", "--delay", "1h",
                        "-o", "json"))
    assert added["state"] == "delayed" and added["priority"] == 2
    table = cli(url, "jobs", "ls")
    assert table.returncode == 0 and "resize" in table.stdout and "STATE" in table.stdout
    shown = as_json(cli(url, "jobs", "show", added["id"], "-o", "json"))
    assert shown["data"] == {"id": 7}
    cancelled = as_json(cli(url, "jobs", "cancel", added["id"], "-o", "json"))
    assert cancelled[0]["state"] == "cancelled"
    retried = as_json(cli(url, "jobs", "retry", added["id"], "-o", "json"))
    assert retried[0]["state"] == "waiting"
    assert as_json(cli(url, "jobs", "ls", "--state", "waiting", "-o", "json"))[0]["id"] == added["id"]
    as_json(cli(url, "jobs", "cancel", added["id"], "-o", "json"))
    dry = as_json(cli(url, "jobs", "purge", "--state", "cancelled", "--older-than", "0s", "--dry-run", "-o", "json"))
    assert dry == {"wouldRemove": 1, "dryRun": True}
    assert as_json(cli(url, "jobs", "purge", "--state", "cancelled", "--older-than", "0s", "-o", "json")) == {
        "removed": 1}


def test_queues_pause_resume_and_stats(serve):
    url = serve().url
    cli(url, "enqueue", "x", "--queue", "mail")
    assert as_json(cli(url, "queues", "pause", "mail", "-o", "json")) == {"queue": "mail", "paused": True}
    rows = {r["queue"]: r for r in as_json(cli(url, "queues", "-o", "json"))}
    assert rows["mail"]["paused"] is True and rows["mail"]["waiting"] == 1 and rows["mail"]["health"] == "healthy"
    assert as_json(cli(url, "queues", "resume", "mail", "-o", "json"))["paused"] is False
    stats = {r["queue"]: r for r in as_json(cli(url, "stats", "--once", "-o", "json"))}
    assert stats["mail"]["waiting"] == 1
    assert "QUEUE" in cli(url, "stats", "--once").stdout


def test_schedules(serve, http):
    import urllib.request

    url = serve().url
    body = json.dumps({"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/queues/schedules", data=body, method="POST",
                                                  headers={"Content-Type": "application/json"}), timeout=10)
    names = [s["name"] for s in as_json(cli(url, "schedules", "ls", "-o", "json"))]
    assert "nightly" in names
    shown = as_json(cli(url, "schedules", "show", "nightly", "-o", "json"))
    assert shown["cron"] == "0 3 * * *" and shown["timezone"] == "Europe/Berlin"
    assert "nightly" in cli(url, "schedules", "show", "nightly").stdout
    assert as_json(cli(url, "schedules", "pause", "nightly", "-o", "json"))["enabled"] is False
    assert as_json(cli(url, "schedules", "resume", "nightly", "-o", "json"))["enabled"] is True
    run = as_json(cli(url, "schedules", "run", "nightly", "-o", "json"))
    assert run["name"] == "nightly" and run["jobId"].startswith("nightly@") and run["state"] == "waiting"
    assert as_json(cli(url, "schedules", "rm", "nightly", "-o", "json")) == {"removed": 1}


@pytest.mark.parametrize(("args", "code", "says"), [
    (("jobs", "show", "999999"), 1, "404 not_found"),
    (("jobs", "show"), 2, "needs job ids"),
    (("jobs", "show", "abc"), 2, "job ids are numbers, not 'abc'"),
    (("jobs", "ls", "--older-than", "1d"), 2, "jobs ls takes no --older-than"),
    (("jobs", "cancel", "1", "--failed"), 2, "jobs cancel takes no --failed"),
    (("jobs", "ls", "--limit", "0"), 2, "--limit is 1 to 1000"),
    (("jobs", "ls", "--limit", "1001"), 2, "--limit is 1 to 1000"),
    (("jobs", "ls", "--queue", "*"), 2, "goes with --all"),
    (("failures", "retry", "nothex"), 2, "needs a group"),
    (("groups", "set", "acct"), 2, "needs --concurrency or --rate"),
    (("groups", "set", "acct", "--rate", "fast"), 2, "--rate is starts per period"),
    (("enqueue", "x", "--data", "{nope"), 2, "not JSON"),
    (("jobs", "frobnicate"), 2, "invalid choice"),
])
def test_exit_codes_and_one_line_errors(serve, args, code, says):
    result = cli(serve().url, *args)
    assert result.returncode == code and says in result.stderr.splitlines()[-1], result.stderr


def test_an_unreachable_appliance_exits_3():
    result = cli(f"http://127.0.0.1:{free_port()}", "queues")
    assert result.returncode == 3 and "cannot reach" in result.stderr


def test_a_refused_token_exits_1(serve):
    url = serve("--token", "right").url
    assert cli(url, "queues", token="wrong").returncode == 1
    assert cli(url, "queues", token="right").returncode == 0


def test_promote_and_retry_every_failed_job(serve):
    import urllib.request

    url = serve().url
    delayed = as_json(cli(url, "enqueue", "later", "--delay", "1h", "-o", "json"))
    promoted = as_json(cli(url, "jobs", "promote", delayed["id"], "-o", "json"))
    assert promoted[0]["state"] == "waiting"
    again = cli(url, "jobs", "promote", delayed["id"])
    assert again.returncode == 1 and "409 conflict" in again.stderr
    for _ in range(3):
        cli(url, "enqueue", "fragile")
    lease = json.dumps({"max": 10, "names": ["fragile"]}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/queues/jobs/lease", data=lease, method="POST",
                                                       headers={"Content-Type": "application/json"})) as r:
        leased = json.loads(r.read())["jobs"]
    for job in leased:
        body = json.dumps({"leaseToken": job["leaseToken"], "retry": False}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{url}/queues/jobs/{job['id']}/fail", data=body,
                                                      method="POST", headers={"Content-Type": "application/json"}))
    assert as_json(cli(url, "jobs", "retry", "--failed", "--name", "fragile", "--dry-run", "-o", "json")) == {
        "wouldChange": 3, "dryRun": True}
    assert as_json(cli(url, "jobs", "retry", "--failed", "--name", "fragile", "-o", "json")) == {"retried": 3}
    assert len(as_json(cli(url, "jobs", "ls", "--state", "waiting", "--name", "fragile", "-o", "json"))) == 3


def test_jobs_ls_search(serve):
    url = serve().url
    for user in (1, 2, 3):
        cli(url, "enqueue", "mail", "--data", json.dumps({"userId": user}))
    found = as_json(cli(url, "jobs", "ls", "--search", "data.userId = 2", "-o", "json"))
    assert [row["name"] for row in found] == ["mail"] and len(found) == 1
    bad = cli(url, "jobs", "ls", "--search", "data.userId == 2")
    assert bad.returncode == 1 and "bad search" in bad.stderr


def _fail_for_good(url: str, name: str, errors: list[str], queue: str = "default") -> list[str]:
    import urllib.request

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    post(f"/queues/jobs/bulk?queue={queue}", {"jobs": [{"name": name} for _ in errors]})
    leased = post(f"/queues/jobs/lease?queue={queue}", {"max": len(errors), "names": [name]})["jobs"]
    for job, error in zip(leased, errors, strict=True):
        post(f"/queues/jobs/{job['id']}/fail", {"leaseToken": job["leaseToken"], "error": error, "retry": False})
    return [job["id"] for job in leased]


def test_failures_by_group_delete_running_and_nodes(serve):
    url = serve().url
    pushed = _fail_for_good(url, "push", [f"APNs rejected device token {n:040x}" for n in range(12)])
    _fail_for_good(url, "mail", ["SMTP 550 for a@example.com"])
    groups = as_json(cli(url, "failures", "-o", "json"))
    assert [(g["count"], g["fingerprint"]) for g in groups] == [
        (12, "APNs rejected device token <id>"), (1, "SMTP <n> for <email>")]
    table = cli(url, "failures").stdout
    assert "FINGERPRINT" in table and "LAST SEEN" in table and ("ago" in table or "now" in table)
    group = groups[0]["group"]
    assert as_json(cli(url, "failures", "retry", group, "--dry-run", "-o", "json")) == {"wouldChange": 12,
                                                                                         "dryRun": True}
    assert as_json(cli(url, "failures", "retry", group, "-o", "json")) == {"retried": 12}
    assert [g["count"] for g in as_json(cli(url, "failures", "-o", "json"))] == [1]
    deleted = as_json(cli(url, "jobs", "delete", pushed[0], pushed[1], "-o", "json"))
    assert deleted["deleted"] == 2
    assert cli(url, "jobs", "show", pushed[0]).returncode == 1
    assert as_json(cli(url, "running", "-o", "json")) == []
    assert as_json(cli(url, "nodes", "-o", "json"))["cluster"] is False
    assert "no" in cli(url, "nodes").stdout.split()  # a boolean as a word


def test_groups_from_the_shell(serve):
    url = serve().url
    assert as_json(cli(url, "groups", "set", "acct-7", "--concurrency", "2", "--rate", "20/1m", "-o", "json"))
    cli(url, "enqueue", "sync", "--data", "{}")
    shown = as_json(cli(url, "groups", "show", "acct-7", "-o", "json"))
    assert shown["limits"] == {"concurrency": 2, "rate": {"max": 20, "perMs": 60_000}}
    assert as_json(cli(url, "groups", "pause", "acct-7", "--for", "5m", "-o", "json"))["paused"] is True
    rows = as_json(cli(url, "groups", "-o", "json"))
    assert [(r["key"], r["concurrency"], r["rate"], r["paused"]) for r in rows] == [("acct-7", 2, "20 per 1m", True)]
    table = cli(url, "groups").stdout
    assert "20 per 1m" in table and "yes" in table and "True" not in table
    assert as_json(cli(url, "groups", "resume", "acct-7", "-o", "json"))["paused"] is False


def test_jobs_ls_pages_every_queue_and_prints_words(serve):
    url = serve().url
    for queue, count in (("alpha", 3), ("beta", 2)):
        for i in range(count):
            cli(url, "enqueue", f"task-{i}", "--queue", queue)
    first = cli(url, "jobs", "ls", "--queue", "alpha", "--limit", "2")
    assert first.returncode == 0 and "(more: --cursor" in first.stderr
    cursor = first.stderr.split("--cursor ")[1].split(",")[0]
    rest = as_json(cli(url, "jobs", "ls", "--queue", "alpha", "--cursor", cursor, "-o", "json"))
    assert [r["name"] for r in rest] == ["task-2"]
    every = as_json(cli(url, "jobs", "ls", "--queue", "*", "--all", "-o", "json"))
    assert sorted((r["queue"], r["name"]) for r in every) == [
        ("alpha", "task-0"), ("alpha", "task-1"), ("alpha", "task-2"), ("beta", "task-0"), ("beta", "task-1")]
    table = cli(url, "jobs", "ls", "--queue", "beta").stdout
    header = table.splitlines()[0]
    assert "ATTEMPTS MADE" in header and "RUN AT" in header
    assert "None" not in table and (" ago" in table or " now" in table)

