"""options.callbackUrl with a real HTTP receiver on loopback: the outcome is POSTed
once the job completes or fails for good, signed (HMAC-SHA256 over timestamp and
body), retried after a 500; the callback job is in the table in the same
transaction as the outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

from aiohttp import web

from queueapp.retry import Failure
from queueapp.store.transitions import CALLBACK_QUEUE

SECRET = "whsec-test-1"


class Receiver:
    """A callback receiver that verifies as the docs tell: the signature over
    "<timestamp>.<body>", and a timestamp no older than five minutes."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls: list[dict] = []
        self.verified: list[dict] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        stamp = request.headers.get("X-Queueapp-Timestamp", "")
        given = request.headers.get("X-Queueapp-Signature", "")
        expected = "v1=" + hmac.new(SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        self.calls.append({"body": json.loads(body), "ok": hmac.compare_digest(given, expected) and fresh,
                           "key": request.headers.get("Idempotency-Key")})
        if len(self.calls) <= self.fail_first:
            return web.Response(status=500, text="try later")
        self.verified.append(self.calls[-1])
        self.arrived.set()
        return web.json_response({"received": True})


async def _receiver(aiohttp_server, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}/hook"


async def test_a_completed_job_is_told_signed_and_retried_after_a_500(aiohttp_server, make_client):
    receiver = Receiver(fail_first=1)
    url = await _receiver(aiohttp_server, receiver)
    client = await make_client(callback_secret=SECRET, http_allowed_hosts="127.0.0.1", audit_interval_ms=60_000)
    r = await client.post("/queues/jobs?queue=work", json={"name": "resize", "data": {"w": 640},
                                                           "options": {"callbackUrl": url}})
    job = await r.json()
    leased = (await (await client.post("/queues/jobs/lease?queue=work", json={"max": 1})).json())["jobs"][0]
    r = await client.post(f"/queues/jobs/{job['id']}/complete", json={"leaseToken": leased["leaseToken"],
                                                                      "result": {"url": "s3://x"}})
    assert r.status == 200
    # in the table at once, beside the completion
    callbacks = (await (await client.get(f"/queues/jobs?queue={CALLBACK_QUEUE}")).json())["jobs"]
    assert [c["name"] for c in callbacks] == ["http"] and callbacks[0]["data"]["url"] == url
    await asyncio.wait_for(receiver.arrived.wait(), 30)
    assert len(receiver.calls) == 2 and all(c["ok"] for c in receiver.calls)  # the 500, then the retry
    told = receiver.verified[0]["body"]
    assert told == {"id": job["id"], "queue": "work", "name": "resize", "state": "completed", "attempts": 3,
                    "attemptsMade": 1, "finishedAt": told["finishedAt"], "result": {"url": "s3://x"}}
    assert receiver.calls[0]["key"] == receiver.calls[1]["key"] == callbacks[0]["id"]
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_a_job_failed_for_good_is_told_its_error_and_a_retry_is_not(aiohttp_server, make_service, registry):
    from queueapp.workers.builtin import BuiltinJobs, BuiltinSettings

    receiver = Receiver()
    url = await _receiver(aiohttp_server, receiver)
    service = await make_service()
    builtins = BuiltinJobs(service.store, service.clock,
                           BuiltinSettings(None, "", "", "", 1, "", "127.0.0.1", SECRET))
    builtins.register(service.registry, ("http",))
    try:
        job = await service.add_job("charge", {}, {"attempts": 2, "callbackUrl": url,
                                                   "backoff": {"type": "fixed", "delay": 1}})
        for _ in range(2):
            [leased] = await service.workers.lease("default", ["charge"], 1, 60_000, 5_000)
            await service.workers.fail(leased.id, leased.lease_token, Failure("card declined"))
        await asyncio.wait_for(receiver.arrived.wait(), 30)
        assert len(receiver.calls) == 1  # the first failure was retried: no callback for it
        told = receiver.verified[0]["body"]
        assert (told["id"], told["state"], told["error"], told["attemptsMade"]) == (str(job.id), "failed",
                                                                                    "card declined", 2)
    finally:
        await builtins.close()


async def test_without_a_secret_the_callback_fails_saying_why(make_service, registry):
    from queueapp.workers.builtin import BuiltinJobs, BuiltinSettings

    service = await make_service()
    builtins = BuiltinJobs(service.store, service.clock, BuiltinSettings(None, "", "", "", 1, "", "127.0.0.1"))
    builtins.register(service.registry, ("http",))
    try:
        with service.dispatcher.events.subscribe() as events:
            job = await service.add_job("x", {}, {"callbackUrl": "http://127.0.0.1:9/hook"})
            [leased] = await service.workers.lease("default", ["x"], 1, 60_000, 0)
            await service.workers.complete(leased.id, leased.lease_token, None)
            failed = await events.until(lambda e: e.type == "failed" and e.queue == CALLBACK_QUEUE)
        assert "callback_secret" in failed.detail["error"] and job.id != failed.job_id
    finally:
        await builtins.close()


async def test_a_bad_callback_url_is_refused(make_client):
    client = await make_client()
    for bad in ("ftp://x/y", "not a url", "http://", "x" * 2049):
        r = await client.post("/queues/jobs", json={"name": "x", "options": {"callbackUrl": bad}})
        assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "options.callbackUrl"


async def test_a_dependent_failed_with_its_dependency_is_told_too(make_service):
    service = await make_service(background=False)
    first = await service.add_job("a", {})
    waits = await service.add_job("b", {}, {"dependsOn": [str(first.id)], "callbackUrl": "http://127.0.0.1:9/hook"})
    [leased] = await service.workers.lease("default", ["a"], 1, 60_000, 0)
    await service.workers.fail(leased.id, leased.lease_token, Failure("broken", retry=False))
    [told] = await service.list_jobs(CALLBACK_QUEUE)
    assert told.data["body"]["id"] == str(waits.id) and told.data["body"]["error"] == f"dependency {first.id} failed"
    assert await service.audit() == []


async def test_a_dependent_failed_by_a_cancel_is_told_too(make_service):
    service = await make_service(background=False)
    first = await service.add_job("a", {}, {"delay": 60_000})
    waits = await service.add_job("b", {}, {"dependsOn": [str(first.id)], "callbackUrl": "http://127.0.0.1:9/hook"})
    await service.cancel_job(first.id)
    [told] = await service.list_jobs(CALLBACK_QUEUE)
    assert told.data["body"]["id"] == str(waits.id) and "cancelled" in told.data["body"]["error"]
    assert await service.audit() == []
