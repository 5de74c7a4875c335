"""Memory rebuilt from the table: all of it at start-up (queue settings, counts, the
metric windows, every waiting and delayed job in line, the leases still valid), or
one job after the ledger failed on it."""

from __future__ import annotations

from ..clock import Clock
from ..metrics import PROCESSING_WINDOW_MS
from ..model import Job, JobState
from ..store import Store
from .lanes import pack
from .ledger import Ledger
from .order import Lanes
from .timers import Timer


async def rebuild(store: Store, ledger: Ledger, lanes: dict[str, Lanes], clock: Clock, leased: list[Job]) -> int:
    """Fill ``ledger`` and the ``lanes`` of its work source (memory.py) from ``store``;
    returns the number of unfinished jobs put in line."""
    for settings in await store.queue_settings():
        if not settings.paused and not settings.concurrency:
            continue  # a queue with default settings exists in memory while it has jobs
        q = ledger.queue(settings.name)
        q.paused = settings.paused
        if settings.concurrency:
            q.concurrency = settings.concurrency
    for queue, counts in (await store.count_states()).items():
        ledger.queue(queue)
        ledger.metrics.of(queue).counts.update(counts)
    samples = await store.finished_since(clock.now_ms() - PROCESSING_WINDOW_MS)
    for sample in sorted(samples, key=lambda s: s.finished_at):
        took = None if sample.started_at is None else sample.finished_at - sample.started_at
        ledger.metrics.of(sample.queue).add_finish(sample.finished_at, took, sample.state is JobState.FAILED)
    await _load_groups(store, ledger, lanes, clock)
    pending = await _load_pending(store, ledger, lanes)
    for job in leased:
        ledger.adopt_active(job)
    return pending


async def _load_groups(store: Store, ledger: Ledger, lanes: dict[str, Lanes], clock: Clock) -> None:
    """Group policies as stored (they win over the config file's), and the starts
    still inside each rate window, so a restart does not give a key a fresh window."""
    for stored in await store.group_settings():
        ledger.set_policy(stored.queue, stored.policy(ledger.policies.defaults(stored.queue)))
    windows = {q: p for q in ledger.queues if (p := ledger.policies.of(q)).longest_window()}
    longest = max((p.longest_window() for p in windows.values()), default=0)
    if not longest:
        return
    now = clock.now_ms()
    for queue, key, started_at in sorted(await store.group_starts(now - longest), key=lambda s: s[2]):
        if queue in windows:
            ledger.queue(queue)
            lanes[queue].line(key).gate.remember_start(started_at)


async def _load_pending(store: Store, ledger: Ledger, lanes: dict[str, Lanes]) -> int:
    """Fill the lanes and the timer heap in batches: keys are appended and each heap
    is built once at the end (heapify is linear; a million heappush calls are not)."""
    count = 0
    timers: list[Timer] = []
    async for batch in store.pending_jobs():
        for p in batch:
            if p.state == "delayed":
                ledger.queue(p.queue)
                timers.append(Timer(p.run_at, p.id, p.priority, p.queue, p.name, p.group))
            else:
                ledger.queue(p.queue)
                of_queue = lanes[p.queue]
                of_queue.add_unordered(of_queue.lane(p.name, p.priority, p.group), pack(p.priority, p.run_at, p.id))
        count += len(batch)
    for of_queue in lanes.values():
        of_queue.rebuild()
    ledger.timers.extend(timers)
    return count


async def resync(store: Store, ledger: Ledger, job_id: int) -> None:
    """Make memory follow the table for one job, after the ledger failed on it."""
    job = await store.get_job(job_id)
    if job is None:
        ledger.drop_active(job_id)
    elif job.state in (JobState.WAITING, JobState.DELAYED):
        ledger.drop_active(job_id)
        ledger.place_job(job)
    elif job.state is JobState.ACTIVE and job_id not in ledger.active and job.lease_expires_at:
        ledger.adopt_active(job)
    for queue, counts in (await store.count_states()).items():
        kept = ledger.metrics.of(queue).counts
        kept.clear()
        kept.update(counts)
