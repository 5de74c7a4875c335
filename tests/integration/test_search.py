"""Job search (``GET /queues/jobs?q=``) over a real store with many jobs: by id, by
jobId key, by a data field's value and by text within a data field; bad expressions
get a clear 400 and change nothing."""

from __future__ import annotations

import pytest

from queueapp.search import parse


async def _ids(client, q: str, **query) -> list[str]:
    r = await client.get("/queues/jobs", params={"q": q, **query})
    assert r.status == 200, await r.text()
    return [j["id"] for j in (await r.json())["jobs"]]


async def test_search_by_id_key_value_and_text(make_client):
    client = await make_client()
    jobs = [{"name": "mail", "data": {"userId": i, "to": f"user{i}@{'example.com' if i % 2 else 'test.org'}",
                                      "plan": "pro" if i % 3 == 0 else "free", "vip": i == 7, "meta": {"n": i}}}
            for i in range(3000)]
    r = await client.post("/queues/jobs/bulk", json={"jobs": jobs})
    ids = [j["id"] for j in (await r.json())["jobs"]]
    keyed = await (await client.post("/queues/jobs", json={"name": "bill", "options": {"jobId": "invoice-7"}})).json()
    assert await _ids(client, ids[42]) == [ids[42]]
    assert await _ids(client, "invoice-7") == [keyed["id"]]
    assert await _ids(client, 'jobId = "invoice-7"') == [keyed["id"]]
    assert await _ids(client, "data.userId = 42") == [ids[42]]
    assert await _ids(client, "data.meta.n = 5") == [ids[5]]
    assert await _ids(client, "data.vip = true") == [ids[7]]
    assert len(await _ids(client, 'data.plan = "pro"', limit=1000)) == 1000  # a page of the 1,000 matches
    found = await _ids(client, 'data.to contains "example.com"', limit=1000)
    assert found == [ids[i] for i in range(1, 2000, 2)]
    assert await _ids(client, "data.nothing = 1") == []
    # a blank search (spaces, or any white space such as U+001D) is no search: every job
    assert len(await _ids(client, "   ", limit=1000)) == len(await _ids(client, "\x1d", limit=1000)) == 1000


BAD = ["", "data.userId == 5", "data.to contains example", 'data.x = {"a": 1}', "data.", "x" * 501]


@pytest.mark.parametrize("q", BAD)
async def test_bad_searches_are_refused_clearly(make_client, q):
    client = await make_client()
    r = await client.get("/queues/jobs", params={"q": q})
    assert r.status == 400
    body = await r.json()
    assert body["error"]["code"] == "validation_error" and "search" in body["error"]["message"] + str(body)


def test_the_parser_says_what_it_accepts():
    assert parse("17").kind == "id"
    assert parse('data.a.b = "x"').path == "$.a.b"
    with pytest.raises(ValueError, match="data.field = VALUE"):
        parse("data.a >= 3")
