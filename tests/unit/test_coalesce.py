"""The client's coalesced adds against a real appliance: concurrent single adds go
as bulk requests, and each caller gets its own job, or its own error."""

from __future__ import annotations

import asyncio

import pytest

from queueapp.client import QueueApiError, QueueClient, _refused_job
from queueapp.coalesce import AddCoalescer, job_index


def test_job_index_reads_the_field_of_a_bulk_error():
    assert job_index("jobs.3.options.priority") == 3
    assert job_index("jobs.12") == 12
    assert job_index("jobs") is None and job_index(None) is None and job_index("queue") is None


async def test_concurrent_adds_share_requests_and_each_gets_its_own_job(make_client):
    server = await make_client()
    async with QueueClient(str(server.make_url("")).rstrip("/")) as client:
        sent: list[int] = []

        async def counting(jobs):
            sent.append(len(jobs))
            return await client.add_bulk(jobs)

        adds = AddCoalescer(counting, _refused_job)
        jobs = await asyncio.gather(*(adds.add({"name": "n", "data": {"i": i}}) for i in range(500)))
        assert [j["data"]["i"] for j in jobs] == list(range(500))
        assert len({j["id"] for j in jobs}) == 500 and all(j["state"] == "waiting" for j in jobs)
        assert sum(sent) == 500 and len(sent) < 10
        await adds.close()
    metrics = await (await server.get("/queues/metrics")).json()
    assert metrics["waiting"] == 500


async def test_a_refused_job_fails_only_its_caller(make_client):
    server = await make_client()
    async with QueueClient(str(server.make_url("")).rstrip("/")) as client:
        calls = [client.add_job("n", {"i": i}, {"priority": 9} if i in (3, 77) else {}) for i in range(100)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    refused = [i for i, o in enumerate(outcomes) if isinstance(o, QueueApiError)]
    assert refused == [3, 77]
    assert all(o.status == 400 and "priority" in o.message for o in outcomes if isinstance(o, QueueApiError))
    assert [o["data"]["i"] for o in outcomes if isinstance(o, dict)] == [i for i in range(100) if i not in (3, 77)]
    metrics = await (await server.get("/queues/metrics")).json()
    assert metrics["waiting"] == 98


async def test_an_unreachable_appliance_fails_every_caller_of_the_bulk(unused_tcp_port):
    async with QueueClient(f"http://127.0.0.1:{unused_tcp_port}", timeout_s=5) as client:
        outcomes = await asyncio.gather(*(client.add_job("n") for _ in range(20)), return_exceptions=True)
    assert len(outcomes) == 20 and all(isinstance(o, OSError) for o in outcomes)


async def test_a_caller_that_gives_up_before_sending_withdraws_its_job(make_client):
    server = await make_client()
    async with QueueClient(str(server.make_url("")).rstrip("/")) as client:
        adds = AddCoalescer(client.add_bulk, _refused_job, window_s=0.2)
        gone = asyncio.ensure_future(adds.add({"name": "gone"}))
        kept = asyncio.ensure_future(adds.add({"name": "kept"}))
        await asyncio.sleep(0)
        gone.cancel()
        assert (await kept)["name"] == "kept"
        with pytest.raises(asyncio.CancelledError):
            await gone
        await adds.close()
    listing = await (await server.get("/queues/jobs")).json()
    assert [j["name"] for j in listing["jobs"]] == ["kept"]


async def test_flow_options_go_through_the_client(aiohttp_server, db_path, registry):
    """Unique keys and dependencies from the client: coalesced adds of one key make one
    job, and a bulk's "#n" names its own jobs (a lone add cannot say "#n")."""
    from queueapp.app import make_app
    from queueapp.config import Config

    server = await aiohttp_server(make_app(Config(db=str(db_path), durability="normal"), registry=registry))
    async with QueueClient(str(server.make_url("")).rstrip("/")) as client:
        same = await asyncio.gather(*[client.add_job("sync", {"n": i}, {"unique": {"key": "k"}}) for i in range(10)])
        assert len({job["id"] for job in same}) == 1
        parts = await client.add_bulk([{"name": "part"}, {"name": "part"},
                                       {"name": "sum", "options": {"dependsOn": ["#0", "#1"]}}])
        assert parts[2]["state"] == "blocked" and parts[2]["options"]["dependsOn"] == [parts[0]["id"], parts[1]["id"]]
        with pytest.raises(ValueError, match="add_bulk"):
            await client.add_job("x", {}, {"dependsOn": ["#0"]})
