"""What the dashboard asks of the API, over a real store with thousands of jobs:
search by every filter with pages that stay correct while jobs move, actions on
many jobs in one transaction (memory follows: the self-audit agrees), the metrics
history across minutes, hours and a restart, and the guards around all of it."""

from __future__ import annotations

import pytest
from conftest import wait_for

from queueapp.clock import FakeClock
from queueapp.config import Config, ConfigError
from queueapp.history import HOUR_MS, MINUTE_MS
from queueapp.retry import Failure
from queueapp.service_browse import make_search
from queueapp.workers.maintenance import CLEAN_JOB
from queueapp.workers.registry import HandlerRegistry

N = 3000


async def _page_ids(client, **query) -> tuple[list[str], dict]:
    r = await client.get("/queues/jobs", params={k: str(v) for k, v in query.items()})
    assert r.status == 200, await r.text()
    body = await r.json()
    return [j["id"] for j in body["jobs"]], body


async def _fail_some(service, count: int, message: str) -> list[int]:
    leased = await service.workers.lease("default", ["mail"], count, 60_000, 0)
    for job in leased:
        await service.workers.fail(job.id, job.lease_token, Failure(message, retry=False))
    return [job.id for job in leased]


async def test_pages_by_state_name_and_order_visit_each_job_once_while_jobs_move(make_client):
    client = await make_client(audit_interval_ms=60_000)
    jobs = [{"name": "mail" if i % 3 else "sms", "data": {"i": i}} for i in range(N)]
    r = await client.post("/queues/jobs/bulk?return=ids", json={"jobs": jobs})
    ids = (await r.json())["ids"]
    mail = [i for i, job in zip(ids, jobs, strict=True) if job["name"] == "mail"]
    cancelled: set[str] = set()
    # Newest first, 250 a page; between pages the oldest jobs are cancelled (they move
    # to another state), yet no waiting job is seen twice or skipped.
    seen: list[str] = []
    cursor = None
    while True:
        query = {"state": "waiting", "name": "mail", "order": "desc", "limit": 250}
        if cursor:
            query["cursor"] = cursor
        page, body = await _page_ids(client, **query)
        seen += page
        cursor = body["nextCursor"]
        await client.post("/queues/jobs/actions", json={"action": "cancel", "ids": ids[:10]})
        cancelled.update(ids[:10])
        ids = ids[10:]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(seen) <= set(mail)
    assert [int(i) for i in seen] == sorted((int(i) for i in seen), reverse=True)
    assert set(mail) - cancelled <= set(seen)  # every job still waiting was on a page
    assert (await (await client.get("/debug/audit")).json())["ok"]


