"""The audit trail: operator changes kept with who, how, from where, what and how
many, through the API, the dashboard's session and the CLI; producers' calls not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ServeProcess
from node import call

ADMIN = "audit-admin-1"


def test_each_operator_change_is_kept_with_who_how_and_how_many(serve):
    appliance: ServeProcess = serve("--token", ADMIN)
    url = appliance.url
    ids = [call("POST", f"{url}/queues/jobs?queue=mail", {"name": "send"}, token=ADMIN)[1]["id"] for _ in range(3)]
    assert call("GET", f"{url}/queues/audit", token=ADMIN)[1] == {"entries": [], "nextBefore": None}  # adds are not

    assert call("DELETE", f"{url}/queues/jobs/{ids[0]}", token=ADMIN)[0] == 200
    status, _ = call("POST", f"{url}/queues/jobs/actions?queue=mail&state=waiting",
                     {"action": "cancel", "dryRun": True}, token=ADMIN)
    assert status == 200
    call("POST", f"{url}/queues/jobs/actions?queue=mail&state=waiting", {"action": "cancel"}, token=ADMIN)
    call("POST", f"{url}/queues/pause?queue=mail", token=ADMIN)
    call("POST", f"{url}/queues/clean?queue=mail", {"grace": 0, "status": "cancelled"}, token=ADMIN)
    assert call("POST", f"{url}/queues/jobs/{ids[0]}/retry", token=ADMIN)[0] == 404  # refused: not kept

    env = {**os.environ, "QUEUEAPP_TOKEN": ADMIN}
    done = subprocess.run([sys.executable, "-m", "queueapp", "queues", "resume", "mail", "--url", url],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr

    entries = call("GET", f"{url}/queues/audit", token=ADMIN)[1]["entries"]
    seen = [(e["action"], e["target"], e["changed"], e["via"], e["queue"]) for e in entries]
    assert seen == [
        ("resume queue", None, None, "cli", "mail"),
        ("clean", None, 3, "api", "mail"),
        ("pause queue", None, None, "api", "mail"),
        ("cancel", "state=waiting", 2, "api", "mail"),
        ("cancel (dry run)", "state=waiting", 2, "api", "mail"),
        ("cancel", ids[0], 1, "api", "mail"),
    ]
    assert {e["actor"] for e in entries} == {"admin"} and {e["address"] for e in entries} == {"127.0.0.1"}
    assert entries[1]["detail"] == {"grace": 0, "status": "cancelled"}
    assert entries[3]["detail"] == {"filters": {"state": "waiting"}}

    older = call("GET", f"{url}/queues/audit?limit=2&before={entries[1]['id']}", token=ADMIN)[1]
    assert [e["id"] for e in older["entries"]] == [entries[2]["id"], entries[3]["id"]]
    assert older["nextBefore"] == entries[3]["id"]
    assert call("GET", f"{url}/queues/audit?queue=other", token=ADMIN)[1]["entries"] == []
    table = subprocess.run([sys.executable, "-m", "queueapp", "audit", "--url", url], capture_output=True,
                           text=True, env=env, timeout=60)
    assert table.returncode == 0 and "resume queue" in table.stdout and "VIA" in table.stdout
    rows = json.loads(subprocess.run([sys.executable, "-m", "queueapp", "audit", "--queue", "mail", "-o", "json",
                                      "--url", url], capture_output=True, text=True, env=env, timeout=60).stdout)
    assert len(rows) == 6


def test_a_session_is_kept_as_the_dashboard_and_old_entries_are_pruned(serve, db_path):
    import sqlite3
    import urllib.request

    appliance = serve("--token", ADMIN, "--audit-retention-days", "1")
    url = appliance.url
    login = urllib.request.Request(f"{url}/ui/login", data=f"token={ADMIN}".encode(), method="POST",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # the login answers 303: keep its cookie
            return None

    opener = urllib.request.build_opener(Keep)
    try:
        answer = opener.open(login, timeout=10)
        cookie_header = answer.headers.get("Set-Cookie")
    except urllib.error.HTTPError as redirect:
        cookie_header = redirect.headers.get("Set-Cookie")
    cookie = cookie_header.split(";", 1)[0]
    session = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{url}/ui/session", headers={"Cookie": cookie}), timeout=10).read())
    request = urllib.request.Request(f"{url}/queues/pause?queue=web", method="POST", data=b"",
                                     headers={"Cookie": cookie, "X-CSRF-Token": session["csrf"],
                                              "Origin": url})
    assert urllib.request.urlopen(request, timeout=10).status == 200
    (entry,) = call("GET", f"{url}/queues/audit", token=ADMIN)[1]["entries"]
    assert (entry["action"], entry["via"], entry["actor"]) == ("pause queue", "dashboard", "admin")

    with sqlite3.connect(db_path) as conn:  # an entry from two days ago, as sqlite3 on the file writes it
        conn.execute("UPDATE audit SET at = at - 2 * 86400000")
    _, job = call("POST", f"{url}/queues/schedules/cleanup/run", token=ADMIN)
    import time

    deadline = time.monotonic() + 20
    while call("GET", f"{url}/queues/jobs/{job['id']}", token=ADMIN)[1]["state"] != "completed":
        assert time.monotonic() < deadline, "the cleanup did not run"
        time.sleep(0.05)  # a job in another process: nothing to wait on but its state
    remaining = call("GET", f"{url}/queues/audit", token=ADMIN)[1]["entries"]
    assert [e["action"] for e in remaining] == ["run schedule"]  # the old entry pruned, the run kept
