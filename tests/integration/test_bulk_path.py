"""Large enqueues take their own path (one statement over a JSON array, counted and
placed in memory at once, validated by type tests before the full validator): what
they store, answer and refuse must be exactly what the one-job path does."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path

import pytest

from queueapp.store import migrate_database
from queueapp.store.sqlite.adds import ARRAY_MIN
from queueapp.store.sqlite.migrate import available_migrations, migrate

migrate_module = importlib.import_module("queueapp.store.sqlite.migrate")  # the package names a function so

JOB_FIELDS = ("name", "data", "state", "priority", "attempts", "options", "jobId", "queue", "progress",
              "errors", "attemptsMade")


def stored_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select id, queue, name, state, priority, data, options, attempts, job_key,"
                            " created_at, run_at from jobs order by id").fetchall()


async def audit_ok(client) -> bool:
    return (await (await client.get("/debug/audit")).json())["ok"]


async def test_a_large_bulk_of_alike_jobs_stores_what_single_adds_store(make_client, db_path):
    client = await make_client(audit_interval_ms=60_000)
    data = [{"i": i, "text": "é 日本 \u2028 \"q\" \\", "big": 2**70, "f": 1.5e10, "list": [1, {"x": None}]}
            for i in range(ARRAY_MIN * 3)]
    options = {"attempts": 7, "backoff": {"type": "fixed", "delay": 10}, "removeOnComplete": 5}
    r = await client.post("/queues/jobs/bulk?queue=bulkq",
                          json={"jobs": [{"name": "resize", "data": d, "options": options} for d in data]})
    assert r.status == 201
    jobs = (await r.json())["jobs"]
    assert [j["data"] for j in jobs] == data
    ids = [int(j["id"]) for j in jobs]
    assert ids == list(range(ids[0], ids[0] + len(data)))  # consecutive, in request order
    single = await (await client.post("/queues/jobs?queue=bulkq",
                                      json={"name": "resize", "data": data[0], "options": options})).json()
    for j in (jobs[0], jobs[-1]):
        stored = await (await client.get(f"/queues/jobs/{j['id']}")).json()
        assert {k: stored[k] for k in JOB_FIELDS} == {k: j[k] for k in JOB_FIELDS}
        assert {k: stored[k] for k in JOB_FIELDS if k != "data"} == {
            k: single[k] for k in JOB_FIELDS if k != "data"}
    rows = stored_rows(db_path)
    bulk_row, single_row = rows[0], rows[-1]
    assert bulk_row[1:9] == single_row[1:9]  # the same text in every column but the times
    metrics = await (await client.get("/queues/metrics?queue=bulkq")).json()
    assert metrics["waiting"] == len(data) + 1
    # FIFO within a priority: a worker leases them in id order
    leased = await (await client.post("/queues/jobs/lease?queue=bulkq", json={"max": 1000})).json()
    assert [int(j["id"]) for j in leased["jobs"]] == ids + [int(single["id"])]
    assert await audit_ok(client)


async def test_a_large_bulk_of_mixed_jobs_stores_each_as_given(make_client, db_path):
    client = await make_client(audit_interval_ms=60_000)
    body = [{"name": f"n{i % 3}", "data": {"i": i},
             "options": {"priority": 1 + i % 5, **({"delay": 60_000} if i % 4 == 0 else {})}}
            for i in range(ARRAY_MIN * 2)]
    body[5]["priorityFactors"] = {"urgency": "critical"}
    body[5]["options"] = {}
    r = await client.post("/queues/jobs/bulk?return=ids", json={"jobs": body})
    assert r.status == 201
    ids = (await r.json())["ids"]
    assert len(ids) == len(body) and all(isinstance(i, str) for i in ids)
    for index in (0, 1, 5, 7, len(body) - 1):
        job = await (await client.get(f"/queues/jobs/{ids[index]}")).json()
        one = await (await client.post("/queues/jobs", json=body[index])).json()
        assert (job["name"], job["data"], job["priority"], job["state"], job["attempts"]) == (
            one["name"], one["data"], one["priority"], one["state"], one["attempts"])
    metrics = await (await client.get("/queues/metrics")).json()
    delayed = sum(1 for i in range(len(body)) if i % 4 == 0)
    assert metrics["delayed"] == delayed + 1 and metrics["waiting"] == len(body) - delayed + 4
    assert await audit_ok(client)


async def test_a_large_bulk_with_a_job_id_still_deduplicates(make_client, db_path):
    client = await make_client()
    first = await (await client.post("/queues/jobs", json={"name": "n", "options": {"jobId": "k1"}})).json()
    body = [{"name": "n", "data": {"i": i}} for i in range(ARRAY_MIN * 2)]
    body[10]["options"] = {"jobId": "k1"}
    body[11]["options"] = {"jobId": "k2"}
    body[12]["options"] = {"jobId": "k2"}
    jobs = (await (await client.post("/queues/jobs/bulk", json={"jobs": body})).json())["jobs"]
    assert jobs[10]["id"] == first["id"] and jobs[11]["id"] == jobs[12]["id"]
    assert len(stored_rows(db_path)) == 1 + len(body) - 2


@pytest.mark.parametrize(("job", "field"), [
    ({"name": ""}, "jobs.3.name"),
    ({"name": "x" * 129}, "jobs.3.name"),
    ({"name": 5}, "jobs.3.name"),
    ({"name": "n", "data": [1]}, "jobs.3.data"),
    ({"name": "n", "options": {"priority": 9}}, "jobs.3.options.priority"),
    ({"name": "n", "options": {"attempts": "3"}}, "jobs.3.options.attempts"),
    ({"name": "n", "options": {"colour": "red"}}, "jobs.3.options.colour"),
    ({"name": "n", "priorityFactors": {"urgency": "meh"}}, "jobs.3.priorityFactors.urgency"),
    ({"name": "n", "extra": 1}, "jobs.3.extra"),
    ({"name": "checked", "data": {"to": "not an address"}}, "jobs.3.data"),
])
async def test_a_bad_job_anywhere_in_a_large_bulk_is_named_and_nothing_is_stored(
    make_client, db_path, registry, job, field
):
    def needs_address(data: dict) -> None:
        if "@" not in data.get("to", ""):
            raise ValueError("to must be an email address")

    registry.validator("checked", needs_address)
    client = await make_client()
    body = [{"name": "n", "data": {"i": i}} for i in range(ARRAY_MIN * 2)]
    body[3] = job
    r = await client.post("/queues/jobs/bulk", json={"jobs": body})
    assert r.status == 400
    error = (await r.json())["error"]
    assert error["details"][0]["field"] == field and field in error["message"], error
    assert stored_rows(db_path) == []


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400 + ".0"])
async def test_a_number_json_cannot_carry_in_a_large_bulk_is_refused(make_client, db_path, text):
    client = await make_client()
    jobs = [f'{{"name":"n","data":{{"i":{i}}}}}' for i in range(ARRAY_MIN * 2)]
    jobs.append('{"name":"n","data":{"x":' + text + "}}")
    raw = '{"jobs":[' + ",".join(jobs) + "]}"
    r = await client.post("/queues/jobs/bulk", data=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400 and "finite" in (await r.json())["error"]["message"]
    assert stored_rows(db_path) == []


async def test_return_must_be_jobs_or_ids(make_client, db_path):
    client = await make_client()
    r = await client.post("/queues/jobs/bulk?return=all", json={"jobs": [{"name": "n"}]})
    assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "return"
    assert stored_rows(db_path) == []
    r = await client.post("/queues/jobs/bulk?return=ids", json={"jobs": [{"name": "n"}, {"name": "m"}]})
    assert r.status == 201 and list(await r.json()) == ["ids"] and len((await r.json())["ids"]) == 2


def test_the_state_check_rewrite_keeps_rows_ids_and_the_rule(tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    every = available_migrations()
    with monkeypatch.context() as patch:  # the database as the previous release left it
        patch.setattr(migrate_module, "available_migrations", lambda: [m for m in every if m.version < 4])
        migrate(conn)
    for i in range(3):
        conn.execute("insert into jobs (queue, name, state, priority, attempts, created_at, run_at, data)"
                     " values ('q', 'n', 'waiting', 3, 3, 1, 1, ?)", (f'{{"i":{i}}}',))
    conn.execute("delete from jobs where id = 3")  # the newest id must still never come back
    conn.close()
    assert migrate_database(str(db)) == [f"{m.version:04d}_{m.name}" for m in every if m.version >= 4]
    conn = sqlite3.connect(db, isolation_level=None)
    assert conn.execute("select id, data from jobs").fetchall() == [(1, '{"i":0}'), (2, '{"i":1}')]
    conn.execute("insert into jobs (queue, name, state, priority, attempts, created_at, run_at)"
                 " values ('q', 'n', 'waiting', 3, 3, 1, 1)")
    assert conn.execute("select max(id) from jobs").fetchone() == (4,)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("insert into jobs (queue, name, state, priority, attempts, created_at, run_at)"
                     " values ('q', 'n', 'bogus', 3, 3, 1, 1)")
    assert conn.execute("select count(*) from jobs_readable").fetchone() == (3,)
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}
    assert {"jobs_queue_job_key", "jobs_queue_state_finished"} <= names
    assert migrate(conn) == []


async def test_completions_merged_into_one_statement_answer_each_caller_alone(make_client, db_path):
    """Many completions arriving together are stored by one statement; a stale token,
    a job completed twice and a keep-newest-N policy still answer each on its own."""
    client = await make_client(audit_interval_ms=60_000)
    body = [{"name": "w", "data": {"i": i}, "options": {"removeOnComplete": 3}} for i in range(40)]
    await client.post("/queues/jobs/bulk", json={"jobs": body})
    leased = (await (await client.post("/queues/jobs/lease", json={"max": 40})).json())["jobs"]
    items = [{"id": j["id"], "leaseToken": j["leaseToken"], "result": {"n": k}} for k, j in enumerate(leased)]
    items[5]["leaseToken"] = "stale"
    items.append(dict(items[7]))  # the same job twice in one request
    answer = (await (await client.post("/queues/jobs/complete", json={"jobs": items})).json())["results"]
    oks = [r["ok"] for r in answer]
    assert oks.count(True) == 39 and not oks[5] and oks[7] != oks[-1]
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["completed"] == 3 and metrics["active"] == 1
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("select count(*) from jobs where state = 'completed'").fetchone() == (3,)
    assert await audit_ok(client)
