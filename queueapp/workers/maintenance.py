"""Built-in maintenance jobs run by the appliance itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..model import JobState
from .registry import HandlerRegistry, JobContext

CLEAN_JOB = "queueapp.clean"

# clean(grace_ms, state, queue) -> jobs removed
Clean = Callable[[int, str, str], Awaitable[int]]


def register_maintenance(
    registry: HandlerRegistry, clean: Clean, queues: Callable[[], Iterable[str]],
    prune_history: Callable[[], Awaitable[int]] | None = None,
) -> None:
    """``queueapp.clean`` on ``registry``: ``clean`` removes old finished jobs of one
    queue, ``queues`` names the queues there are, ``prune_history`` removes metrics
    history older than a week."""

    async def clean_all(job: JobContext) -> dict[str, Any]:
        """Remove old finished jobs in every queue (the seed's midnight cleanup).
        ``data``: completedOlderThanMs, failedOlderThanMs, cancelledOlderThanMs (each
        optional: absent leaves that state alone)."""
        ages = {
            JobState.COMPLETED: job.data.get("completedOlderThanMs"),
            JobState.FAILED: job.data.get("failedOlderThanMs"),
            JobState.CANCELLED: job.data.get("cancelledOlderThanMs"),
        }
        removed: dict[str, int] = {}
        for queue in sorted(queues()):
            for state, age in ages.items():
                if isinstance(age, int) and not isinstance(age, bool) and age >= 0:
                    n = await clean(age, str(state), queue)
                    if n:
                        removed[f"{queue}.{state}"] = n
        pruned = await prune_history() if prune_history is not None else 0
        return {"removed": removed, "total": sum(removed.values()), "historyRowsPruned": pruned}

    if CLEAN_JOB not in registry:
        registry.register(CLEAN_JOB, clean_all)
