"""The appliance as a Python library (the seed's QueueService and friends).

    service = QueueService(SqliteStore("jobs.db"))
    await service.start()
    job = await service.add_job("send-email", {"to": "a@example.com"}, {"priority": 2})
    metrics = service.get_queue_metrics()
    await service.stop()

The HTTP API is a thin layer over this class.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from .clock import Clock, from_datetime
from .dispatch import Dispatcher
from .errors import ValidationFailed
from .model import DEFAULT_ATTEMPTS, Job, JobState, NewJob, Schedule
from .options import LATEST_RUN_AT, MAX_DELAY_MS, JobOptions, PriorityFactors, ScheduleSpec, check_queue_name
from .priority import calculate_priority
from .recovery import LeaseReaper, recover_after_restart
from .scheduler import Scheduler
from .store import Store
from .workers.maintenance import register_maintenance
from .workers.registry import Handler, HandlerRegistry
from .workers.registry import registry as default_registry

DEFAULT_QUEUE = "default"


def validation_details(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic errors as the API's ``details``: the field path and what is wrong."""
    return [
        {"field": ".".join(str(p) for p in (*prefix, *e["loc"])) or None,
         "message": e["msg"].removeprefix("Value error, ")}
        for e in exc.errors(include_url=False)
    ]


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
    ) -> None:
        self.store = store
        # False: the scheduler and the lease reaper only move when their tick() is
        # called (tests drive them with a FakeClock).
        self.background = background
        self.clock = clock or Clock()
        self.registry = registry or default_registry
        self.dispatcher = Dispatcher(
            store, self.registry, self.clock, concurrency=concurrency, default_lease_ms=lease_ms
        )
        self.scheduler = Scheduler(self)
        self.reaper = LeaseReaper(self.dispatcher)
        register_maintenance(self.registry, self)
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the store, recover what a crash left running, start dispatching, the
        scheduler and the lease reaper."""
        await self.store.open()
        try:
            leased = await recover_after_restart(self.store, self.clock)
            await self.dispatcher.start(leased)
            await self.scheduler.start()
        except BaseException:
            await self.store.close()  # its writer thread would keep the process alive
            raise
        if self.background:
            self._loops = [
                asyncio.create_task(self.scheduler.run(), name="queueapp-scheduler"),
                asyncio.create_task(self.reaper.run(), name="queueapp-lease-reaper"),
            ]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop firing schedules and reaping leases, let running jobs finish (up to
        ``grace_s``), then close the store."""
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.dispatcher.stop(grace_s)
        await self.store.close()

    # building jobs -----------------------------------------------------------------

    def build_job(
        self,
        name: str,
        data: dict[str, Any] | None,
        options: JobOptions,
        factors: PriorityFactors | None = None,
        queue: str = DEFAULT_QUEUE,
        run_at: int | None = None,
    ) -> NewJob:
        """Turn validated input into a job to store: priority from the explicit option
        or the factors (see priority.py), attempts from the priority unless given.
        Jobs of a built-in type have their data checked here (ValidationFailed)."""
        try:
            self.registry.validate(name, data or {})
        except ValueError as exc:
            raise ValidationFailed(f"invalid data for a {name} job: {exc}",
                                   [{"field": "data", "message": str(exc)}]) from None
        now = self.clock.now_ms()
        priority = options.priority
        if priority is None and factors is not None:
            priority = calculate_priority(
                user_tier=factors.userTier,
                urgency=factors.urgency,
                business_impact=factors.businessImpact,
                deadline_ms=None if factors.deadline is None else from_datetime(factors.deadline),
                now_ms=now,
            )
        priority = int(priority or 3)
        if run_at is not None and run_at >= LATEST_RUN_AT:
            message = "a job's time must be before 2100-01-01T00:00:00Z"
            raise ValidationFailed(message, [{"field": "scheduledTime", "message": message}])
        return NewJob(
            queue=queue,
            name=name,
            data=data or {},
            priority=priority,
            attempts=options.attempts or DEFAULT_ATTEMPTS[priority],
            run_at=run_at if run_at is not None else now + options.delay,
            options=options.stored(),
            job_key=options.jobId,
        )

    @staticmethod
    def parse_options(
        options: dict[str, Any] | JobOptions | None,
        factors: dict[str, Any] | PriorityFactors | None = None,
    ) -> tuple[JobOptions, PriorityFactors | None]:
        try:
            if not isinstance(options, JobOptions):
                options = JobOptions.model_validate(options or {})
            if factors is not None and not isinstance(factors, PriorityFactors):
                factors = PriorityFactors.model_validate(factors)
        except ValidationError as exc:
            raise ValidationFailed("invalid job options", validation_details(exc)) from None
        return options, factors

    # the seed's operations ----------------------------------------------------------

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
        _check_name(name, data)
        check_queue_name(queue)
        parsed, factors = self.parse_options(options, priority_factors)
        added = await self.dispatcher.add([self.build_job(name, data, parsed, factors, queue)])
        return added[0].job

    async def schedule_job(
        self, name: str, data: dict[str, Any] | None, at: datetime,
        options: dict[str, Any] | None = None, *, queue: str = DEFAULT_QUEUE,
    ) -> Job:
        """The seed's ``scheduleJob``: run at a time (a past time runs at once)."""
        _check_name(name, data)
        parsed, _ = self.parse_options(options)
        try:
            run_at = from_datetime(at)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        added = await self.dispatcher.add([self.build_job(name, data, parsed, None, queue, run_at)])
        return added[0].job

    async def schedule_delayed_job(
        self, name: str, data: dict[str, Any] | None, delay_ms: int,
        options: dict[str, Any] | None = None, *, queue: str = DEFAULT_QUEUE,
    ) -> Job:
        """The seed's ``scheduleDelayedJob``: run after ``delay_ms``."""
        return await self.add_job(name, data, {**(options or {}), "delay": delay_ms}, queue=queue)

    async def schedule_recurring_job(
        self,
        name: str,
        cron: str | None = None,
        handler: Handler | None = None,
        *,
        data: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        every_ms: int | None = None,
        timezone: str = "UTC",
        missed: str = "skip",
        overlap: bool = True,
        job_name: str | None = None,
        queue: str = DEFAULT_QUEUE,
    ) -> Schedule:
        """The seed's ``scheduleRecurringJob(name, '0 9 * * *', handler)``: store a
        schedule (replacing one of the same name) and, when ``handler`` is given,
        register it to run the schedule's jobs in this process."""
        spec = self.parse_schedule({
            "name": name, "jobName": job_name, "data": data or {}, "options": options or {},
            "cron": cron, "everyMs": every_ms, "timezone": timezone, "missed": missed,
            "overlap": overlap,
        })
        if handler is not None:
            self.registry.register(spec.jobName or spec.name, handler)
        return await self.save_schedule(spec, queue)

    @staticmethod
    def parse_schedule(raw: dict[str, Any]) -> ScheduleSpec:
        try:
            return ScheduleSpec.model_validate({k: v for k, v in raw.items() if v is not None})
        except ValidationError as exc:
            raise ValidationFailed("invalid schedule", validation_details(exc)) from None

    async def save_schedule(self, spec: ScheduleSpec, queue: str = DEFAULT_QUEUE) -> Schedule:
        check_queue_name(queue)
        # Its runs' jobs must be valid now, not fail at every firing (ValidationFailed).
        self.build_job(spec.jobName or spec.name, spec.data, spec.options, None, queue)
        schedule = Schedule(
            queue=queue, name=spec.name, job_name=spec.jobName or spec.name, data=spec.data,
            options=spec.options.model_dump(exclude_defaults=True), cron=spec.cron,
            timezone=spec.timezone, every_ms=spec.everyMs, missed=spec.missed,
            overlap=spec.overlap, enabled=spec.enabled, anchor_at=0, next_run_at=None,
        )
        return await self.scheduler.upsert(schedule)

    async def get_job(self, job_id: int) -> Job | None:
        return await self.store.get_job(job_id)

    async def cancel_job(self, job_id: int) -> Job:
        return await self.dispatcher.cancel(job_id)

    async def retry_job(self, job_id: int) -> Job:
        return await self.dispatcher.retry(job_id)

    async def pause(self, queue: str = DEFAULT_QUEUE) -> None:
        await self.dispatcher.set_paused(check_queue_name(queue), True)

    async def resume(self, queue: str = DEFAULT_QUEUE) -> None:
        await self.dispatcher.set_paused(check_queue_name(queue), False)

    def reclaim_memory(self) -> int:
        """Forget queues that have no job in any state and no schedule (their memory
        comes back with their next job); the number forgotten."""
        return self.dispatcher.ledger.forget_idle(self.scheduler.queues())

    def is_paused(self, queue: str = DEFAULT_QUEUE) -> bool:
        q = self.dispatcher.queues.get(queue)
        return bool(q and q.paused)

    async def clean(
        self, grace_ms: int, status: str = "completed", limit: int | None = None,
        *, queue: str = DEFAULT_QUEUE,
    ) -> int:
        """Remove jobs of ``status`` that finished more than ``grace_ms`` ago."""
        if isinstance(grace_ms, bool) or not isinstance(grace_ms, int) or not 0 <= grace_ms <= MAX_DELAY_MS:
            raise ValidationFailed(f"grace must be a whole number of ms from 0 to {MAX_DELAY_MS}")
        if status not in ("completed", "failed", "cancelled"):
            raise ValidationFailed("status must be completed, failed or cancelled")
        return await self.dispatcher.clean(queue, JobState(status), grace_ms, limit)

    def get_queue_metrics(self, queue: str = DEFAULT_QUEUE) -> dict[str, Any]:
        """The seed's ``getQueueMetrics``, from in-memory counters."""
        return self.dispatcher.metrics.snapshot(queue, self.clock.now_ms(), self.is_paused(queue))

    async def get_failed_jobs(self, limit: int = 10, *, queue: str = DEFAULT_QUEUE) -> list[Job]:
        return await self.store.failed_jobs(queue, limit)


def _check_name(name: Any, data: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise ValidationFailed("name must be a string of 1 to 128 characters")
    if data is not None and not isinstance(data, dict):
        raise ValidationFailed("data must be a JSON object")
