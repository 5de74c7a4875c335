"""The store's contract, run on both stores (SQLite, and PostgreSQL on a real server
started by the tests): each scenario drives a QueueService over the store, as the
appliance does, and ends with the self-audit finding memory and table in agreement.
One suite, parametrised, so the two stores cannot drift apart."""

from __future__ import annotations

import asyncio

import pytest
from conftest import database_name

from queueapp import QueueService
from queueapp.clock import FakeClock
from queueapp.flow import GroupLimits
from queueapp.history import Tally
from queueapp.model import JobState
from queueapp.options import JobOptions, ScheduleSpec
from queueapp.retry import Failure
from queueapp.service_browse import make_search
from queueapp.store import AuditEntry, SqliteStore
from queueapp.store.postgres.store import PostgresStore
from queueapp.workers.registry import HandlerRegistry


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request, tmp_path):
    """``make_store()``: a fresh store of the kind, the same one on every call of
    one test (a restart opens it again)."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "contract.db", "normal")
    url = request.getfixturevalue("postgres").create_database(database_name(request, "k_"))
    return lambda: PostgresStore(url, node="node-1")


@pytest.fixture
async def open_service(make_store):
    started: list[QueueService] = []

    async def start(**kwargs) -> QueueService:
        kwargs.setdefault("background", False)
        service = QueueService(make_store(), **kwargs)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        if not service.dispatcher._stopping:
            await service.stop(grace_s=1)


async def clean_audit(service: QueueService) -> None:
    assert await service.dispatcher.audit() == []


async def test_a_job_leased_failed_retried_after_its_backoff_and_completed(open_service):
    clock = FakeClock()
    service = await open_service(clock=clock)
    job = await service.add_job("send", {"to": "a"}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 1000}})
    [leased] = await service.workers.lease("default", None, 5, 30_000, 0, worker="billing-3:77")
    assert leased.worker == "billing-3:77"
    failed = await service.workers.fail(leased.id, leased.lease_token, Failure("smtp 451"))
    assert failed.state is JobState.DELAYED and failed.run_at == clock.ms + 1000
    assert failed.errors[0]["worker"] == "billing-3:77" and failed.worker == "billing-3:77"
    clock.advance(1000)
    service.dispatcher.wakeup.wake()
    [again] = await service.workers.lease("default", None, 5, 30_000, 2000, worker="billing-4:12")
    assert again.id == job.id and again.attempts_made == 2
    done = await service.workers.complete(again.id, again.lease_token, {"id": "m-1"})
    assert done.state is JobState.COMPLETED and done.result == {"id": "m-1"}
    assert done.worker == "billing-4:12"  # the attempt that finished it
    assert [e["message"] for e in done.errors] == ["smtp 451"]
    metrics = service.get_queue_metrics()
    assert (metrics["completed"], metrics["delayed"], metrics["waiting"]) == (1, 0, 0)
    await clean_audit(service)


async def test_in_process_handlers_run_every_job_and_a_restart_keeps_the_rest(open_service):
    registry = HandlerRegistry()
    ran: list[int] = []
    done = asyncio.Event()

    @registry.handler("work")
    async def work(job):
        ran.append(int(job.id))
        if len(ran) == 30:
            done.set()
        return {"ok": True}

    service = await open_service(registry=registry, concurrency=4)
    await service.add_jobs([service.build_job("work", {"i": i}, service_options()) for i in range(30)])
    await asyncio.wait_for(done.wait(), 20)
    await service.add_jobs([service.build_job("later", {}, service_options(delay=60_000))])
    await service.add_jobs([service.build_job("waits", {}, service_options())])
    await asyncio.sleep(0.05)
    await clean_audit(service)
    await service.stop(grace_s=1)
    again = await open_service()
    counts = again.get_queue_metrics()
    assert (counts["completed"], counts["delayed"], counts["waiting"]) == (30, 1, 1)
    assert (await again.get_job(ran[0])).worker.startswith("appliance")  # "appliance on <node>" in a cluster
    [waiting] = await again.workers.lease("default", None, 5, 30_000, 0)
    assert waiting.name == "waits"
    await clean_audit(again)


def service_options(**options) -> JobOptions:
    return JobOptions(**options)


async def test_keys_unique_jobs_and_dependencies(open_service):
    service = await open_service()
    first = await service.add_job("sync", {"v": 1}, {"jobId": "k-1"})
    assert (await service.add_job("sync", {"v": 2}, {"jobId": "k-1"})).id == first.id
    kept = await service.add_job("sync", {"v": 1}, {"unique": {"key": "u", "mode": "replace"}})
    replaced = await service.add_job("sync", {"v": 9}, {"unique": {"key": "u", "mode": "replace"}})
    assert replaced.id == kept.id and replaced.data == {"v": 9}
    added = await service.add_jobs(service.build_jobs([
        {"name": "child"}, {"name": "child"}, {"name": "parent", "options": {"dependsOn": ["#0", "#1"]}}]))
    parent = added[2].job
    assert parent.state is JobState.BLOCKED
    leased = await service.workers.lease("default", ["child"], 5, 30_000, 0)
    for job in leased:
        await service.workers.complete(job.id, job.lease_token, None)
    assert (await service.get_job(parent.id)).state is JobState.WAITING
    await clean_audit(service)


async def test_cancel_retry_promote_and_actions_on_many(open_service):
    service = await open_service()
    delayed = await service.add_job("later", {}, {"delay": 60_000})
    promoted = await service.promote_job(delayed.id)
    assert promoted.state is JobState.WAITING
    cancelled = await service.cancel_job(promoted.id)
    assert cancelled.state is JobState.CANCELLED
    assert (await service.retry_job(cancelled.id)).state is JobState.WAITING
    await service.add_jobs([service.build_job("bulk", {"user": i % 3}, service_options()) for i in range(40)])
    search = make_search("default", state="waiting", q="data.user = 1")
    page = await service.browse.search(search)
    assert len(page.jobs) == 13 and all(j.data == {"user": 1} for j in page.jobs)
    dry = await service.browse.act("cancel", search, dry_run=True)
    assert dry.matched == 13
    acted = await service.browse.act("cancel", search)
    assert acted.changed == 13
    counts = dict((name, c) for name, _, c in service.queue_counts())["default"]
    assert (counts[JobState.WAITING], counts[JobState.CANCELLED]) == (28, 13)
    paged, cursor = [], None
    while True:
        one = await service.browse.search(make_search("default", state="waiting", limit=10, cursor=cursor))
        paged += [j.id for j in one.jobs]
        if (cursor := one.next_cursor) is None:
            break
    assert len(paged) == len(set(paged)) == 28
    await clean_audit(service)


async def test_schedules_groups_history_and_failures_survive_a_restart(open_service):
    clock = FakeClock()
    service = await open_service(clock=clock)
    await service.schedules.save(ScheduleSpec(name="tick", everyMs=1000))
    clock.advance(1000)
    assert await service.scheduler.tick() >= 1
    await service.groups.set_policy("default", GroupLimits(concurrency=3))
    await service.groups.pause("default", "acct", None)
    an_hour_ago = clock.ms - clock.ms % 60_000 - 3_600_000
    await service.store.record_history(an_hour_ago, [("default", Tally(3, 2, 1))])
    job = await service.add_job("x", {}, {"attempts": 1})
    [leased] = await service.workers.lease("default", ["x"], 1, 30_000, 0)
    await service.workers.fail(leased.id, leased.lease_token, Failure("boom"))
    await service.stop(grace_s=1)

    again = await open_service(clock=clock)
    assert [s.name for s in await again.schedules.list("default")] == ["cleanup", "tick"]
    ticks = await again.store.search_jobs(make_search("default", name="tick"))
    assert len(ticks.jobs) == 1 and ticks.jobs[0].job_key.startswith("tick@")
    view = await again.groups.view("default")
    assert view.limits.concurrency == 3 and [k.key for k in view.keys if k.paused] == ["acct"]
    history = await again.store.read_history("default", 0)
    assert [(t.enqueued, t.completed, t.failed) for at, t in history if at == an_hour_ago] == [(3, 2, 1)]
    [group] = await again.browse.failure_groups("default")
    assert (group["error"], group["count"]) == ("boom", 1)
    assert (await again.get_job(job.id)).state is JobState.FAILED
    await clean_audit(again)


async def test_logs_dependents_failure_groups_schedule_runs_and_the_audit_trail_on_both_stores(open_service):
    clock = FakeClock()
    service = await open_service(clock=clock)
    parent = await service.add_job("fetch", {}, {"attempts": 1})
    child = await service.add_job("ship", {}, {"dependsOn": [str(parent.id)]})
    assert await service.job_dependents(parent.id) == [(child.id, "ship", "blocked")]
    [leased] = await service.workers.lease("default", ["fetch"], 1, 30_000, 0)
    assert await service.workers.log(leased.id, leased.lease_token, ["one", "two"]) == 2
    assert await service.store.append_log(leased.id, leased.lease_token, ["three"], clock.ms, 2) == 3
    assert [(line.seq, line.line) for line in await service.job_log(leased.id)] == [(2, "two"), (3, "three")]
    assert await service.store.append_log(leased.id, "stale", ["x"], clock.ms, 10) is None
    await service.workers.fail(leased.id, leased.lease_token, Failure("device token 8f3a9c0d2b1e4f5a6b7c"))
    late = await service.add_job("ship", {}, {"dependsOn": [str(parent.id)]})  # added failed: its group too
    assert late.state is JobState.FAILED
    groups = {g["fingerprint"]: g for g in await service.browse.failure_groups("default")}
    assert {f: g["count"] for f, g in groups.items()} == {"device token <id>": 1, "dependency <n> failed": 2}
    assert all(g["errorGroup"] for g in groups.values())

    schedule = await service.schedules.recurring("nightly", "0 3 * * *")
    job = await service.scheduler.run_now("default", schedule.name)
    stored = await service.store.get_schedule("default", "nightly")
    assert stored is not None and stored.last_job_id == job.id and stored.last_run_at == clock.ms

    entry = AuditEntry(at=clock.ms, actor="admin", via="api", address="127.0.0.1", queue="default",
                       action="retry", target=str(parent.id), changed=1, detail={"why": "test"})
    await service.record_audit(entry)
    await service.record_audit(AuditEntry(at=clock.ms + 5, actor="read", via="cli", address=None, queue="other",
                                          action="pause queue"))
    found = await service.audit_trail(None, None, 10)
    assert [(e.action, e.queue, e.detail) for e in found] == [("pause queue", "other", {}),
                                                           ("retry", "default", {"why": "test"})]
    assert [e.action for e in await service.audit_trail("default", None, 10)] == ["retry"]
    assert [e.action for e in await service.audit_trail(None, found[0].id, 10)] == ["retry"]
    assert await service.store.prune_audit(clock.ms + 1) == 1
    await clean_audit(service)


async def test_failed_groups_follow_every_move_into_and_out_of_failed(open_service):
    """The groups' counts (kept by triggers on SQLite, counted on PostgreSQL) after
    failures, a dependent failed with its dependency, removeOnFail, a single retry, a
    retry and a delete of many, and a clean; the self-audit compares them each time."""
    service = await open_service()

    async def fail(name: str, message: str, **options) -> int:
        job = await service.add_job(name, {}, {"attempts": 1, **options})
        [leased] = await service.workers.lease("default", [name], 1, 30_000, 0)
        assert leased.id == job.id
        await service.workers.fail(leased.id, leased.lease_token, Failure(message))
        return job.id

    async def groups() -> dict[str, tuple[int, list[str]]]:
        found = await service.browse.failure_groups("default")
        await clean_audit(service)
        return {g["fingerprint"]: (g["count"], g["names"]) for g in found}

    kept = [await fail("disk", "disk full", removeOnFail=1) for _ in range(3)]  # the queue's newest failed job
    await fail("disk", "disk full", removeOnFail=True)
    timeouts = [await fail("a" if i < 3 else "b", f"timeout after {1000 + i} ms") for i in range(5)]
    parent = await service.add_job("fetch", {}, {"attempts": 1})
    await service.add_job("ship", {}, {"dependsOn": [str(parent.id)]})
    [leased] = await service.workers.lease("default", ["fetch"], 1, 30_000, 0)
    await service.workers.fail(leased.id, leased.lease_token, Failure("HTTP 502 from upstream"))
    assert await groups() == {"timeout after <n> ms": (5, ["a", "b"]), "HTTP <n> from upstream": (1, ["fetch"]),
                              "dependency <n> failed": (1, ["ship"]), "disk full": (1, ["disk"])}
    assert (await service.get_job(kept[-1])).state is JobState.FAILED

    await service.retry_job(timeouts[0])
    assert (await groups())["timeout after <n> ms"] == (4, ["a", "b"])
    retried = await service.browse.act("retry", make_search("default", state="failed", name="b"))
    assert retried.changed == 2
    assert (await groups())["timeout after <n> ms"] == (2, ["a"])
    deleted = await service.browse.act("delete", make_search("default", state="failed", name="a"))
    assert deleted.changed == 2
    assert "timeout after <n> ms" not in await groups()
    assert await service.clean(0, "failed") == 3
    assert await groups() == {}


async def test_api_keys_are_made_rotated_revoked_and_known_after_a_restart(open_service):
    from queueapp.errors import Conflict, NotFound
    from queueapp.service_keys import Refused

    clock = FakeClock()
    service = await open_service(clock=clock)
    made = await service.keys.create("billing", ["enqueue"], ["payments"], clock.now_ms() + 60_000, "prod", "admin")
    clock.advance(1)
    every = await service.keys.create("reader", ["read", "read"], None, None, "", "admin")
    with pytest.raises(Conflict):
        await service.keys.create("billing", ["read"], None, None, "", "admin")
    who = service.keys.principal(made.secret)
    assert who is not None and not isinstance(who, Refused)
    assert who.name == "key:billing" and who.roles == {"enqueue"} and who.queues == {"payments"}
    assert service.keys.principal(_other(made.secret)) is None

    rotated = await service.keys.rotate(made.key.id, 30, "admin")
    assert service.keys.principal(made.secret) is not None and service.keys.principal(rotated.secret) is not None
    clock.advance(31_000)
    assert service.keys.principal(made.secret) is None  # the grace is over
    clock.advance(30_000)
    assert service.keys.principal(rotated.secret) == Refused("this API key is expired")
    await service.keys.revoke(every.key.id, "admin")
    with pytest.raises(NotFound):
        await service.keys.rotate(every.key.id, 0, "admin")
    await service.stop()

    again = await open_service(clock=clock)
    assert [(k.name, k.roles, k.queues, k.state(clock.now_ms())) for k in again.keys.all()] == [
        ("billing", ("enqueue",), ("payments",), "expired"), ("reader", ("read",), None, "revoked")]
    assert again.keys.principal(every.secret) == Refused("this API key is revoked")
    assert again.keys.principal(rotated.secret) == Refused("this API key is expired")
    # A revoked key's name may be used again; the secrets differ from each other's.
    third = await again.keys.create("reader", ["read"], None, None, "", "admin")
    assert third.secret not in (every.secret, made.secret, rotated.secret)
    await clean_audit(again)


def _other(secret: str) -> str:
    """The secret with its last character changed (to one it is not)."""
    return secret[:-1] + ("y" if secret.endswith("x") else "x")
