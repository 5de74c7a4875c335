"""The appliance as a Python library (the seed's QueueService and friends), and the
one object the HTTP API calls.

    service = QueueService(SqliteStore("jobs.db"))
    await service.start()
    job = await service.add_job("send-email", {"to": "a@example.com"}, {"priority": 2})
    metrics = service.get_queue_metrics()
    await service.stop()

Schedules are reached through ``service.schedules`` and the external-worker protocol
through ``service.workers``; both belong to the service and call nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from .background.expiry import ExpirySweep
from .background.history import HistoryKeeper
from .background.leader import Leadership
from .background.monitor import Alerter, Monitor
from .background.recovery import LeaseReaper, recover_after_restart
from .background.scheduler import Scheduler
from .clock import Clock, DatabaseClock, from_datetime, to_iso
from .cluster import ClusterNode, ClusterView, DatabaseSource, Term
from .config import default_thresholds
from .dispatch import ActiveJob, Dispatcher, GroupPolicies, MemorySource, Wakeup
from .dispatch.ledger import Running
from .dispatch.source import WorkSource
from .enqueue import DEFAULT_QUEUE, JobBuilder, check_name, parse_options, valid_queue
from .errors import NotFound, ValidationFailed
from .events import EventBus, JobEvent, Subscription
from .flow import Aging, GroupLimits
from .health import HealthReport, HealthThresholds
from .history import KEPT_MS as HISTORY_KEPT_MS
from .model import Job, JobState, NewJob
from .options import MAX_DELAY_MS, JobOptions, PriorityFactors
from .prometheus import build_labels, render
from .service_browse import BrowseDesk, make_search
from .service_groups import GroupDesk
from .service_keys import KeyDesk
from .service_parts import ScheduleDesk, WorkerDesk
from .store import Added, AuditEntry, LogLine, Store, added_ids, added_jobs, read_replica_file, replica_listing
from .telemetry import NO_TRACING, TraceContext, Tracing, with_context
from .workers.maintenance import register_maintenance
from .workers.registry import HandlerRegistry

__all__ = ["DEFAULT_QUEUE", "QueueService", "added_ids", "added_jobs"]


T = TypeVar("T")

class QueueService:
    def __init__(
        self,
        store: Store,
        *,
        registry: HandlerRegistry | None = None,
        clock: Clock | None = None,
        concurrency: int | Callable[[str], int] = 5,
        lease_ms: int = 30_000,
        background: bool = True,
        thresholds_for: Callable[[str], HealthThresholds] = default_thresholds,
        alerter: Alerter | None = None,
        monitor_interval_ms: int = 60_000,
        group_limits: Callable[[str], GroupLimits] | None = None,
        aging: Callable[[str], Aging | None] | None = None,
        audit_kept_ms: int = 90 * 86_400_000,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.store = store
        # Spans of enqueues, waits and attempts (telemetry.py); off: none, and jobs
        # still keep and hand on their producer's trace.
        self.tracing = tracing
        self.audit_kept_ms = audit_kept_ms
        # False: the scheduler, the lease reaper and the monitor only move when their
        # tick() is called (tests drive them with a FakeClock).
        self.background = background
        # A node of a cluster keeps the deadlines it shares on the database's clock.
        self.clock = clock or (DatabaseClock() if store.shared is not None else Clock())
        # Each service has its own handlers: two services never share one.
        self.registry = registry or HandlerRegistry()
        # Where the dispatcher finds work, chosen here and nowhere else: memory's lanes
        # on one appliance, the database's claims on a node of a cluster (a store that
        # several nodes share makes this a node of one).
        policies = GroupPolicies(group_limits, aging)
        wakeup = Wakeup(self.clock)
        term = Term()
        shared = store.shared
        source: WorkSource
        if shared is None:
            source = MemorySource(store, self.clock, self.registry.__contains__, policies, wakeup)
        else:
            source = claims = DatabaseSource(store, shared, self.clock, self.registry, policies, wakeup, term)
        self.dispatcher = Dispatcher(store, self.registry, self.clock, source, policies=policies, wakeup=wakeup,
                                     concurrency=concurrency, default_lease_ms=lease_ms, tracing=tracing)
        self.cluster: ClusterNode | None = None
        running: Running = self.dispatcher
        if shared is not None:
            view = ClusterView(store, shared, self.dispatcher.ledger, claims, self.clock)
            running = self.cluster = ClusterNode(shared, self.dispatcher, claims, view)
        self.running = running  # every running job: this process's, or the cluster's
        self.builder = JobBuilder(self.clock, self.registry.validate)
        self.scheduler = Scheduler(store, self.dispatcher, self.clock, self.builder, tracing=tracing)
        self.reaper = LeaseReaper(self.dispatcher)
        self.expiry = ExpirySweep(self.dispatcher)
        self.monitor = Monitor(self.dispatcher, thresholds_for, alerter, monitor_interval_ms,
                               reclaim=self.reclaim_memory, running=running, replica=store.replica,
                               standbys=store.standbys)
        self.schedules = ScheduleDesk(store, self.scheduler, self.builder, self.registry)
        self.workers = WorkerDesk(store, self.dispatcher)
        self.groups = GroupDesk(store, self.dispatcher, self.clock)
        self.keys = KeyDesk(store, self.clock)
        self.history = HistoryKeeper(store, self.dispatcher.ledger.metrics, self.clock)
        self.leadership = None
        if shared is not None:
            self.leadership = Leadership(shared, term, self.clock, leases=self.dispatcher.leases,
                                         outcomes=self.dispatcher.outcomes, scheduler=self.scheduler,
                                         monitor=self.monitor, expiry=self.expiry)
        self.browse = BrowseDesk(store, self.dispatcher, self.history)
        register_maintenance(
            self.registry, lambda grace, state, queue: self.clean(grace, state, queue=queue),
            lambda: list(self.dispatcher.queues),
            self._prune_kept,
        )
        self._loops: list[asyncio.Task[None]] = []

    async def _prune_kept(self) -> int:
        """What the cleanup job prunes besides jobs: metrics history older than a week,
        audit entries older than audit_retention_days; the rows removed."""
        now = self.clock.now_ms()
        return await self.store.prune_history(now - HISTORY_KEPT_MS) + await self.store.prune_audit(
            now - self.audit_kept_ms)

    # the audit trail ------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> None:
        await self.store.record_audit(entry)

    async def audit_trail(self, queue: str | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        return await self.store.read_audit(queue, before_id, limit)

    async def start(self) -> None:
        """Open the store, recover what a crash left running, start dispatching, and
        (``background``) the scheduler, the lease reaper and the monitor."""
        await self.store.open()
        try:
            await self.keys.load()
            # In a cluster the leader returns the jobs of a node that stopped.
            leased = [] if self.cluster else await recover_after_restart(self.store, self.clock)
            if self.cluster is not None:
                await self.cluster.join()
            await self.dispatcher.start(leased)
            await self.scheduler.start()
        except BaseException:
            await self.store.close()  # its writer thread would keep the process alive
            raise
        if self.monitor.alerter is not None:
            await self.monitor.alerter.start()
        if self.store.standbys is not None:
            self.store.standbys.armed = True  # from here a change may wait for its standbys
        if self.background and self.leadership is not None:
            self._loops = [
                asyncio.create_task(self.leadership.run(), name="queueapp-leadership"),
                asyncio.create_task(self.history.run(), name="queueapp-history"),
                asyncio.create_task(self.keys.follow(), name="queueapp-keys"),
            ]
        elif self.background:
            self._loops = [
                asyncio.create_task(self.scheduler.run(), name="queueapp-scheduler"),
                asyncio.create_task(self.reaper.run(), name="queueapp-lease-reaper"),
                asyncio.create_task(self.monitor.run(), name="queueapp-monitor"),
                asyncio.create_task(self.history.run(), name="queueapp-history"),
                asyncio.create_task(self.expiry.run(), name="queueapp-expiry"),
            ]

    def stop_serving_requests(self) -> None:
        """First step of a stop: open event streams end and long polls return."""
        self.dispatcher.leases.close()
        self.dispatcher.ledger.events.close_all()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop the background loops, let running jobs finish (up to ``grace_s``),
        then close the store."""
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.leadership is not None:
            await self.leadership.step_down()
        if self.cluster is not None:
            await self.cluster.stop_refreshing()
        await self.dispatcher.stop(grace_s)
        if self.cluster is not None:
            await self.cluster.leave()
        with contextlib.suppress(Exception):  # a store that cannot write loses this minute only
            await self.history.flush()
        if self.monitor.alerter is not None:
            await self.monitor.alerter.stop()
        await self.tracing.close()
        await self.store.close()

    @property
    def node(self) -> str | None:
        """This node's name in a cluster; None for an appliance that serves alone."""
        return self.store.shared.node if self.store.shared is not None else None

    # the database's copy (replicate_to) ------------------------------------------------------

    def _replica_folder(self) -> str:
        if self.store.replica is None:
            raise NotFound("this appliance does not replicate its database: start it with replicate_to")
        return self.store.replica.folder

    async def replication(self, after: tuple[str, int] | None = None, wait_ms: int = 0) -> dict[str, Any]:
        """The copy's status, the standbys that follow it and the folder's generations,
        for a standby to follow; with ``after`` (a standby's position), once the copy
        has moved on from it or ``wait_ms`` has passed (a long poll)."""
        folder = self._replica_folder()
        assert self.store.replica is not None and self.store.standbys is not None
        gate = self.store.standbys
        if after is not None and wait_ms:
            await gate.changed_from(after, wait_ms)
        generations = await asyncio.to_thread(replica_listing, folder)
        now = self.clock.now_ms()
        return {"replica": self.store.replica.as_dict(now),
                "syncStandbys": gate.required, "degradedSince": to_iso(gate.degraded_since_ms),
                "standbys": [{"name": s.name, "generation": s.position[0], "commitsBytes": s.position[1],
                              "seenAt": to_iso(s.seen_ms)} for s in sorted(gate.standbys.values(),
                                                                           key=lambda s: s.name)],
                "generations": [{"name": name, "files": [{"path": path, "size": size} for path, size in files]}
                                for name, files in generations]}

    def standby_holds(self, name: str, generation: str, commits_bytes: int) -> None:
        """A standby says where its copy stands (on its disk)."""
        self._replica_folder()
        assert self.store.standbys is not None
        self.store.standbys.report(name, (generation, commits_bytes))

    async def replica_bytes(self, generation: str, name: str, offset: int) -> bytes:
        """A file of the copy from ``offset`` (at most a few MB); NotFound for none."""
        folder = self._replica_folder()
        try:
            return await asyncio.to_thread(read_replica_file, folder, generation, name, offset)
        except (ValueError, FileNotFoundError) as exc:
            raise NotFound(str(exc)) from None

    def nodes(self) -> dict[str, Any]:
        """This node, the leader and the nodes of the cluster as last read."""
        if self.cluster is None:
            return {"node": None, "cluster": False, "leader": None, "nodes": []}
        view = self.cluster.view
        return {"node": self.node, "cluster": True, "leader": view.leader,
                "nodes": [{"id": n.id, "startedAt": to_iso(n.started_at), "seenAt": to_iso(n.seen_at),
                           "leader": n.id == view.leader, "skewMs": n.stats.get("skewMs")} for n in view.nodes]}

    # adding jobs -----------------------------------------------------------------

    def build_job(
        self, name: str, data: dict[str, Any] | None, options: JobOptions,
        factors: PriorityFactors | None = None, queue: str = DEFAULT_QUEUE, run_at: int | None = None,
    ) -> NewJob:
        """Validated input to a job to store (see enqueue.py)."""
        return self.builder.build(name, data, options, factors, queue, run_at)

    def build_jobs(self, items: list[dict[str, Any]], queue: str = DEFAULT_QUEUE) -> list[NewJob]:
        """Validated jobs of a bulk body (name, data, options, priorityFactors each)."""
        return self.builder.build_many(items, queue)

    async def add_jobs(self, jobs: list[NewJob], trace: TraceContext | None = None) -> Sequence[Added]:
        """Store jobs built with ``build_job``, all or none; each says whether it was
        created or an earlier job with its ``jobId`` was kept. ``trace``: the
        producer's (its traceparent), which jobs without one of their own keep."""
        if trace is None and not self.tracing.on:
            return await self.dispatcher.add(jobs)
        sending = self.tracing.sending(jobs[0].queue if jobs else DEFAULT_QUEUE, len(jobs), trace)
        if sending.context is not None:
            jobs = with_context(jobs, sending.context)
        try:
            added = await self.dispatcher.add(jobs)
        except BaseException as exc:
            sending.done(0, exc)
            raise
        sending.done(len(added))
        return added

    async def add_job(
        self,
        name: str,
        data: dict[str, Any] | None = None,
        options: dict[str, Any] | JobOptions | None = None,
        *,
        priority_factors: dict[str, Any] | PriorityFactors | None = None,
        queue: str = DEFAULT_QUEUE,
    ) -> Job:
        """The seed's ``addJob(name, data, options)``. Returns the stored job (or the
        job already kept under the same ``options.jobId``)."""
        check_name(name, data)
        valid_queue(queue)
        parsed, factors = parse_options(options, priority_factors)
        return (await self.add_jobs([self.build_job(name, data, parsed, factors, queue)]))[0].job

    async def schedule_job(
        self, name: str, data: dict[str, Any] | None, at: datetime,
        options: dict[str, Any] | None = None, *, queue: str = DEFAULT_QUEUE,
    ) -> Job:
        """The seed's ``scheduleJob``: run at a time (a past time runs at once)."""
        check_name(name, data)
        valid_queue(queue)
        parsed, _ = parse_options(options)
        try:
            run_at = from_datetime(at)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        return (await self.add_jobs([self.build_job(name, data, parsed, None, queue, run_at)]))[0].job

    async def schedule_delayed_job(
        self, name: str, data: dict[str, Any] | None, delay_ms: int,
        options: dict[str, Any] | None = None, *, queue: str = DEFAULT_QUEUE,
    ) -> Job:
        """The seed's ``scheduleDelayedJob``: run after ``delay_ms``."""
        return await self.add_job(name, data, {**(options or {}), "delay": delay_ms}, queue=queue)

    async def schedule_recurring_job(self, name: str, cron: str | None = None, handler: Any = None,
                                     **rule: Any) -> Any:
        """The seed's ``scheduleRecurringJob(name, '0 9 * * *', handler)``; see
        ``ScheduleDesk.recurring`` for the rule's keywords."""
        return await self.schedules.recurring(name, cron, handler, **rule)

    # jobs ------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        return await self.store.get_job(job_id)

    async def queue_of_job(self, job_id: int) -> str | None:
        """The job's queue (None: no such job): from memory while it runs here, as
        the jobs a worker reports on do."""
        running = self.dispatcher.ledger.active.get(job_id)
        if running is not None:
            return running.queue
        job = await self.store.get_job(job_id)
        return None if job is None else job.queue

    async def job_dependents(self, job_id: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        """(id, name, state) of the jobs waiting on the job; NotFound for no such job."""
        return await self._of_a_job(job_id, await self.store.dependents(job_id, limit))

    async def job_log(self, job_id: int, after_seq: int = 0, limit: int = 1000) -> list[LogLine]:
        """The job's log lines numbered after ``after_seq``; NotFound for no such job."""
        return await self._of_a_job(job_id, await self.store.read_log(job_id, after_seq, limit))

    async def _of_a_job(self, job_id: int, found: list[T]) -> list[T]:
        """What was read of job ``job_id``; nothing read and no such job: NotFound."""
        if not found and await self.store.get_job(job_id) is None:
            raise NotFound(f"no job with id {job_id}")
        return found

    async def list_jobs(
        self, queue: str, state: JobState | None = None, name: str | None = None,
        limit: int = 100, after_id: int | None = None, search: str | None = None,
    ) -> list[Job]:
        """A page of the queue's jobs in id order after ``after_id``; ``search``: an
        expression of search.py (ValidationFailed when it is not one). See
        ``service.browse`` for every filter and the next page's cursor."""
        found = make_search(queue, state=state, name=name, q=search, limit=limit, by="id",
                            cursor=None if after_id is None else (after_id,))
        return (await self.browse.search(found)).jobs

    async def get_failed_jobs(self, limit: int = 10, *, queue: str = DEFAULT_QUEUE) -> list[Job]:
        return await self.store.failed_jobs(queue, limit)

    async def stuck_jobs(self, queue: str = DEFAULT_QUEUE) -> list[Job]:
        """Active jobs without a sign of life for longer than the stuck threshold."""
        found = [await self.store.get_job(i) for i in self.monitor.stuck_ids(queue, self.clock.now_ms())]
        return [job for job in found if job is not None and job.state is JobState.ACTIVE]

    def running_jobs(self, queue: str = DEFAULT_QUEUE, limit: int = 1000) -> list[tuple[ActiveJob, bool]]:
        """The queue's active jobs as the dispatcher knows them (oldest first), each
        with whether it is stuck; read from memory."""
        stuck = set(self.monitor.stuck_ids(queue, self.clock.now_ms()))
        active = sorted((a for a in self.running.active.values() if a.queue == queue), key=lambda a: a.id)
        return [(a, a.id in stuck) for a in active[:limit]]

    async def cancel_job(self, job_id: int) -> Job:
        return await self.dispatcher.outcomes.cancel(job_id)

    async def retry_job(self, job_id: int) -> Job:
        return await self.dispatcher.outcomes.retry(job_id)

    async def promote_job(self, job_id: int) -> Job:
        """A delayed job (a delay, a time, or a retry's backoff) runs now."""
        return await self.dispatcher.outcomes.promote(job_id)

    async def clean(
        self, grace_ms: int, status: str = "completed", limit: int | None = None,
        *, queue: str = DEFAULT_QUEUE,
    ) -> int:
        """Remove jobs of ``status`` that finished more than ``grace_ms`` ago."""
        if isinstance(grace_ms, bool) or not isinstance(grace_ms, int) or not 0 <= grace_ms <= MAX_DELAY_MS:
            raise ValidationFailed(f"grace must be a whole number of ms from 0 to {MAX_DELAY_MS}")
        if status not in ("completed", "failed", "cancelled", "expired"):
            raise ValidationFailed("status must be completed, failed, cancelled or expired")
        return await self.dispatcher.outcomes.clean(valid_queue(queue), JobState(status),
                                                    self.clock.now_ms() - grace_ms, limit)

    # queues ----------------------------------------------------------------------

    async def pause(self, queue: str = DEFAULT_QUEUE) -> None:
        await self.dispatcher.set_paused(valid_queue(queue), True)

    async def resume(self, queue: str = DEFAULT_QUEUE) -> None:
        await self.dispatcher.set_paused(valid_queue(queue), False)

    def is_paused(self, queue: str = DEFAULT_QUEUE) -> bool:
        q = self.dispatcher.queues.get(queue)
        return bool(q and q.paused)

    def queue_counts(self) -> list[tuple[str, bool, dict[JobState, int]]]:
        """Every queue in memory: its name, paused or not, and its counts by state."""
        return [(name, q.paused, dict(self.dispatcher.ledger.metrics.peek(name).counts))
                for name, q in sorted(self.dispatcher.queues.items())]

    def get_queue_metrics(self, queue: str = DEFAULT_QUEUE) -> dict[str, Any]:
        """The seed's ``getQueueMetrics``, from in-memory counters."""
        return self.dispatcher.ledger.metrics.snapshot(queue, self.clock.now_ms(), self.is_paused(queue))

    def health(self, queue: str = DEFAULT_QUEUE) -> HealthReport:
        return self.monitor.check(queue)

    def health_of_all(self) -> dict[str, HealthReport]:
        """Every queue's health, counting stuck jobs once for all of them."""
        now = self.clock.now_ms()
        stuck = self.monitor.stuck_counts(now)
        return {name: self.monitor.check(name, now, stuck.get(name, 0)) for name in self.dispatcher.queues}

    def reclaim_memory(self) -> int:
        """Forget queues that have no job in any state and no schedule (their memory
        comes back with their next job); the number forgotten."""
        return self.dispatcher.ledger.forget_idle(self.scheduler.queues())

    # watching --------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, maxsize: int, accept: Callable[[JobEvent], bool]) -> Iterator[Subscription]:
        """Job events as they happen, until the block ends (or the service stops)."""
        with self.events.subscribe(maxsize, accept) as subscription:
            yield subscription

    @property
    def events(self) -> EventBus:
        """The bus of job events: numbering, the kept events (see events.py)."""
        return self.dispatcher.ledger.events

    def prometheus(self, *, openmetrics: bool = False) -> str:
        """``GET /metrics``: the text format, or OpenMetrics when the scraper asks for it."""
        store = type(self.store).__name__.removesuffix("Store").lower()
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        return render(self.dispatcher, self.store.commit_stats, len(self.events), build_labels(store, loop),
                      openmetrics=openmetrics, replica=self.store.replica)

    async def audit(self) -> list[str]:
        """Differences between memory and the table (none, unless there is a bug)."""
        return await self.dispatcher.audit()

