"""``queueapp copy`` from a SQLite file into a real PostgreSQL database (tests/pg.py):
every job keeps its id, state and payload, schedules, queue and group settings,
dependency edges and the history come along, new ids go on after the old ones, the
appliance serves on from the copy; a target that is not empty, or a file an
appliance holds, is refused and nothing changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg

from queueapp import QueueService
from queueapp.clock import FakeClock
from queueapp.flow import GroupLimits
from queueapp.history import Tally
from queueapp.model import JobState
from queueapp.options import ScheduleSpec
from queueapp.retry import Failure
from queueapp.store import DatabaseLock, SqliteStore
from queueapp.store.postgres.store import PostgresStore

ROOT = Path(__file__).parent.parent.parent


def copy(source: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "queueapp", "copy", "--from", str(source), "--to", url],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


async def filled(path: Path, clock: FakeClock) -> dict:
    service = QueueService(SqliteStore(path, "normal"), clock=clock, background=False)
    await service.start()
    await service.schedules.save(ScheduleSpec(name="nightly", cron="0 2 * * *"))
    await service.groups.set_policy("default", GroupLimits(concurrency=2))
    await service.groups.pause("default", "acct-9", None)
    await service.store.record_history(clock.ms - clock.ms % 60_000 - 3_600_000, [("default", Tally(4, 3, 1))])
    added = await service.add_jobs(service.build_jobs([{"name": "child"}, {"name": "parent", "options": {
        "dependsOn": ["#0"]}}, {"name": "later", "options": {"delay": 60_000}}] + [
        {"name": "bulk", "data": {"i": i}, "options": {"group": "acct-1"}} for i in range(300)]))
    [done] = await service.workers.lease("default", ["bulk"], 1, 60_000, 0)
    await service.workers.complete(done.id, done.lease_token, {"ok": 1})
    [broke] = await service.workers.lease("default", ["bulk"], 1, 60_000, 0)
    await service.workers.fail(broke.id, broke.lease_token, Failure("boom", retry=False))
    cancelled = await service.cancel_job(added[5].id)
    assert cancelled.state is JobState.CANCELLED
    await service.stop(grace_s=1)
    return {"parent": added[1].job.id, "child": added[0].job.id, "done": done.id, "last": added[-1].job.id}


async def test_a_copy_serves_on_with_every_job_and_setting(postgres, tmp_path):
    clock = FakeClock()
    source = tmp_path / "q.db"
    ids = await filled(source, clock)
    url = postgres.create_database("copy_target")
    result = copy(source, url)
    assert result.returncode == 0, result.stderr
    assert "jobs 303" in result.stdout and "schedules 2" in result.stdout

    service = QueueService(PostgresStore(url), clock=clock, background=False)
    await service.start()
    try:
        counts = dict((q, c) for q, _, c in service.queue_counts())["default"]
        assert (counts[JobState.COMPLETED], counts[JobState.FAILED], counts[JobState.CANCELLED],
                counts[JobState.BLOCKED], counts[JobState.DELAYED]) == (1, 1, 1, 1, 1)
        done = await service.get_job(ids["done"])
        assert done.state is JobState.COMPLETED and done.result == {"ok": 1}
        assert [s.name for s in await service.schedules.list("default")] == ["cleanup", "nightly"]
        view = await service.groups.view("default")
        assert view.limits.concurrency == 2 and [k.key for k in view.keys if k.paused] == ["acct-9"]
        history = await service.store.read_history("default", 0)
        assert (4, 3, 1) in [(t.enqueued, t.completed, t.failed) for _, t in history]
        [child] = await service.workers.lease("default", ["child"], 1, 60_000, 0)
        await service.workers.complete(child.id, child.lease_token, None)
        assert (await service.get_job(ids["parent"])).state is JobState.WAITING  # its edge came along
        fresh = await service.add_job("new", {})
        assert fresh.id > ids["last"]  # ids are never reused
        assert await service.dispatcher.audit() == []
    finally:
        await service.stop(grace_s=1)

    again = copy(source, url)  # the target is not empty now
    assert again.returncode == 1 and "not empty" in again.stderr
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 304
    finally:
        await conn.close()


async def test_a_file_an_appliance_holds_is_not_copied(postgres, tmp_path):
    source = tmp_path / "q.db"
    await filled(source, FakeClock())
    url = postgres.create_database("copy_held")
    with DatabaseLock(source):
        held = copy(source, url)
    assert held.returncode == 1 and "cannot copy" in held.stderr
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('jobs') IS NULL")  # not even made
    finally:
        await conn.close()
    assert copy(tmp_path / "none.db", url).returncode == 1
