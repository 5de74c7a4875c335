"""Built-in maintenance jobs run by the appliance itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import JobState
from .registry import HandlerRegistry, JobContext

if TYPE_CHECKING:
    from ..service import QueueService

CLEAN_JOB = "queueapp.clean"


def register_maintenance(registry: HandlerRegistry, service: QueueService) -> None:
    async def clean(job: JobContext) -> dict[str, Any]:
        """Remove old finished jobs in every queue (the seed's midnight cleanup).
        ``data``: completedOlderThanMs, failedOlderThanMs, cancelledOlderThanMs (each
        optional: absent leaves that state alone)."""
        ages = {
            JobState.COMPLETED: job.data.get("completedOlderThanMs"),
            JobState.FAILED: job.data.get("failedOlderThanMs"),
            JobState.CANCELLED: job.data.get("cancelledOlderThanMs"),
        }
        removed: dict[str, int] = {}
        for queue in sorted(service.dispatcher.queues):
            for state, age in ages.items():
                if isinstance(age, int) and age >= 0:
                    n = await service.clean(age, str(state), queue=queue)
                    if n:
                        removed[f"{queue}.{state}"] = n
        return {"removed": removed, "total": sum(removed.values())}

    if CLEAN_JOB not in registry:
        registry.register(CLEAN_JOB, clean)
