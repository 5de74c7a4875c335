"""Two parts of the service facade: recurring schedules, and the protocol of
external workers (lease, heartbeat, complete, fail, release). Each is reached as
``service.schedules`` and ``service.workers``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from .background.scheduler import Scheduler
from .dispatch import Dispatcher
from .dispatch.leases import UNNAMED_WORKER
from .enqueue import DEFAULT_QUEUE, JobBuilder, validation_details
from .errors import NotFound, QueueAppError, ValidationFailed
from .model import Job, Schedule
from .options import ScheduleSpec, check_queue_name
from .redact import redact
from .retry import Failure
from .store import Store
from .workers.registry import Handler, HandlerRegistry


class ScheduleDesk:
    def __init__(self, store: Store, scheduler: Scheduler, builder: JobBuilder, registry: HandlerRegistry) -> None:
        self.store = store
        self.scheduler = scheduler
        self.builder = builder
        self.registry = registry

    async def recurring(
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
        """Store a schedule (replacing one of the same name) and, when ``handler`` is
        given, register it to run the schedule's jobs in this process."""
        spec = parse_schedule({
            "name": name, "jobName": job_name, "data": data or {}, "options": options or {},
            "cron": cron, "everyMs": every_ms, "timezone": timezone, "missed": missed,
            "overlap": overlap,
        })
        if handler is not None:
            self.registry.register(spec.jobName or spec.name, handler)
        return await self.save(spec, queue)

    async def save(self, spec: ScheduleSpec, queue: str = DEFAULT_QUEUE) -> Schedule:
        check_queue_name(queue)
        # Its runs' jobs must be valid now, not fail at every firing (ValidationFailed).
        self.builder.build(spec.jobName or spec.name, spec.data, spec.options, None, queue)
        schedule = Schedule(
            queue=queue, name=spec.name, job_name=spec.jobName or spec.name, data=spec.data,
            options=spec.options.model_dump(exclude_defaults=True), cron=spec.cron,
            timezone=spec.timezone, every_ms=spec.everyMs, missed=spec.missed,
            overlap=spec.overlap, enabled=spec.enabled, anchor_at=0, next_run_at=None,
        )
        return await self.scheduler.upsert(schedule)

    async def list(self, queue: str | None) -> list[Schedule]:
        return await self.store.list_schedules(queue)

    async def get(self, queue: str, name: str) -> Schedule:
        schedule = await self.store.get_schedule(queue, name)
        if schedule is None:
            raise NotFound(f"no schedule {name!r} in queue {queue!r}")
        return schedule

    async def remove(self, queue: str, name: str) -> None:
        await self.scheduler.remove(queue, name)

    async def set_enabled(self, queue: str, name: str, enabled: bool) -> Schedule:
        return await self.scheduler.set_enabled(queue, name, enabled)

    async def run_now(self, queue: str, name: str) -> Job:
        """A run now, besides the rule; the job is validated as every run's is."""
        return await self.scheduler.run_now(queue, name)


def parse_schedule(raw: dict[str, Any]) -> ScheduleSpec:
    try:
        return ScheduleSpec.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        raise ValidationFailed("invalid schedule", validation_details(exc)) from None


class WorkerDesk:
    """What an external worker asks of the appliance."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    @property
    def default_lease_ms(self) -> int:
        return self.dispatcher.leases.default_lease_ms

    async def lease(
        self, queue: str, names: list[str] | None, max_jobs: int, lease_ms: int | None, wait_ms: int,
        alive: Callable[[], bool] = lambda: True, worker: str | None = None,
    ) -> list[Job]:
        """Up to ``max_jobs`` due jobs for ``worker`` (None: unnamed), waiting up to
        ``wait_ms`` for one; ``alive`` says whether the asker is still there."""
        return await self.dispatcher.leases.lease(queue, names, max_jobs, lease_ms or self.default_lease_ms,
                                                  wait_ms, alive, worker or UNNAMED_WORKER)

    async def heartbeat(self, job_id: int, token: str, progress: Any, lease_ms: int | None) -> Job:
        return await self.dispatcher.leases.heartbeat(job_id, token, progress, lease_ms)

    async def complete(self, job_id: int, token: str, result: Any) -> Job:
        await self._known(job_id)
        return await self.dispatcher.outcomes.complete(job_id, token, result)

    async def complete_many(self, items: list[tuple[int, str, Any]]) -> list[Job | QueueAppError]:
        """Completions answered each on its own (a job, or the error its single
        completion would raise); the jobs this appliance knows active are stored by
        one change."""
        answers: list[Job | QueueAppError | None] = [None] * len(items)
        known = []
        for index, (job_id, _, _) in enumerate(items):
            try:
                await self._known(job_id)
                known.append(index)
            except NotFound as exc:
                answers[index] = exc
        if known:
            done = await self.dispatcher.outcomes.complete_many([items[i] for i in known])
            for index, answer in zip(known, done, strict=True):
                answers[index] = answer
        return answers  # type: ignore[return-value]

    async def fail(self, job_id: int, token: str, failure: Failure) -> Job:
        """A worker's failure, its message redacted as an in-process handler's is (a
        URL's credentials and query values, secret settings)."""
        await self._known(job_id)
        return await self.dispatcher.outcomes.fail(job_id, token, replace(failure, message=redact(failure.message)))

    async def release(self, job_id: int, token: str) -> Job:
        await self._known(job_id)
        return await self.dispatcher.outcomes.release(job_id, token)

    async def log(self, job_id: int, token: str, lines: list[str]) -> int:
        """Lines after the log of the job leased under ``token``; its last line's number."""
        await self._known(job_id)
        return await self.dispatcher.outcomes.append_log(job_id, token, lines)

    async def _known(self, job_id: int) -> None:
        """404 for an id that was never a job (a stale token on a real job is a 409)."""
        if job_id not in self.dispatcher.active and await self.store.get_job(job_id) is None:
            raise NotFound(f"no job with id {job_id}")
