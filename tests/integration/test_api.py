"""The HTTP API on a real aiohttp server over a real store."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest


def row_count(db_path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("select count(*) from jobs").fetchone()[0]


async def post_job(client, body, queue=None):
    path = "/queues/jobs" + (f"?queue={queue}" if queue else "")
    response = await client.post(path, json=body)
    return response.status, await response.json()


BAD_JOBS = [
    ({"name": ""}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"data": {}}, "name"),
    ({"name": 5}, "name"),
    ({"name": "a", "data": [1, 2]}, "data"),
    ({"name": "a", "data": "text"}, "data"),
    ({"name": "a", "options": {"priority": 0}}, "options.priority"),
    ({"name": "a", "options": {"priority": 6}}, "options.priority"),
    ({"name": "a", "options": {"priority": "2"}}, "options.priority"),
    ({"name": "a", "options": {"attempts": 0}}, "options.attempts"),
    ({"name": "a", "options": {"delay": -1}}, "options.delay"),
    ({"name": "a", "options": {"backoff": {"multiplier": 0.5}}}, "options.backoff.multiplier"),
    ({"name": "a", "options": {"backoff": {"type": "linear"}}}, "options.backoff.type"),
    ({"name": "a", "options": {"backoff": {"jitter": 2}}}, "options.backoff.jitter"),
    ({"name": "a", "options": {"retries": 3}}, "options.retries"),
    ({"name": "a", "priorityFactors": {"userTier": "gold"}}, "priorityFactors.userTier"),
    ({"name": "a", "priorityFactors": {"urgency": "asap"}}, "priorityFactors.urgency"),
    ({"name": "a", "priorityFactors": {"deadline": "2026-12-31T10:00:00"}}, "priorityFactors.deadline"),
]


@pytest.mark.parametrize(("body", "field"), BAD_JOBS)
async def test_bad_jobs_are_refused_and_change_nothing(make_client, db_path, body, field):
    client = await make_client()
    status, answer = await post_job(client, body)
    assert status == 400
    error = answer["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert any(d["field"] == field for d in error["details"])
    assert row_count(db_path) == 0
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["total"] == 0


async def test_invalid_json_wrong_content_and_bad_queue_name(make_client, db_path):
    client = await make_client()
    r = await client.post("/queues/jobs", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "validation_error"
    r = await client.post("/queues/jobs", data=b"", headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await client.post("/queues/jobs?queue=bad/name", json={"name": "a"})
    assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "queue"
    r = await client.post("/queues/jobs?queue=" + "q" * 65, json={"name": "a"})
    assert r.status == 400
    assert row_count(db_path) == 0


async def test_body_over_the_limit_is_413(make_client, db_path):
    client = await make_client(max_body_bytes=2048)
    r = await client.post("/queues/jobs", json={"name": "a", "data": {"blob": "x" * 5000}})
    assert r.status == 413
    assert (await r.json())["error"]["code"] == "payload_too_large"
    assert row_count(db_path) == 0


async def test_add_job_answers_the_stored_job(make_client):
    client = await make_client()
    status, job = await post_job(client, {
        "name": "send-email",
        "data": {"to": "user@example.com", "subject": "Welcome", "body": "Hello!"},
        "options": {"priority": 2, "attempts": 3},
    })
    assert status == 201
    assert job["state"] == "waiting" and job["priority"] == 2 and job["attempts"] == 3
    assert job["attemptsMade"] == 0 and job["errors"] == [] and job["jobId"] is None
    assert job["createdAt"].endswith("Z")
    fetched = await (await client.get(f"/queues/jobs/{job['id']}")).json()
    assert fetched == job


async def test_priority_from_factors_and_default_attempts(make_client):
    client = await make_client()
    _, job = await post_job(client, {
        "name": "process-payment", "data": {"amount": 99.99, "userId": "123"},
        "priorityFactors": {"userTier": "premium", "urgency": "high",
                            "businessImpact": "revenue", "deadline": "2099-12-31T23:59:59Z"},
    })
    assert job["priority"] == 2 and job["attempts"] == 4
    _, explicit = await post_job(client, {
        "name": "p", "options": {"priority": 5}, "priorityFactors": {"urgency": "critical"},
    })
    assert explicit["priority"] == 5 and explicit["attempts"] == 1


async def test_idempotent_enqueue_under_concurrent_posts(make_client, db_path):
    client = await make_client()
    body = {"name": "charge", "options": {"jobId": "invoice-7"}}
    answers = await asyncio.gather(*(post_job(client, body) for _ in range(20)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 19 + [201]
    assert len({job["id"] for _, job in answers}) == 1
    assert row_count(db_path) == 1


async def test_schedule_at_a_time(make_client):
    client = await make_client()
    r = await client.post("/queues/jobs/schedule", json={
        "name": "send-reminder", "data": {"userId": "123"}, "scheduledTime": "2099-12-25T09:00:00Z"})
    assert r.status == 201
    job = await r.json()
    assert job["state"] == "delayed" and job["runAt"] == "2099-12-25T09:00:00.000Z"
    r = await client.post("/queues/jobs/schedule", json={
        "name": "now", "scheduledTime": "2001-01-01T00:00:00+02:00"})
    assert (await r.json())["state"] == "waiting"
    r = await client.post("/queues/jobs/schedule", json={"name": "x", "scheduledTime": "2099-12-25T09:00:00"})
    assert r.status == 400 and "scheduledTime" in (await r.json())["error"]["message"]
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["delayed"] == 1 and metrics["waiting"] == 1


async def test_bulk_is_all_or_nothing(make_client, db_path):
    client = await make_client()
    jobs = [{"name": f"job-{i}", "data": {"i": i}} for i in range(50)]
    jobs[37] = {"name": "bad", "options": {"priority": 9}}
    r = await client.post("/queues/jobs/bulk", json={"jobs": jobs})
    assert r.status == 400
    assert (await r.json())["error"]["details"][0]["field"] == "jobs.37.options.priority"
    assert row_count(db_path) == 0
    jobs[37] = {"name": "fixed"}
    r = await client.post("/queues/jobs/bulk", json={"jobs": jobs})
    assert r.status == 201
    body = await r.json()
    assert [j["data"].get("i") for j in body["jobs"]][:3] == [0, 1, 2]
    assert row_count(db_path) == 50
    r = await client.post("/queues/jobs/bulk", json={"jobs": []})
    assert r.status == 400


async def test_list_jobs_pages_with_a_cursor(make_client):
    client = await make_client()
    await client.post("/queues/jobs/bulk", json={"jobs": [{"name": "n"} for _ in range(25)]})
    seen, cursor = [], None
    while True:
        url = "/queues/jobs?limit=10&state=waiting" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and len(set(seen)) == 25
    assert (await client.get("/queues/jobs?state=bogus")).status == 400
    assert (await client.get("/queues/jobs?limit=0")).status == 400
    assert (await client.get("/queues/jobs?limit=abc")).status == 400


async def test_unknown_job_ids_are_404(make_client):
    client = await make_client()
    for method, path in [("GET", "/queues/jobs/12345"), ("GET", "/queues/jobs/abc"),
                         ("DELETE", "/queues/jobs/12345"), ("POST", "/queues/jobs/12345/retry")]:
        r = await client.request(method, path)
        assert r.status == 404, path
        assert (await r.json())["error"]["code"] == "not_found"
    r = await client.post("/queues/jobs/12345/complete", json={"leaseToken": "t"})
    assert r.status == 404
    r = await client.get("/nowhere")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_cancel_and_retry_states(make_client):
    client = await make_client()
    _, job = await post_job(client, {"name": "n"})
    r = await client.post(f"/queues/jobs/{job['id']}/retry")
    assert r.status == 409 and (await r.json())["error"]["code"] == "conflict"
    r = await client.delete(f"/queues/jobs/{job['id']}")
    assert r.status == 200 and (await r.json())["state"] == "cancelled"
    r = await client.delete(f"/queues/jobs/{job['id']}")
    assert r.status == 409
    r = await client.post(f"/queues/jobs/{job['id']}/retry")
    assert r.status == 200 and (await r.json())["state"] == "waiting"


async def test_lease_complete_fail_and_stale_tokens(make_client, db_path):
    client = await make_client()
    await post_job(client, {"name": "a", "options": {"priority": 4}})
    await post_job(client, {"name": "b", "options": {"priority": 1, "attempts": 2,
                                                      "backoff": {"type": "fixed", "delay": 0}}})
    r = await client.post("/queues/jobs/lease", json={"max": 1})
    (first,) = (await r.json())["jobs"]
    assert first["name"] == "b" and first["state"] == "active" and first["leaseToken"]
    r = await client.post(f"/queues/jobs/{first['id']}/heartbeat",
                          json={"leaseToken": first["leaseToken"], "progress": 30})
    assert r.status == 200 and (await r.json())["progress"] == 30
    r = await client.post(f"/queues/jobs/{first['id']}/heartbeat", json={"leaseToken": "wrong"})
    assert r.status == 409
    r = await client.post(f"/queues/jobs/{first['id']}/fail",
                          json={"leaseToken": first["leaseToken"], "error": "smtp down"})
    failed = await r.json()
    assert failed["state"] == "waiting" and failed["error"] == "smtp down"
    # the second attempt of b still comes before a
    r = await client.post("/queues/jobs/lease", json={"max": 5, "names": ["a", "b"]})
    leased = (await r.json())["jobs"]
    assert [j["name"] for j in leased] == ["b", "a"]
    b, a = leased
    r = await client.post(f"/queues/jobs/{b['id']}/complete",
                          json={"leaseToken": b["leaseToken"], "result": {"ok": True}})
    assert (await r.json())["state"] == "completed"
    r = await client.post(f"/queues/jobs/{b['id']}/complete", json={"leaseToken": b["leaseToken"]})
    assert r.status == 409
    r = await client.post(f"/queues/jobs/{a['id']}/fail",
                          json={"leaseToken": a["leaseToken"], "error": "no", "retry": False})
    assert (await r.json())["state"] == "failed"
    failed_list = await (await client.get("/queues/jobs/failed")).json()
    assert [j["id"] for j in failed_list["jobs"]] == [a["id"]]
    for bad in ({"max": 0}, {"max": 5000}, {"waitMs": 60_000}, {"names": []}, {"worker": ""},
                {"worker": "w" * 201}, {"worker": "host\n1"}):
        r = await client.post("/queues/jobs/lease", json=bad)
        assert r.status == 400, bad


async def test_each_attempt_keeps_the_worker_that_ran_it(make_client):
    client = await make_client()
    options = {"attempts": 2, "backoff": {"type": "fixed", "delay": 0}}
    _, job = await post_job(client, {"name": "bill", "options": options})
    r = await client.post("/queues/jobs/lease", json={"worker": "billing-3:4242"})
    (leased,) = (await r.json())["jobs"]
    assert leased["worker"] == "billing-3:4242"
    r = await client.post(f"/queues/jobs/{job['id']}/fail", json={"leaseToken": leased["leaseToken"], "error": "503"})
    assert (await r.json())["errors"][0]["worker"] == "billing-3:4242"
    r = await client.post("/queues/jobs/lease", json={})  # no name given: its address
    (again,) = (await r.json())["jobs"]
    await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": again["leaseToken"]})
    done = await (await client.get(f"/queues/jobs/{job['id']}")).json()
    assert done["worker"] == "127.0.0.1" and [e["worker"] for e in done["errors"]] == ["billing-3:4242"]


async def test_long_poll_lease_answers_when_a_job_arrives(make_client):
    client = await make_client()
    poll = asyncio.create_task(client.post("/queues/jobs/lease", json={"waitMs": 10_000}))
    await asyncio.sleep(0)  # let the poll reach the server before the job does
    await post_job(client, {"name": "late"})
    r = await asyncio.wait_for(poll, 5)
    assert [j["name"] for j in (await r.json())["jobs"]] == ["late"]
    r = await client.post("/queues/jobs/lease", json={"waitMs": 50})
    assert (await r.json())["jobs"] == []


async def test_pause_resume_and_queues_listing(make_client):
    client = await make_client()
    await post_job(client, {"name": "n"}, queue="mail")
    r = await client.post("/queues/pause?queue=mail")
    assert await r.json() == {"queue": "mail", "paused": True}
    assert (await (await client.post("/queues/jobs/lease?queue=mail", json={})).json())["jobs"] == []
    metrics = await (await client.get("/queues/metrics?queue=mail")).json()
    assert metrics["paused"] == 1 and metrics["waiting"] == 0
    listing = await (await client.get("/queues")).json()
    mail = next(q for q in listing["queues"] if q["name"] == "mail")
    assert mail["paused"] is True and mail["counts"]["waiting"] == 1
    r = await client.post("/queues/resume?queue=mail")
    assert await r.json() == {"queue": "mail", "paused": False}
    assert len((await (await client.post("/queues/jobs/lease?queue=mail", json={})).json())["jobs"]) == 1


async def test_clean_removes_old_finished_jobs(make_client, db_path):
    client = await make_client()
    for _ in range(3):
        _, job = await post_job(client, {"name": "n"})
        await client.delete(f"/queues/jobs/{job['id']}")
    r = await client.post("/queues/clean", json={"grace": 3_600_000, "status": "cancelled"})
    assert await r.json() == {"removed": 0}
    r = await client.post("/queues/clean", json={"grace": 0, "status": "cancelled", "limit": 2})
    assert await r.json() == {"removed": 2}
    r = await client.post("/queues/clean", json={"status": "running"})
    assert r.status == 400
    assert row_count(db_path) == 1


async def test_metrics_and_health_have_the_seed_fields(make_client):
    client = await make_client()
    metrics = await (await client.get("/queues/metrics")).json()
    assert list(metrics) == ["queueName", "waiting", "active", "completed", "failed", "delayed",
                             "paused", "total", "throughput", "avgProcessingTime"]
    r = await client.get("/queues/health")
    health = await r.json()
    assert r.status == 200
    assert health["status"] == "healthy" and health["issues"] == []
    assert health["metrics"] == metrics and health["timestamp"].endswith("Z")
    assert (await (await client.get("/queues/jobs/stuck")).json()) == {"jobs": []}


async def test_auth_when_a_token_is_configured(make_client, db_path):
    client = await make_client(token="s3cret")
    assert (await client.get("/livez")).status == 200
    r = await client.post("/queues/jobs", json={"name": "a"})
    assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    r = await client.get("/queues/metrics", headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    assert row_count(db_path) == 0
    r = await client.post("/queues/jobs", json={"name": "a"}, headers={"Authorization": "Bearer s3cret"})
    assert r.status == 201


async def test_method_not_allowed_has_the_error_shape(make_client):
    client = await make_client()
    r = await client.put("/queues/metrics")
    assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"


def fingerprint(db_path):
    """Everything a write could change, in one comparable value."""
    with sqlite3.connect(db_path) as conn:
        jobs = conn.execute("select id, state, attempts_made, progress, result, error, errors, run_at,"
                            " lease_token, finished_at from jobs order by id").fetchall()
        schedules = conn.execute("select * from schedules order by queue, name").fetchall()
        queues = conn.execute("select * from queues order by name").fetchall()
    return jobs, schedules, queues


async def test_no_error_answer_on_any_route_changes_the_store(make_client, db_path):
    client = await make_client()
    _, waiting = await post_job(client, {"name": "w"})
    _, done = await post_job(client, {"name": "d"})
    leased = (await (await client.post("/queues/jobs/lease", json={"names": ["d"]})).json())["jobs"][0]
    await client.post(f"/queues/jobs/{done['id']}/complete", json={"leaseToken": leased["leaseToken"]})
    await post_job(client, {"name": "a"})
    active = (await (await client.post("/queues/jobs/lease", json={"names": ["a"]})).json())["jobs"][0]
    await client.post("/queues/schedules", json={"name": "s", "everyMs": 60_000})
    before = fingerprint(db_path)
    bad = [
        ("POST", "/queues/jobs", {"name": "x", "options": {"priority": 9}}, 400),
        ("POST", "/queues/jobs?queue=no/pe", {"name": "x"}, 400),
        ("POST", "/queues/jobs/bulk", {"jobs": [{"name": "ok"}, {"name": ""}]}, 400),
        ("POST", "/queues/jobs/schedule", {"name": "x", "scheduledTime": "tomorrow"}, 400),
        ("POST", f"/queues/jobs/{waiting['id']}/retry", None, 409),
        ("POST", "/queues/jobs/999999/retry", None, 404),
        ("DELETE", f"/queues/jobs/{done['id']}", None, 409),
        ("DELETE", "/queues/jobs/999999", None, 404),
        ("POST", f"/queues/jobs/{active['id']}/complete", {"leaseToken": "stale"}, 409),
        ("POST", f"/queues/jobs/{active['id']}/fail", {"leaseToken": "stale", "error": "e"}, 409),
        ("POST", f"/queues/jobs/{active['id']}/heartbeat", {"leaseToken": "stale", "progress": 5}, 409),
        ("POST", f"/queues/jobs/{active['id']}/release", {"leaseToken": "stale"}, 409),
        ("POST", f"/queues/jobs/{active['id']}/complete", {"leaseToken": active["leaseToken"], "x": 1}, 400),
        ("POST", "/queues/jobs/complete", {"jobs": [{"id": "abc", "leaseToken": "t"}]}, 400),
        ("POST", "/queues/jobs/lease", {"max": 0}, 400),
        ("POST", "/queues/clean", {"grace": -1}, 400),
        ("POST", "/queues/pause?queue=a%20b", None, 400),
        ("POST", "/queues/schedules", {"name": "s", "cron": "nope"}, 400),
        ("DELETE", "/queues/schedules/nothing", None, 404),
        ("POST", "/queues/schedules/nothing/pause", None, 404),
    ]
    for method, path, body, status in bad:
        r = await client.request(method, path, json=body)
        assert r.status == status, (method, path, r.status, await r.text())
        assert (await r.json())["error"]["code"]
    assert fingerprint(db_path) == before
