"""Recurring schedules over a real store with a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from queueapp.clock import FakeClock, to_iso
from queueapp.cron import next_cron_ms, parse_zone
from queueapp.errors import ValidationFailed
from queueapp.model import JobState

BERLIN = parse_zone("Europe/Berlin")


def ms(*args, tz=UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def fires(expr: str, zone, start: int, count: int) -> list[str]:
    out, t = [], start
    for _ in range(count):
        t = next_cron_ms(expr, zone, t)
        out.append(datetime.fromtimestamp(t / 1000, UTC).astimezone(zone).isoformat())
    return out


def test_cron_in_utc():
    assert fires("0 9 * * *", UTC, ms(2026, 12, 24, 9), 3) == [
        "2026-12-25T09:00:00+00:00", "2026-12-26T09:00:00+00:00", "2026-12-27T09:00:00+00:00"]
    assert fires("*/15 * * * *", UTC, ms(2026, 1, 1, 23, 50), 3) == [
        "2026-01-02T00:00:00+00:00", "2026-01-02T00:15:00+00:00", "2026-01-02T00:30:00+00:00"]
    assert fires("0 0 29 2 *", UTC, ms(2026, 1, 1), 1) == ["2028-02-29T00:00:00+00:00"]


def test_cron_in_berlin_across_spring_forward():
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST
    assert fires("0 9 * * *", BERLIN, ms(2026, 3, 27, 12), 3) == [
        "2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"]
    # the skipped wall time runs once, an hour later, and is not lost
    assert fires("30 2 * * *", BERLIN, ms(2026, 3, 28, 12), 2) == [
        "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    assert fires("0 * * * *", BERLIN, ms(2026, 3, 29, 0, 30), 3) == [
        "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00", "2026-03-29T05:00:00+02:00"]


def test_cron_in_berlin_across_fall_back():
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, fires once
    assert fires("30 2 * * *", BERLIN, ms(2026, 10, 24, 12), 3) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]
    assert fires("0 9 * * *", BERLIN, ms(2026, 10, 24, 12), 2) == [
        "2026-10-25T09:00:00+01:00", "2026-10-26T09:00:00+01:00"]
    hourly = fires("0 * * * *", BERLIN, ms(2026, 10, 24, 22, 30), 4)
    assert hourly == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
                      "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"]


async def schedule_service(make_service, start_ms, keep_cleanup=False):
    """A service with a hand-driven clock and no background loops. The built-in
    cleanup schedule is removed unless asked for, so that ticks count only the
    schedules a test makes."""
    clock = FakeClock(start_ms)
    service = await make_service(clock=clock, background=False)
    if not keep_cleanup and await service.store.get_schedule("default", "cleanup"):
        await service.scheduler.remove("default", "cleanup")
    return clock, service


async def jobs_of(service, name):
    return await service.list_jobs("default", name=name, limit=1000)


async def test_cron_schedule_fires_at_its_instants_in_berlin(make_service):
    clock, service = await schedule_service(make_service, ms(2026, 3, 28, 7))
    saved = await service.schedule_recurring_job("morning", "0 9 * * *", timezone="Europe/Berlin")
    assert saved.next_run_at == ms(2026, 3, 28, 8)  # 09:00 CET
    assert await service.scheduler.tick() == 0
    clock.ms = ms(2026, 3, 28, 8) - 1
    assert await service.scheduler.tick() == 0  # never early
    clock.ms = ms(2026, 3, 28, 8)
    assert await service.scheduler.tick() == 1
    clock.ms = ms(2026, 3, 29, 7)  # 09:00 CEST, the day the clocks changed
    assert await service.scheduler.tick() == 1
    jobs = await jobs_of(service, "morning")
    assert [j.job_key for j in jobs] == [
        "morning@2026-03-28T08:00:00.000Z", "morning@2026-03-29T07:00:00.000Z"]
    stored = await service.store.get_schedule("default", "morning")
    assert stored.next_run_at == ms(2026, 3, 30, 7) and stored.last_run_at == clock.ms


async def test_every_ms_schedule_ticks(make_service):
    clock, service = await schedule_service(make_service, ms(2026, 6, 1))
    await service.schedule_recurring_job("poll", every_ms=1000, data={"feed": 1})
    fired = 0
    for _ in range(5):
        clock.advance(1000)
        fired += await service.scheduler.tick()
    assert fired == 5
    jobs = await jobs_of(service, "poll")
    assert [j.run_at for j in jobs] == [ms(2026, 6, 1) + 1000 * k for k in range(1, 6)]
    assert all(j.data == {"feed": 1} for j in jobs)


async def test_a_restart_neither_loses_nor_doubles_a_run(make_service):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    await service.schedule_recurring_job("beat", every_ms=10_000)
    clock.ms = start + 10_000
    assert await service.scheduler.tick() == 1
    # a second scheduler over the same store, as after a restart, ticking the same instant
    await service.stop()
    clock2, revived = await schedule_service(make_service, start + 10_000)
    assert await revived.scheduler.tick() == 0
    clock2.ms = start + 15_000
    assert await revived.scheduler.tick() == 0
    clock2.ms = start + 20_000
    assert await revived.scheduler.tick() == 1
    assert len(await jobs_of(revived, "beat")) == 2


async def test_a_double_fire_of_the_same_instant_enqueues_once(make_service):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    schedule = await service.schedule_recurring_job("once", every_ms=5000)
    job = service.scheduler._job_for(schedule, schedule.next_run_at)
    first = await service.dispatcher.add_scheduled("default", "once", schedule.next_run_at, [job],
                                                   schedule.next_run_at + 5000)
    again = await service.dispatcher.add_scheduled("default", "once", schedule.next_run_at, [job],
                                                   schedule.next_run_at + 5000)
    assert first is not None and len(first[0]) == 1
    assert again is None  # the guard on next_run_at refused the stale firing
    assert len(await jobs_of(service, "once")) == 1


async def test_missed_runs_skip_policy_runs_once(make_service):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    await service.schedule_recurring_job("skippy", every_ms=60_000)
    await service.stop()
    clock2, revived = await schedule_service(make_service, start + 10 * 60_000 + 5)  # down 10 minutes
    assert await revived.scheduler.tick() == 1
    jobs = await jobs_of(revived, "skippy")
    assert [j.job_key for j in jobs] == [f"skippy@{to_iso(start + 10 * 60_000)}"]
    stored = await revived.store.get_schedule("default", "skippy")
    assert stored.next_run_at == start + 11 * 60_000


async def test_missed_runs_all_policy_catches_up_capped(make_service):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    await service.schedule_recurring_job("every", every_ms=60_000, missed="all")
    await service.stop()
    clock2, revived = await schedule_service(make_service, start + 5 * 60_000)
    assert await revived.scheduler.tick() == 5
    revived.scheduler.catch_up_limit = 3
    clock2.ms = start + 20 * 60_000
    assert await revived.scheduler.tick() == 3
    keys = [j.job_key for j in await jobs_of(revived, "every")]
    assert keys[-3:] == [f"every@{to_iso(start + k * 60_000)}" for k in (18, 19, 20)]


async def test_overlap_off_skips_while_the_previous_run_is_unfinished(make_service):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    await service.schedule_recurring_job("solo", every_ms=1000, overlap=False)
    clock.advance(1000)
    assert await service.scheduler.tick() == 1
    clock.advance(1000)
    assert await service.scheduler.tick() == 0  # first run still waiting
    (leased,) = await service.dispatcher.leases.lease("default", ["solo"], 1, 60_000, 0)
    clock.advance(1000)
    assert await service.scheduler.tick() == 0  # still active
    await service.dispatcher.outcomes.complete(leased.id, leased.lease_token, None)
    clock.advance(1000)
    assert await service.scheduler.tick() == 1
    assert len(await jobs_of(service, "solo")) == 2


async def test_paused_schedule_does_not_fire_and_resumes_from_now(make_service):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    await service.schedule_recurring_job("p", every_ms=1000)
    await service.scheduler.set_enabled("default", "p", False)
    clock.advance(5000)
    assert await service.scheduler.tick() == 0
    resumed = await service.scheduler.set_enabled("default", "p", True)
    assert resumed.next_run_at == start + 6000
    clock.advance(1000)
    assert await service.scheduler.tick() == 1


async def test_the_recurring_handler_runs_the_jobs(make_service, registry):
    start = ms(2026, 6, 1)
    clock, service = await schedule_service(make_service, start)
    ran = []

    async def report(job):
        ran.append(job.name)
        return "ok"

    await service.schedule_recurring_job("daily-report", "0 9 * * *", report)
    with service.dispatcher.events.subscribe() as events:
        clock.ms = ms(2026, 6, 1, 9)
        assert await service.scheduler.tick() == 1
        await events.until(lambda e: e.type == "completed")
    assert ran == ["daily-report"]


async def test_built_in_cleanup_schedule_removes_old_jobs(make_service):
    start = ms(2026, 6, 1, 12)
    clock, service = await schedule_service(make_service, start, keep_cleanup=True)
    cleanup = await service.store.get_schedule("default", "cleanup")
    assert cleanup.cron == "0 0 * * *" and cleanup.next_run_at == ms(2026, 6, 2)
    old = await service.add_job("x", {}, queue="mail")
    await service.cancel_job(old.id)
    assert await service.dispatcher.leases.lease("mail", None, 1, 60_000, 0) == []  # it was cancelled
    done = await service.add_job("y", {}, queue="mail")
    (leased,) = await service.dispatcher.leases.lease("mail", None, 1, 60_000, 0)
    await service.dispatcher.outcomes.complete(leased.id, leased.lease_token, None)
    clock.ms = ms(2026, 6, 2)  # 12 hours later: too young to remove
    with service.dispatcher.events.subscribe() as events:
        assert await service.scheduler.tick() == 1
        await events.until(lambda e: e.type == "completed" and e.name == "queueapp.clean")
    assert (await service.get_job(done.id)).state is JobState.COMPLETED
    clock.ms = ms(2026, 6, 3)
    with service.dispatcher.events.subscribe() as events:
        assert await service.scheduler.tick() == 1
        finished = await events.until(lambda e: e.type == "completed" and e.name == "queueapp.clean")
    # the first cleanup run's own job is a day old now, too
    assert finished.detail["result"]["removed"] == {"default.completed": 1, "mail.completed": 1}
    assert await service.get_job(done.id) is None
    assert (await service.get_job(old.id)).state is JobState.CANCELLED  # cancelled jobs are kept


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "s", "cron": "not a cron"}, "cron needs 5 fields"),
        ({"name": "s", "cron": "61 * * * *"}, "invalid cron expression"),
        ({"name": "s", "cron": "* * * * * *"}, "cron needs 5 fields"),
        ({"name": "s", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"name": "s", "everyMs": 99}, "greater than or equal to 100"),
        ({"name": "s", "everyMs": 1000, "cron": "0 9 * * *"}, "exactly one of cron and everyMs"),
        ({"name": "s"}, "exactly one of cron and everyMs"),
        ({"name": "bad name", "everyMs": 1000}, "name"),
        ({"name": "s", "everyMs": 1000, "options": {"jobId": "x"}}, "drop options.jobId"),
    ],
)
async def test_bad_schedules_are_refused_with_a_clear_message(make_client, db_path, body, message):
    client = await make_client()
    r = await client.post("/queues/schedules", json=body)
    assert r.status == 400
    error = (await r.json())["error"]
    assert error["code"] == "validation_error"
    assert message in error["message"]
    listing = await (await client.get("/queues/schedules")).json()
    assert [s["name"] for s in listing["schedules"]] == ["cleanup"]


async def test_scheduled_time_without_an_offset_is_refused(make_client):
    client = await make_client()
    r = await client.post("/queues/jobs/schedule", json={"name": "x", "scheduledTime": "2026-12-25T09:00:00"})
    assert r.status == 400
    assert "timezone" in (await r.json())["error"]["message"].lower()


async def test_schedule_routes(make_client):
    client = await make_client()
    r = await client.post("/queues/schedules", json={
        "name": "daily-report", "cron": "0 9 * * *", "timezone": "Europe/Berlin",
        "data": {"format": "pdf"}, "options": {"priority": 2}, "overlap": False})
    assert r.status == 201
    saved = await r.json()
    assert saved["jobName"] == "daily-report" and saved["nextRunAt"].endswith("Z")
    assert saved["options"] == {"priority": 2} and saved["overlap"] is False
    r = await client.post("/queues/schedules", json={"name": "daily-report", "everyMs": 60_000})
    replaced = await r.json()
    assert replaced["cron"] is None and replaced["everyMs"] == 60_000
    assert replaced["createdAt"] == saved["createdAt"]
    paused = await (await client.post("/queues/schedules/daily-report/pause")).json()
    assert paused["enabled"] is False and paused["nextRunAt"] is None
    resumed = await (await client.post("/queues/schedules/daily-report/resume")).json()
    assert resumed["enabled"] is True and resumed["nextRunAt"]
    assert (await client.get("/queues/schedules/daily-report")).status == 200
    assert (await client.delete("/queues/schedules/daily-report")).status == 200
    assert (await client.get("/queues/schedules/daily-report")).status == 404
    assert (await client.delete("/queues/schedules/daily-report")).status == 404
    assert (await client.post("/queues/schedules/nothing/pause")).status == 404


async def test_validation_failure_raised_by_the_library(make_service):
    service = await make_service(background=False)
    with pytest.raises(ValidationFailed):
        await service.schedule_recurring_job("x", "bad cron")


async def test_run_now_is_recorded_as_the_last_run_and_cleanup_was_made_with_its_database(make_client):
    client = await make_client()
    body = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    r = await client.post("/queues/schedules", json=body)
    assert (await r.json())["lastRunAt"] is None
    job = await (await client.post("/queues/schedules/nightly/run")).json()
    schedule = await (await client.get("/queues/schedules/nightly")).json()
    assert schedule["lastJobId"] == job["id"]
    assert schedule["lastRunAt"] is not None and schedule["lastRunAt"] == job["createdAt"]
    assert schedule["nextRunAt"] == (await r.json())["nextRunAt"]  # the rule goes on as it was
    assert (await client.post("/queues/schedules/nosuch/run")).status == 404
    cleanup = await (await client.get("/queues/schedules/cleanup")).json()
    assert cleanup["createdAt"] > "2020" and cleanup["updatedAt"] > "2020"
