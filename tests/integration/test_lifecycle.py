"""The job lifecycle through the service, over a real SQLite file."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from queueapp.errors import Conflict, NotFound
from queueapp.model import JobState
from queueapp.workers.registry import UnrecoverableError


async def test_priority_order_across_five_levels_with_fifo_inside_a_level(make_service, registry):
    started: list[str] = []
    done = asyncio.Event()

    @registry.handler("work")
    async def work(job):
        started.append(job.data["tag"])
        if len(started) == 15:
            done.set()

    service = await make_service(concurrency=1)
    await service.pause()  # enqueue everything before anything starts
    tags = []
    for round_ in range(3):
        for priority in (5, 3, 1, 4, 2):
            tag = f"p{priority}-{round_}"
            tags.append((priority, round_, tag))
            await service.add_job("work", {"tag": tag}, {"priority": priority})
    await service.resume()
    await asyncio.wait_for(done.wait(), 10)
    assert started == [tag for _, _, tag in sorted(tags)]


async def test_delayed_jobs_start_neither_early_nor_late(make_service, registry):
    lateness: list[float] = []
    seen = asyncio.Queue()

    @registry.handler("timed")
    async def timed(job):
        lateness.append(time.time() * 1000 - job.data["due"])
        await seen.put(job.id)

    service = await make_service()
    count = 12
    for i in range(count):
        delay = 100 + 25 * i
        due = time.time() * 1000 + delay
        job = await service.add_job("timed", {"due": due}, {"delay": delay})
        assert job.state is JobState.DELAYED
    for _ in range(count):
        await asyncio.wait_for(seen.get(), 10)
    # enqueue time is taken before the due time is computed, so the job's own run_at
    # is at or before "due"; starting before it would be early
    assert min(lateness) >= -2, lateness  # 2 ms: clock granularity between the two readings
    assert statistics.median(lateness) < 50, lateness


async def test_a_failing_job_retries_with_backoff_then_fails_for_good(make_service, registry):
    attempts_seen = []

    @registry.handler("flaky")
    async def flaky(job):
        attempts_seen.append(job.attempt)
        raise RuntimeError(f"boom {job.attempt}")

    service = await make_service()
    with service.dispatcher.events.subscribe() as events:
        job = await service.add_job(
            "flaky", {}, {"attempts": 3, "backoff": {"type": "fixed", "delay": 20}}
        )
        failed = await events.until(lambda e: e.type == "failed" and e.job_id == job.id)
    assert failed.detail["error"] == "RuntimeError: boom 3"
    stored = await service.get_job(job.id)
    assert stored.state is JobState.FAILED
    assert stored.attempts_made == 3
    assert [e["message"] for e in stored.errors] == [f"RuntimeError: boom {n}" for n in (1, 2, 3)]
    assert [e["attempt"] for e in stored.errors] == [1, 2, 3]
    assert attempts_seen == [1, 2, 3]
    assert [j.id for j in await service.get_failed_jobs()] == [job.id]
    metrics = service.get_queue_metrics()
    assert metrics["failed"] == 1 and metrics["waiting"] == 0 and metrics["delayed"] == 0


async def test_retry_waits_out_the_backoff(make_service, registry):
    starts: list[int] = []

    @registry.handler("slow-retry")
    async def slow_retry(job):
        starts.append(service.clock.now_ms())
        if job.attempt == 1:
            raise RuntimeError("first")

    service = await make_service()
    with service.dispatcher.events.subscribe() as events:
        job = await service.add_job("slow-retry", {}, {"backoff": {"type": "fixed", "delay": 300}})
        retrying = await events.until(lambda e: e.type == "retrying")
        assert (await service.get_job(job.id)).state is JobState.DELAYED
        await events.until(lambda e: e.type == "completed" and e.job_id == job.id)
    assert starts[1] - starts[0] >= 300
    assert retrying.detail["attempt"] == 1


async def test_unrecoverable_error_skips_remaining_attempts(make_service, registry):
    @registry.handler("fatal")
    async def fatal(job):
        raise UnrecoverableError("bad card")

    service = await make_service()
    with service.dispatcher.events.subscribe() as events:
        job = await service.add_job("fatal", {}, {"attempts": 5})
        await events.until(lambda e: e.type == "failed")
    stored = await service.get_job(job.id)
    assert stored.attempts_made == 1 and stored.state is JobState.FAILED


async def test_an_attempt_that_runs_past_its_timeout_fails(make_service, registry):
    cancelled = asyncio.Event()

    @registry.handler("hang")
    async def hang(job):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    service = await make_service()
    with service.dispatcher.events.subscribe() as events:
        job = await service.add_job("hang", {}, {"attempts": 1, "timeout": 50})
        failed = await events.until(lambda e: e.type == "failed")
    assert failed.detail["error"] == "timed out after 50 ms"
    assert cancelled.is_set()
    assert (await service.get_job(job.id)).state is JobState.FAILED


async def test_pause_stops_new_starts_lets_active_finish_and_survives_restart(make_service, registry):
    release = asyncio.Event()
    running = asyncio.Event()
    finished: list[str] = []

    @registry.handler("step")
    async def step(job):
        running.set()
        if job.data["hold"]:
            await release.wait()
        finished.append(job.id)

    service = await make_service(concurrency=1)
    with service.dispatcher.events.subscribe() as events:
        first = await service.add_job("step", {"hold": True})
        await asyncio.wait_for(running.wait(), 5)
        await service.pause()
        second = await service.add_job("step", {"hold": False})
        release.set()
        await events.until(lambda e: e.type == "completed" and e.job_id == first.id)
    assert (await service.get_job(second.id)).state is JobState.WAITING
    metrics = service.get_queue_metrics()
    assert metrics["paused"] == 1 and metrics["waiting"] == 0
    await service.stop()

    restarted = await make_service(concurrency=1)
    assert restarted.is_paused()
    assert (await restarted.get_job(second.id)).state is JobState.WAITING
    with restarted.dispatcher.events.subscribe() as events:
        await restarted.resume()
        await events.until(lambda e: e.type == "completed" and e.job_id == second.id)
    assert finished == [str(first.id), str(second.id)]


async def test_active_jobs_are_recovered_after_a_crash(make_service, registry, db_path):
    """Jobs claimed by a process that died, whose leases ran out by the restart: back
    to waiting with the attempt counted, or failed when that was their last attempt."""
    service = await make_service(background=False)  # no reaper: the 1 ms leases run out unseen
    retryable = await service.add_job("external", {}, {"attempts": 3, "backoff": {"type": "fixed", "delay": 0}})
    last_try = await service.add_job("external", {}, {"attempts": 1})
    leased = await service.dispatcher.leases.lease("default", None, 10, 1, 0)
    assert {j.id for j in leased} == {retryable.id, last_try.id}
    # Simulated crash: the store is closed without anyone finishing the jobs, the
    # in-memory dispatcher is thrown away.
    service.dispatcher._stopping = True
    await service.store.close()

    revived = await make_service()
    first = await revived.get_job(retryable.id)
    assert first.state is JobState.WAITING
    assert first.attempts_made == 1
    assert "stopped while the job was running" in first.error
    second = await revived.get_job(last_try.id)
    assert second.state is JobState.FAILED and second.attempts_made == 1
    assert revived.get_queue_metrics()["waiting"] == 1
    assert revived.get_queue_metrics()["failed"] == 1
    # and the recovered job is handed out again
    again = await revived.dispatcher.leases.lease("default", None, 10, 60_000, 0)
    assert [j.id for j in again] == [retryable.id]
    assert again[0].attempts_made == 2


async def test_cancel_waiting_delayed_and_active_jobs(make_service, registry):
    running = asyncio.Event()
    stopped = asyncio.Event()

    @registry.handler("long")
    async def long(job):
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    service = await make_service()
    delayed = await service.add_job("other", {}, {"delay": 60_000})
    waiting = await service.add_job("other", {})
    assert (await service.cancel_job(delayed.id)).state is JobState.CANCELLED
    assert (await service.cancel_job(waiting.id)).state is JobState.CANCELLED
    assert await service.dispatcher.leases.lease("default", None, 5, 30_000, 0) == []

    active = await service.add_job("long", {})
    await asyncio.wait_for(running.wait(), 5)
    cancelled = await service.cancel_job(active.id)
    assert cancelled.state is JobState.CANCELLED
    await asyncio.wait_for(stopped.wait(), 5)
    with pytest.raises(Conflict):
        await service.cancel_job(active.id)
    with pytest.raises(NotFound):
        await service.cancel_job(999_999)
    counts = service.get_queue_metrics()
    assert counts["active"] == 0 and counts["waiting"] == 0 and counts["delayed"] == 0
    # a cancelled job can be retried, with a fresh set of attempts
    again = await service.retry_job(waiting.id)
    assert again.state is JobState.WAITING and again.attempts_made == 0


async def test_remove_on_complete_and_keep_newest(make_service, registry):
    @registry.handler("tidy")
    async def tidy(job):
        return {"n": job.data["n"]}

    service = await make_service(concurrency=1)
    with service.dispatcher.events.subscribe() as events:
        gone = await service.add_job("tidy", {"n": 0}, {"removeOnComplete": True})
        await events.until(lambda e: e.type == "completed" and e.job_id == gone.id)
        kept = []
        for n in range(1, 6):
            kept.append(await service.add_job("tidy", {"n": n}, {"removeOnComplete": 2}))
        await events.until(lambda e: e.type == "completed" and e.job_id == kept[-1].id)
    assert await service.get_job(gone.id) is None
    remaining = await service.list_jobs("default", JobState.COMPLETED)
    assert [j.data["n"] for j in remaining] == [4, 5]
    assert service.get_queue_metrics()["completed"] == 2


async def test_progress_is_stored_and_result_kept(make_service, registry):
    @registry.handler("report")
    async def report(job):
        await job.progress(40)
        await job.progress({"step": "render"})
        return {"rows": 3}

    service = await make_service()
    with service.dispatcher.events.subscribe() as events:
        job = await service.add_job("report", {})
        progress = [
            (await events.until(lambda e: e.type == "progress")).detail["progress"],
            (await events.until(lambda e: e.type == "progress")).detail["progress"],
        ]
        await events.until(lambda e: e.type == "completed")
    assert progress == [40, {"step": "render"}]
    stored = await service.get_job(job.id)
    assert stored.result == {"rows": 3} and stored.progress == {"step": "render"}


async def test_concurrency_limit_per_queue(make_service, registry):
    running = 0
    peak = 0
    gate = asyncio.Event()

    @registry.handler("parallel")
    async def parallel(job):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            gate.set()
        await gate.wait()
        running -= 1

    service = await make_service(concurrency=3)
    with service.dispatcher.events.subscribe() as events:
        jobs = [await service.add_job("parallel", {}) for _ in range(10)]
        for _ in jobs:
            await events.until(lambda e: e.type == "completed")
    assert peak == 3


async def test_idempotent_enqueue_with_job_id(make_service):
    service = await make_service()
    first = await service.add_job("once", {"a": 1}, {"jobId": "order-42"})
    again = await service.add_job("once", {"a": 2}, {"jobId": "order-42"})
    other_queue = await service.add_job("once", {"a": 3}, {"jobId": "order-42"}, queue="other")
    assert again.id == first.id and again.data == {"a": 1}
    assert other_queue.id != first.id
    assert service.get_queue_metrics()["waiting"] == 1


async def test_ids_are_never_reused_after_removal(make_service):
    service = await make_service()
    job = await service.add_job("x", {})
    await service.cancel_job(job.id)
    assert await service.clean(0, "cancelled") == 1
    await service.stop()
    service = await make_service()
    assert (await service.add_job("x", {})).id == job.id + 1
