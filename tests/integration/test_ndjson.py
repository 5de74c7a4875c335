"""Streaming enqueue (POST /queues/jobs/stream): lines of JSON in, one answer line
per job out, in order, each after its commit; a bad line fails only itself."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from queueapp.api.keys import SERVICE


async def test_lines_are_answered_in_order_after_their_commit(make_client, db_path):
    client = await make_client(audit_interval_ms=60_000)
    lines = [json.dumps({"name": "n", "data": {"i": i}}) for i in range(300)]
    lines[7] = json.dumps({"name": "n", "options": {"priority": 9}})
    lines[150] = "not json"
    body = ("\n".join(lines) + "\n\n").encode()
    r = await client.post("/queues/jobs/stream", data=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 200 and r.content_type == "application/x-ndjson"
    answers = [json.loads(line) for line in (await r.read()).splitlines()]
    assert len(answers) == 300
    assert answers[7]["error"]["details"][0]["field"] == "options.priority"
    assert answers[150]["error"]["code"] == "validation_error"
    ids = [int(a["id"]) for k, a in enumerate(answers) if k not in (7, 150)]
    assert ids == sorted(ids) and len(set(ids)) == 298
    with sqlite3.connect(db_path) as conn:
        stored = dict(conn.execute("select id, data from jobs").fetchall())
    assert [json.loads(stored[i])["i"] for i in ids] == [k for k in range(300) if k not in (7, 150)]
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_a_producer_gets_each_answer_while_the_request_stays_open(make_client, db_path):
    """A line written on its own is stored and answered before the next is sent."""
    client = await make_client()
    service = client.server.app[SERVICE]
    sent: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def body():
        while (line := await sent.get()) is not None:
            yield line

    with service.dispatcher.events.subscribe() as events:
        request = asyncio.ensure_future(client.post(
            "/queues/jobs/stream", data=body(), headers={"Content-Type": "application/x-ndjson"}))
        await sent.put(b'{"name": "first"}\n')
        added = await events.until(lambda e: e.type == "added")
    assert added.name == "first"  # committed while the request is still open
    await sent.put(b'{"name": "second"}\n')
    await sent.put(None)
    r = await request
    answers = [json.loads(line) for line in (await r.read()).splitlines()]
    assert [a["id"] for a in answers] == ["1", "2"]


async def test_a_line_longer_than_the_body_limit_is_refused_alone(make_client, db_path):
    client = await make_client(max_body_bytes=2048)
    long_line = json.dumps({"name": "n", "data": {"x": "y" * 300_000}})
    body = "\n".join([json.dumps({"name": "a"}), long_line, json.dumps({"name": "b"})]) + "\n"
    r = await client.post("/queues/jobs/stream", data=body.encode(), headers={"Content-Type": "application/x-ndjson"})
    answers = [json.loads(line) for line in (await r.read()).splitlines()]
    assert len(answers) == 3
    assert "id" in answers[0] and "max_body_bytes" in answers[1]["error"]["message"] and "id" in answers[2]
