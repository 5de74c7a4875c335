"""Scoped API keys against a real ``queueapp serve``: every operation of the OpenAPI
description called by keys of each role, limited to one queue and not; a revoke, a
rotation and an expiry taking effect on the next request; the secret nowhere in the
database file or the log; guessing throttled per client address; the keys' CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from conftest import ServeProcess
from node import call, until

ADMIN = "keys-admin-token-1"
READ_TOKEN = "keys-read-token-1"
INSIDE, OUTSIDE = "payments", "emails"

# Each operation's rule, written here apart from the code: an operation the
# description gains without a row here fails the test, as does a rule that changed.
EXPECTED = {
    "livez": ("public", "none"), "openapi": ("anyone", "none"),
    "list_queues": ("read", "own"), "metrics": ("read", "queue"), "health": ("read", "queue"),
    "nodes": ("read", "every"), "audit": ("read", "every"), "prometheus_metrics": ("read", "every"),
    "audit_trail": ("read", "queue or every"),
    "pause": ("admin", "queue"), "resume": ("admin", "queue"), "clean": ("admin", "queue"),
    "list_groups": ("read", "queue"), "get_policy": ("read", "queue"), "set_policy": ("admin", "queue"),
    "drop_policy": ("admin", "queue"), "get_key": ("read", "queue"), "set_key": ("admin", "queue"),
    "forget_key": ("admin", "queue"), "pause_key": ("admin", "queue"), "resume_key": ("admin", "queue"),
    "add_job": ("enqueue", "queue"), "add_bulk": ("enqueue", "queue"), "schedule_job": ("enqueue", "queue"),
    "stream_jobs": ("enqueue", "queue"),
    "failed_jobs": ("read", "queue"), "stuck_jobs": ("read", "queue"), "list_jobs": ("read", "queue"),
    "failure_groups": ("read", "queue"), "history": ("read", "queue"), "running": ("read", "queue"),
    "job_events": ("read", "queue"),
    "get_job": ("read", "job"), "job_log": ("read", "job"), "job_dependents": ("read", "job"),
    "cancel_job": ("admin", "job"), "retry_job": ("admin", "job"), "promote_job": ("admin", "job"),
    "act": ("admin", "queue"),
    "lease": ("work", "queue"), "heartbeat": ("work", "job"), "append_log": ("work", "job"),
    "complete": ("work", "job"), "fail": ("work", "job"), "release": ("work", "job"),
    "complete_many": ("work", "jobs"),
    "save_schedule": ("admin", "queue"), "list_schedules": ("read", "queue"), "get_schedule": ("read", "queue"),
    "delete_schedule": ("admin", "queue"), "pause_schedule": ("admin", "queue"),
    "resume_schedule": ("admin", "queue"), "run_schedule": ("admin", "queue"),
    "create_key": ("admin", "every"), "list_keys": ("admin", "every"), "get_key_info": ("admin", "every"),
    "revoke_key": ("admin", "every"), "rotate_key": ("admin", "every"),
    "replication": ("admin", "every"), "replica_file": ("admin", "every"), "standby_holds": ("admin", "every"),
}


class Caller:
    """Who calls: a bearer secret, its roles and its queues (None: every queue)."""

    def __init__(self, label: str, secret: str, roles: set[str], queues: set[str] | None) -> None:
        self.label, self.secret, self.roles, self.queues = label, secret, roles, queues

    def allowed(self, role: str, scope: str, queue: str) -> bool:
        if role == "public":
            return True
        if role != "anyone" and "admin" not in self.roles and role not in self.roles:
            return False
        if self.queues is None or scope in ("own", "none"):
            return True
        return scope != "every" and queue in self.queues


def make_key(url: str, name: str, roles: list[str], queues: list[str], **more: Any) -> dict[str, Any]:
    status, made = call("POST", f"{url}/queues/keys", {"name": name, "roles": roles, "queues": queues, **more},
                        token=ADMIN)
    assert status == 201, made
    return made


def job_in(url: str, queue: str) -> str:
    return call("POST", f"{url}/queues/jobs?queue={queue}", {"name": "charge"}, token=ADMIN)[1]["id"]


def leased_in(url: str, queue: str) -> tuple[str, str]:
    job_in(url, queue)
    (job,) = call("POST", f"{url}/queues/jobs/lease?queue={queue}", {"max": 1}, token=ADMIN)[1]["jobs"]
    return job["id"], job["leaseToken"]


def _body(operation_id: str, job: str, token: str) -> Any:
    """A body each operation takes (the rules are checked before the body is, but a
    well-formed one keeps what is tested the rule)."""
    bodies = {
        "add_job": {"name": "charge"}, "schedule_job": {"name": "charge", "scheduledTime": "2030-01-01T00:00:00Z"},
        "add_bulk": {"jobs": [{"name": "charge"}]}, "complete_many": {"jobs": [{"id": job, "leaseToken": token}]},
        "heartbeat": {"leaseToken": token}, "append_log": {"leaseToken": token, "lines": ["x"]},
        "complete": {"leaseToken": token}, "fail": {"leaseToken": token, "error": "x"},
        "release": {"leaseToken": token}, "lease": {"max": 1}, "act": {"action": "retry", "dryRun": True},
        "save_schedule": {"name": "nightly", "jobName": "charge", "cron": "0 3 * * *"},
        "set_policy": {"concurrency": 2}, "set_key": {"concurrency": 2}, "clean": {"grace": 0},
        "create_key": {"name": f"made-{time.monotonic_ns()}", "roles": ["read"], "queues": ["*"]},
    }
    return bodies.get(operation_id)


async def _status(session: aiohttp.ClientSession, method: str, url: str, secret: str, body: Any,
                  ndjson: bool) -> int:
    headers = {"Authorization": f"Bearer {secret}"}
    if ndjson:
        data: Any = b'{"name": "charge"}\n'
        headers["Content-Type"] = "application/x-ndjson"
    else:
        data = None if body is None else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    async with session.request(method, url, data=data, headers=headers) as answer:
        return answer.status  # an event stream's status comes with its headers


def test_every_rule_is_declared_and_published(serve):
    appliance: ServeProcess = serve("--token", ADMIN)
    document = call("GET", f"{appliance.url}/openapi.json", token=ADMIN)[1]
    published = {op["operationId"]: (op["x-queueapp-access"]["role"], op["x-queueapp-access"]["queues"])
                 for item in document["paths"].values() for op in item.values()}
    assert published == EXPECTED
    assert "403" in document["paths"]["/queues/metrics"]["get"]["responses"]  # a reader of another queue


async def test_every_operation_answers_each_key_as_its_roles_and_queues_allow(serve):
    appliance: ServeProcess = serve("--token", ADMIN, "--read-token", READ_TOKEN, "--audit-interval-ms", "60000")
    url = appliance.url
    callers = [Caller("read token", READ_TOKEN, {"read"}, None)]
    for roles, queues in ((["enqueue"], [INSIDE]), (["work"], [INSIDE]), (["read"], [INSIDE]),
                          (["admin"], [INSIDE]), (["read"], ["*"]), (["enqueue", "work"], ["*"])):
        made = make_key(url, f"{'-'.join(roles)}@{'every' if queues == ['*'] else queues[0]}", roles, queues)
        callers.append(Caller(made["name"], made["secret"], set(roles), None if queues == ["*"] else set(queues)))
    document = call("GET", f"{url}/openapi.json", token=ADMIN)[1]
    checked = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for path, item in document["paths"].items():
            for method, op in item.items():
                operation_id = op["operationId"]
                role, scope = EXPECTED[operation_id]
                for caller in callers:
                    for queue in (INSIDE, OUTSIDE):
                        job, token = leased_in(url, queue) if "{id}" in path or scope == "jobs" else ("1", "")
                        spare = make_key(url, f"spare-{checked}", ["read"], ["*"])["id"] if "{key_id}" in path \
                            else ""
                        target = (path.replace("{id}", job).replace("{name}", "nightly").replace("{key}", "k1")
                                  .replace("{key_id}", spare))
                        query = "" if scope in ("every", "none", "own") else f"?queue={queue}"
                        status = await _status(session, method.upper(), url + target + query, caller.secret,
                                               _body(operation_id, job, token), operation_id == "stream_jobs")
                        where = (operation_id, caller.label, queue, status)
                        if caller.allowed(role, scope, queue):
                            assert status not in (401, 403, 429), where
                        elif caller.allowed(role, "none", queue) and scope in ("job", "jobs"):
                            assert status == 404, where  # a job of another queue is no job for it
                        else:
                            assert status == 403, where
                        checked += 1
    assert checked == len(EXPECTED) * len(callers) * 2


def test_an_enqueue_key_adds_only_to_its_queue_and_reads_nothing(serve):
    appliance: ServeProcess = serve("--token", ADMIN)
    url = appliance.url
    billing = make_key(url, "billing", ["enqueue"], [INSIDE], note="billing-api")
    secret = billing["secret"]
    assert re.fullmatch(r"qak_[A-Za-z0-9]{12}_[A-Za-z0-9]{32}", secret)
    assert secret.startswith(billing["prefix"].rstrip("…"))
    status, job = call("POST", f"{url}/queues/jobs?queue={INSIDE}", {"name": "charge"}, token=secret)
    assert status == 201
    status, refused = call("POST", f"{url}/queues/jobs?queue={OUTSIDE}", {"name": "welcome"}, token=secret)
    assert status == 403 and refused["error"]["code"] == "forbidden" and "'emails'" in refused["error"]["message"]
    assert call("GET", f"{url}/queues/metrics?queue={INSIDE}", token=secret)[0] == 403
    assert call("GET", f"{url}/queues/jobs/{job['id']}", token=secret)[0] == 403
    worker = make_key(url, "charger", ["work"], [INSIDE])["secret"]
    assert call("POST", f"{url}/queues/jobs?queue={INSIDE}", {"name": "charge"}, token=worker)[0] == 403
    (leased,) = call("POST", f"{url}/queues/jobs/lease?queue={INSIDE}", {"max": 1}, token=worker)[1]["jobs"]
    other = job_in(url, OUTSIDE)
    assert call("POST", f"{url}/queues/jobs/lease?queue={OUTSIDE}", {"max": 1}, token=worker)[0] == 403
    assert call("GET", f"{url}/queues/jobs/{other}", token=worker)[0] == 403
    reader = make_key(url, "payments-reader", ["read"], [INSIDE])["secret"]
    assert call("GET", f"{url}/queues/jobs/{other}", token=reader)[0] == 404
    assert [q["name"] for q in call("GET", f"{url}/queues", token=reader)[1]["queues"]] == [INSIDE]
    assert call("POST", f"{url}/queues/pause?queue={INSIDE}", token=reader)[0] == 403
    assert call("GET", f"{url}/metrics", token=reader)[0] == 403
    status, done = call("POST", f"{url}/queues/jobs/{leased['id']}/complete", {"leaseToken": leased["leaseToken"]},
                        token=worker)
    assert status == 200 and done["state"] == "completed"
    # A key limited to some queues cannot make keys, nor can one that is not an admin.
    assert call("POST", f"{url}/queues/keys", {"name": "x", "roles": ["admin"], "queues": ["*"]},
                token=make_key(url, "payments-admin", ["admin"], [INSIDE])["secret"])[0] == 403


def test_revoke_rotate_and_expiry_take_effect_on_the_next_request(serve):
    appliance: ServeProcess = serve("--token", ADMIN)
    url = appliance.url
    made = make_key(url, "mailer", ["enqueue"], ["*"])
    assert call("POST", f"{url}/queues/jobs", {"name": "send"}, token=made["secret"])[0] == 201
    status, revoked = call("DELETE", f"{url}/queues/keys/{made['id']}", token=ADMIN)
    assert status == 200 and revoked["state"] == "revoked" and revoked["revokedAt"]
    status, refused = call("POST", f"{url}/queues/jobs", {"name": "send"}, token=made["secret"])
    assert status == 401 and "revoked" in refused["error"]["message"]
    assert call("POST", f"{url}/queues/keys/{made['id']}/rotate", token=ADMIN)[0] == 404  # a revoked key stays so
    # The name is free again once revoked.
    again = make_key(url, "mailer", ["enqueue"], ["*"])
    assert call("POST", f"{url}/queues/keys", {"name": "mailer", "roles": ["read"], "queues": ["*"]},
                token=ADMIN)[0] == 409

    status, rotated = call("POST", f"{url}/queues/keys/{again['id']}/rotate", {"graceSeconds": 3600}, token=ADMIN)
    assert status == 200 and rotated["secret"] != again["secret"] and rotated["previousSecretUntil"]
    for secret in (again["secret"], rotated["secret"]):  # both during the grace
        assert call("POST", f"{url}/queues/jobs", {"name": "send"}, token=secret)[0] == 201
    status, now_only = call("POST", f"{url}/queues/keys/{again['id']}/rotate", token=ADMIN)
    assert status == 200 and now_only["previousSecretUntil"] is None
    for secret in (again["secret"], rotated["secret"]):
        assert call("POST", f"{url}/queues/jobs", {"name": "send"}, token=secret)[0] == 401
    assert call("POST", f"{url}/queues/jobs", {"name": "send"}, token=now_only["secret"])[0] == 201

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    brief = make_key(url, "brief", ["read"], ["*"], expiresAt=soon)
    assert call("GET", f"{url}/queues/metrics", token=brief["secret"])[0] == 200
    until(lambda: call("GET", f"{url}/queues/metrics", token=brief["secret"])[0] == 401, timeout=30,
          what="the key expires")
    listed = {k["name"]: k for k in call("GET", f"{url}/queues/keys", token=ADMIN)[1]["keys"]}
    assert listed["brief"]["state"] == "expired" and "secret" not in listed["brief"]
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert call("POST", f"{url}/queues/keys", {"name": "late", "roles": ["read"], "queues": ["*"],
                                              "expiresAt": past}, token=ADMIN)[0] == 400

    trail = call("GET", f"{url}/queues/audit", token=ADMIN)[1]["entries"]
    assert [e["action"] for e in trail][:3] == ["create API key", "rotate API key", "rotate API key"]
    assert all(e["actor"] == "admin" and e["queue"] is None for e in trail)
    assert not any(made["secret"] in json.dumps(e) for e in trail)


def test_the_secret_is_in_neither_the_database_nor_the_log(serve, db_path: Path):
    appliance: ServeProcess = serve("--token", ADMIN)
    url = appliance.url
    made = make_key(url, "deploy-bot", ["admin"], ["*"])
    secret = made["secret"]
    # The key acts (its name in the audit trail), a guess fails, the key is rotated and revoked.
    assert call("POST", f"{url}/queues/pause?queue=q", token=secret)[0] == 200
    assert call("POST", f"{url}/queues/resume?queue=q", token=_other(secret))[0] == 401
    rotated = call("POST", f"{url}/queues/keys/{made['id']}/rotate", token=ADMIN)[1]["secret"]
    call("DELETE", f"{url}/queues/keys/{made['id']}", token=ADMIN)
    trail = call("GET", f"{url}/queues/audit", token=ADMIN)[1]["entries"]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("revoke API key", "admin"), ("rotate API key", "admin"), ("pause queue", "key:deploy-bot"),
        ("create API key", "admin")]
    appliance.terminate()
    files = [db_path, *db_path.parent.glob(db_path.name + "-*"), appliance.log_path]
    for path in files:
        content = path.read_bytes()
        for text in (secret, rotated, secret[-32:], rotated[-32:]):
            assert text.encode() not in content, path
    assert made["id"].encode() in db_path.read_bytes() + b"".join(p.read_bytes() for p in files[1:])


def test_guessing_is_throttled_per_client_address(serve):
    appliance: ServeProcess = serve("--token", ADMIN, "--trusted-proxies", "127.0.0.1")
    url = appliance.url
    revoked = make_key(url, "old", ["read"], ["*"])
    call("DELETE", f"{url}/queues/keys/{revoked['id']}", token=ADMIN)

    def metrics(secret: str, client: str) -> tuple[int, Any]:
        request_headers = {"Authorization": f"Bearer {secret}", "X-Forwarded-For": client}
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"{url}/queues/metrics", headers=request_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers)

    for _ in range(20):  # a known key that was revoked is no guess
        assert metrics(revoked["secret"], "203.0.113.9")[0] == 401
    assert metrics(ADMIN, "203.0.113.9")[0] == 200
    for _ in range(10):
        assert metrics("qak_guessguessgu_" + "g" * 32, "203.0.113.5")[0] == 401
    status, headers = metrics("another-guess", "203.0.113.5")
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert metrics(ADMIN, "203.0.113.5")[0] == 429  # not even read until it may try again
    assert metrics(ADMIN, "203.0.113.6")[0] == 200  # another address is not held up

    for _ in range(10):
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                               "X-Forwarded-For: 198.51.100.4", "--data-urlencode", "token=wrong",
                               f"{url}/ui/login"], capture_output=True, text=True, timeout=30)
        assert done.stdout == "303"
    page = subprocess.run(["curl", "-s", "-i", "-H", "X-Forwarded-For: 198.51.100.4", "--data-urlencode",
                           f"token={ADMIN}", f"{url}/ui/login"], capture_output=True, text=True, timeout=30).stdout
    assert page.startswith("HTTP/1.1 429") and "Retry-After" in page and "Too many failed attempts" in page


def test_the_keys_commands_make_list_rotate_and_revoke(serve):
    appliance: ServeProcess = serve("--token", ADMIN)
    env = {**os.environ, "QUEUEAPP_TOKEN": ADMIN, "QUEUEAPP_URL": appliance.url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "queueapp", "keys", *args], capture_output=True, text=True,
                              env=env, timeout=60)

    made = cli("create", "billing", "--role", "enqueue", "--queue", INSIDE, "--expires", "30d", "--note", "prod")
    assert made.returncode == 0, made.stderr
    secret = re.search(r"qak_[A-Za-z0-9]{12}_[A-Za-z0-9]{32}", made.stdout).group(0)
    key_id = secret[4:16]
    assert "shown once" in made.stdout
    assert call("POST", f"{appliance.url}/queues/jobs?queue={INSIDE}", {"name": "charge"}, token=secret)[0] == 201
    listed = cli("ls")
    assert listed.returncode == 0 and "billing" in listed.stdout and "enqueue" in listed.stdout
    assert secret not in listed.stdout
    rows = json.loads(cli("ls", "-o", "json").stdout)
    assert rows[0]["name"] == "billing" and rows[0]["expiresAt"] and rows[0]["note"] == "prod"
    rotated = cli("rotate", key_id, "--grace", "1h")
    assert rotated.returncode == 0 and secret not in rotated.stdout and "qak_" in rotated.stdout
    revoked = cli("revoke", key_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert call("POST", f"{appliance.url}/queues/jobs?queue={INSIDE}", {"name": "charge"}, token=secret)[0] == 401
    assert cli("revoke", "nosuchkey000").returncode != 0
    bad = cli("create", "x", "--role", "boss", "--queue", "*")
    assert bad.returncode == 2


def test_keys_need_a_token(serve):
    appliance: ServeProcess = serve()
    status, refused = call("POST", f"{appliance.url}/queues/keys", {"name": "x", "roles": ["read"], "queues": ["*"]})
    assert status == 409 and "token" in refused["error"]["message"]


def _other(secret: str) -> str:
    """The secret with its last character changed (to one it is not)."""
    return secret[:-1] + ("y" if secret.endswith("x") else "x")
