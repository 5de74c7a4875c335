"""Failures grouped by their error's fingerprint, and acted on as a group."""

from __future__ import annotations

import sqlite3

from queueapp.store import table_problems


async def fail_all(client, name: str, errors: list[str]) -> list[str]:
    jobs = [{"name": name, "options": {"attempts": 1}} for _ in errors]
    await client.post("/queues/jobs/bulk", json={"jobs": jobs})
    answer = await client.post("/queues/jobs/lease", json={"names": [name], "max": len(errors)})
    leased = (await answer.json())["jobs"]
    for job, error in zip(leased, errors, strict=True):
        r = await client.post(f"/queues/jobs/{job['id']}/fail", json={"leaseToken": job["leaseToken"], "error": error})
        assert r.status == 200
    return [job["id"] for job in leased]


async def test_thirty_failures_differing_by_a_token_are_one_group_retried_as_one(make_client):
    client = await make_client()
    pushed = await fail_all(client, "push", [f"APNs rejected device token {i:040x}" for i in range(30)])
    mailed = await fail_all(client, "mail", ["SMTP 550 mailbox unavailable for a@example.com",
                                             "SMTP 550 mailbox unavailable for b@example.org"])
    other = await fail_all(client, "mail", ["KeyError: 'to'"])
    groups = (await (await client.get("/queues/jobs/failed/groups")).json())["groups"]
    assert [(g["count"], g["fingerprint"]) for g in groups] == [
        (30, "APNs rejected device token <id>"),
        (2, "SMTP <n> mailbox unavailable for <email>"),
        (1, "KeyError: 'to'"),
    ]
    push = groups[0]
    assert push["names"] == ["push"] and push["error"].startswith("APNs rejected device token ")
    listed = await (await client.get(f"/queues/jobs?state=failed&errorGroup={push['errorGroup']}&limit=100")).json()
    assert sorted(j["id"] for j in listed["jobs"]) == sorted(pushed)

    counted = await client.post(f"/queues/jobs/actions?state=failed&errorGroup={push['errorGroup']}",
                                json={"action": "retry", "dryRun": True})
    assert (await counted.json())["matched"] == 30
    r = await client.post(f"/queues/jobs/actions?state=failed&errorGroup={push['errorGroup']}",
                          json={"action": "retry"})
    assert (await r.json())["changed"] == 30
    states = {j: (await (await client.get(f"/queues/jobs/{j}")).json())["state"] for j in pushed + mailed + other}
    assert {states[j] for j in pushed} == {"waiting"} and {states[j] for j in mailed + other} == {"failed"}
    remaining = (await (await client.get("/queues/jobs/failed/groups")).json())["groups"]
    assert [g["count"] for g in remaining] == [2, 1]

    r = await client.get("/queues/jobs?errorGroup=nothex")
    assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "errorGroup"


async def test_counts_that_drift_from_the_failed_jobs_are_reported(make_client, db_path):
    """The failed groups are counted as jobs move (SQLite, migration 0015): a count
    changed behind the appliance's back is named by the self-audit and by `check`."""
    client = await make_client(audit_interval_ms=3_600_000)
    await fail_all(client, "push", ["device token 1f2e3d4c5b6a", "device token 9a8b7c6d5e4f"])
    assert (await (await client.get("/debug/audit")).json())["problems"] == []
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        assert table_problems(conn) == []
        conn.execute("UPDATE failed_group_counts SET n = 5")
        [problem] = (await (await client.get("/debug/audit")).json())["problems"]
        assert problem.startswith("error group ")
        assert problem.endswith("of push in queue default: 2 failed jobs, counted 5")
        assert table_problems(conn) == [problem]
    finally:
        conn.close()