async def test_time_range_error_and_data_conditions(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    first = [(await service.add_job("mail", {"i": i, "to": f"u{i}@example.com"})).id for i in range(100)]
    clock.advance(60_000)
    later = [(await service.add_job("mail", {"i": i, "to": f"u{i}@test.org"})).id for i in range(100, 200)]
    start = clock.now_ms() - 1
    page = await service.browse.search(make_search("default", created_from=start, limit=1000))
    assert [j.id for j in page.jobs] == later
    page = await service.browse.search(make_search("default", created_to=start, limit=1000, order="desc"))
    assert [j.id for j in page.jobs] == first[::-1]
    failed = await _fail_some(service, 3, "SMTP 550 mailbox unavailable: " + "x" * 1500)
    page = await service.browse.search(make_search("default", error="SMTP 550", state="failed"))
    assert sorted(j.id for j in page.jobs) == failed
    page = await service.browse.search(make_search("default", q='data.to contains "test.org"', limit=10))
    assert [j.id for j in page.jobs] == later[:10] and page.scanned == 110 and page.next_cursor == (later[9],)
    page = await service.browse.search(make_search("default", q="data.i = 150"))
    assert [j.id for j in page.jobs] == [later[50]] and page.scanned == 200 and page.next_cursor is None


async def test_a_data_condition_reads_a_bounded_window_and_goes_on(make_service, monkeypatch):
    from queueapp.store import actions, job_reads
    from queueapp.store.postgres import reads
    from queueapp.store.sqlite import store as sqlite

    for module in (actions, job_reads, sqlite, reads):
        monkeypatch.setattr(module, "MAX_SCAN", 500)
    service = await make_service(background=False)
    ids = [a.id for a in await service.add_jobs(
        service.build_jobs([{"name": "mail", "data": {"hit": i % 400 == 399}} for i in range(1600)]))]
    hits, cursor, reads = [], None, 0
    while True:
        page = await service.browse.search(make_search("default", q="data.hit = true", cursor=cursor))
        hits += [j.id for j in page.jobs]
        reads += 1
        assert page.scanned is not None and page.scanned <= 500
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert hits == [ids[i] for i in range(399, 1600, 400)] and reads == 4
    # An action over a data condition goes on the same way, and counts first.
    search = make_search("default", q="data.hit = true")
    assert (await service.browse.act("cancel", search, dry_run=True)).matched == 4
    changed, after = [], None
    while True:
        outcome = await service.browse.act("cancel", search, after=after)
        changed += outcome.ids
        if outcome.next_cursor is None:
            break
        after = outcome.next_cursor
    assert changed == hits
    assert await service.audit() == []


async def test_actions_change_many_jobs_in_one_transaction_and_memory_follows(make_client):
    client = await make_client(audit_interval_ms=60_000)
    jobs = [{"name": "mail", "data": {"i": i}, "options": {"delay": 3_600_000 if i % 2 else 0}} for i in range(N)]
    await client.post("/queues/jobs/bulk?return=ids", json={"jobs": jobs})
    r = await client.post("/queues/jobs/actions?state=waiting", json={"action": "cancel", "dryRun": True})
    assert (await r.json())["matched"] == N // 2
    # cancel every waiting job: 1,000 a call, nextCursor says where to go on
    calls, changed, cursor = 0, 0, None
    while True:
        body = {"action": "cancel", **({"cursor": cursor} if cursor else {})}
        answer = await (await client.post("/queues/jobs/actions?state=waiting", json=body)).json()
        calls, changed, cursor = calls + 1, changed + answer["changed"], answer["nextCursor"]
        if cursor is None:
            break
    assert (calls, changed) == (2, N // 2)
    metrics = await (await client.get("/queues/metrics")).json()
    assert (metrics["waiting"], metrics["delayed"]) == (0, N // 2)
    # retry the cancelled ones, promote the delayed ones, delete some finished ones
    for action, query in (("retry", "state=cancelled"), ("promote", ""), ("retry", "state=cancelled")):
        while True:
            answer = await (await client.post(f"/queues/jobs/actions?{query}", json={"action": action})).json()
            if answer["nextCursor"] is None:
                break
    metrics = await (await client.get("/queues/metrics")).json()
    assert (metrics["waiting"], metrics["delayed"]) == (N, 0)
    leased = await (await client.post("/queues/jobs/lease", json={"max": 5, "leaseMs": 60_000})).json()
    active = [j["id"] for j in leased["jobs"]]
    some = (await _page_ids(client, state="waiting", limit=20))[0]
    answer = await (await client.post("/queues/jobs/actions", json={"action": "delete", "ids": active + some})).json()
    assert sorted(answer["ids"], key=int) == sorted(some, key=int)  # an active job is never deleted
    assert (await client.get(f"/queues/jobs/{some[0]}")).status == 404
    metrics = await (await client.get("/queues/metrics")).json()
    assert (metrics["waiting"], metrics["active"]) == (N - 25, 5)
    assert (await (await client.get("/debug/audit")).json())["ok"]


@pytest.mark.parametrize("body", [{"action": "explode"}, {"action": "retry", "ids": ["x"]},
                                  {"action": "retry", "ids": ["1"] * 1001}, {"action": "retry", "cursor": "-1"},
                                  {"action": "retry", "extra": 1}])
async def test_bad_actions_are_refused_and_change_nothing(make_client, body):
    client = await make_client()
    await client.post("/queues/jobs", json={"name": "x", "options": {"delay": 60_000}})
    r = await client.post("/queues/jobs/actions", json=body)
    assert r.status == 400 and (await r.json())["error"]["code"] == "validation_error"
    assert (await (await client.get("/queues/metrics")).json())["delayed"] == 1


async def test_history_counts_each_minute_rolls_up_hours_and_survives_a_restart(make_service):
    clock = FakeClock(1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS)
    service = await make_service(clock=clock, background=False)
    for _minute in range(3):
        for _ in range(5):
            await service.add_job("mail", {})
        leased = await service.workers.lease("default", None, 5, 60_000, 0)
        for i, job in enumerate(leased):
            clock.advance(10 * (i + 1))
            if i == 0:
                await service.workers.fail(job.id, job.lease_token, Failure("no", retry=False))
            else:
                await service.workers.complete(job.id, job.lease_token, None)
        clock.advance(MINUTE_MS - 150)
        await service.history.tick()
    points = [p for p in await service.browse.chart("default", "1h") if p["enqueued"]]
    assert [(p["enqueued"], p["completed"], p["failed"]) for p in points] == [(5, 4, 1)] * 3
    # the five took 10, 30, 60, 100 and 150 ms: p95 is the slowest's bucket (10 % wide)
    assert points[0]["p95Ms"] == pytest.approx(150, rel=0.1) and points[0]["meanMs"] == 70
    await service.stop()

    again = await make_service(clock=clock, background=False, registry=HandlerRegistry())
    assert [p["completed"] for p in await again.browse.chart("default", "1h") if p["enqueued"]] == [4, 4, 4]
    clock.advance(26 * HOUR_MS)
    await again.history.tick()  # a new hour: minutes older than a day become hours
    week = [p for p in await again.browse.chart("default", "7d") if p["enqueued"]]
    assert [(p["enqueued"], p["completed"], p["failed"]) for p in week] == [(15, 12, 3)]
    assert [p for p in await again.browse.chart("default", "24h") if p["enqueued"]] == []
    clock.advance(7 * 24 * HOUR_MS)
    with again.dispatcher.events.subscribe() as events:  # the cleanup job prunes what is a week old
        job = await again.add_job(CLEAN_JOB, {})
        await events.until(lambda e: e.type == "completed" and e.job_id == job.id)
    assert (await again.get_job(job.id)).result["historyRowsPruned"] == 1
    # only the cleanup job itself is left, in the current minute (still in memory)
    assert [p["enqueued"] for p in await again.browse.chart("default", "7d") if p["enqueued"]] == [1]


async def test_the_read_only_token_reads_and_cannot_change(make_client):
    client = await make_client(token="admin-t", read_token="read-t")
    read, admin = {"Authorization": "Bearer read-t"}, {"Authorization": "Bearer admin-t"}
    assert (await client.get("/queues", headers=read)).status == 200
    r = await client.post("/queues/jobs", json={"name": "x"}, headers=read)
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    assert (await client.post("/queues/jobs", json={"name": "x"}, headers=admin)).status == 201
    assert (await client.get("/queues")).status == 401
    with pytest.raises(ConfigError, match="read_token"):
        Config(read_token="only").validate()


async def test_a_browser_page_of_another_origin_cannot_change_anything(make_client):
    client = await make_client()
    other = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    r = await client.post("/queues/jobs", data='{"name": "x"}', headers=other)
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    r = await client.post("/queues/pause", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    assert (await (await client.get("/queues/metrics")).json())["waiting"] == 0
    same = {"Origin": f"http://{client.host}:{client.port}"}
    assert (await client.post("/queues/jobs", json={"name": "x"}, headers=same)).status == 201


async def test_the_session_cookie_needs_its_csrf_header_and_pages_carry_a_csp(make_client):
    client = await make_client(token="admin-t")
    r = await client.get("/ui/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/login"
    r = await client.post("/ui/login", data={"token": "nope"}, allow_redirects=False)
    assert r.headers["Location"] == "/ui/login?failed=1" and "queueapp_session" not in r.cookies
    r = await client.post("/ui/login", data={"token": "admin-t"}, allow_redirects=False)
    cookie = r.cookies["queueapp_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and "admin-t" not in cookie.value
    page = await client.get("/ui/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    session = await (await client.get("/ui/session")).json()
    assert session["role"] == "admin" and session["csrf"]
    assert (await client.post("/queues/pause")).status == 403
    assert (await client.post("/queues/pause", headers={"X-CSRF-Token": "0" * 64})).status == 403
    assert (await client.post("/queues/pause", headers={"X-CSRF-Token": session["csrf"]})).status == 200
    client.session.cookie_jar.clear()
    forged = {"Cookie": "queueapp_session=admin.99999999999." + "0" * 64}
    assert (await client.get("/queues", headers=forged)).status == 401


async def test_many_delayed_jobs_due_at_a_start_are_promoted_in_batches(make_service):
    """After a long stop, more delayed jobs are due than one statement moves: all of
    them reach waiting, batch after batch, and memory agrees with the table."""
    from queueapp.dispatch.dispatcher import PROMOTE_BATCH

    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    count = 2 * PROMOTE_BATCH + 500
    await service.add_jobs(service.build_jobs([{"name": "later", "options": {"delay": 60_000}}] * count))
    await service.stop()
    clock.advance(3_600_000)
    again = await make_service(clock=clock, background=False, registry=HandlerRegistry())
    await wait_for(lambda: again.get_queue_metrics()["waiting"] == count, timeout=60)
    assert again.get_queue_metrics()["delayed"] == 0
    assert await again.audit() == []


async def test_a_finished_state_pages_by_finish_time_and_its_range_is_the_finish_time(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    await service.add_jobs(service.build_jobs([{"name": "mail"}] * 30))
    leased = await service.workers.lease("default", None, 30, 60_000, 0)
    order = []
    for job in reversed(leased):  # the newest job fails first
        clock.advance(1000)
        await service.workers.fail(job.id, job.lease_token, Failure("no", retry=False))
        order.append(job.id)
    newest_first, cursor = [], None
    while True:
        page = await service.browse.search(make_search("default", state="failed", order="desc", limit=7,
                                                       cursor=cursor))
        newest_first += [j.id for j in page.jobs]
        if page.next_cursor is None:
            break
        assert len(page.next_cursor) == 2  # (finish time, id)
        cursor = page.next_cursor
    assert newest_first == order[::-1]
    recent = await service.browse.search(make_search("default", state="failed", created_from=clock.now_ms() - 4500))
    assert [j.id for j in recent.jobs] == sorted(order[-5:], key=order.index)
    # a bare id as cursor pages the same state in id order
    by_id = await service.browse.search(make_search("default", state="failed", cursor=(min(order),), limit=100))
    assert [j.id for j in by_id.jobs] == sorted(order)[1:]


async def test_cursors_over_the_api(make_client):
    client = await make_client()
    await client.post("/queues/jobs/bulk", json={"jobs": [{"name": "x"}] * 5})
    leased = await (await client.post("/queues/jobs/lease", json={"max": 5})).json()
    for job in leased["jobs"]:
        await client.post(f"/queues/jobs/{job['id']}/fail", json={"leaseToken": job["leaseToken"], "retry": False,
                                                                  "error": "boom"})
    first, body = await _page_ids(client, state="failed", limit=2)
    assert "." in body["nextCursor"]
    second, _ = await _page_ids(client, state="failed", limit=2, cursor=body["nextCursor"])
    assert not set(first) & set(second)
    for bad in ("x", "1.2.3", "-1", "1" * 16):
        r = await client.get("/queues/jobs", params={"state": "failed", "cursor": bad})
        assert r.status == 400 and (await r.json())["error"]["details"][0]["field"] == "cursor"
