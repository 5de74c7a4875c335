"""What the dispatcher is asked to do to one job or one queue's finished jobs, each
handed to the desk that does it (outcomes.py, leases.py): kept apart so that the
dispatcher itself is about ordering and starting jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..clock import Clock
from ..errors import Conflict
from ..model import Job, JobState
from ..retry import Failure
from ..store import Change
from .leases import LeaseDesk
from .outcomes import Outcomes


class Verbs:
    outcomes: Outcomes
    leases: LeaseDesk
    clock: Clock

    # the outcome of attempts, cancel and retry (see outcomes.py) --------------------

    async def complete(self, job_id: int, token: str, result: Any) -> Job:
        return await self.outcomes.complete(job_id, token, result)

    async def complete_many(self, items: list[tuple[int, str, Any]]) -> list[Job | Conflict]:
        return await self.outcomes.complete_many(items)

    async def fail(self, job_id: int, token: str, failure: Failure) -> Job:
        return await self.outcomes.fail(job_id, token, failure)

    async def release(self, job_id: int, token: str) -> Job:
        return await self.outcomes.release(job_id, token)

    async def heartbeat(self, job_id: int, token: str, progress: Any, lease_ms: int | None) -> Job:
        return await self.leases.heartbeat(job_id, token, progress, lease_ms)

    async def cancel(self, job_id: int) -> Job:
        return await self.outcomes.cancel(job_id)

    async def retry(self, job_id: int) -> Job:
        return await self.outcomes.retry(job_id)

    async def promote(self, job_id: int) -> Job:
        return await self.outcomes.promote(job_id)

    async def clean(self, queue: str, state: JobState, grace_ms: int, limit: int | None) -> int:
        return await self.outcomes.clean(queue, state, self.clock.now_ms() - grace_ms, limit)

    # external workers --------------------------------------------------------------

    async def lease(
        self, queue: str, names: list[str] | None, max_jobs: int, lease_ms: int, wait_ms: int,
        alive: Callable[[], bool] = lambda: True,
    ) -> list[Job]:
        return await self.leases.lease(queue, names, max_jobs, lease_ms, wait_ms, alive)

    async def rescue_expired(self, message: str) -> list[Change]:
        return await self.leases.rescue_expired(message)

    def next_lease_expiry(self) -> int | None:
        return self.leases.next_expiry()
