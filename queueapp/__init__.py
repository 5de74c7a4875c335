"""queueapp: a single-node job queue appliance over a durable SQLite store.

The names below are imported when first used (PEP 562), so that a command that
needs none of them (``queueapp jobs ls``, ``queueapp --version``) does not load the
service, the stores and the dispatcher before it starts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .clock import Clock, FakeClock
    from .model import Job, JobState, Priority
    from .priority import calculate_priority, get_job_options
    from .retry import BackoffPolicy, calculate_backoff_delay, get_default_strategy
    from .service import QueueService
    from .store import SqliteStore, open_store
    from .workers import HandlerRegistry, JobContext, UnrecoverableError, registry

# name -> the module that defines it
_LAZY = {
    "Clock": ".clock", "FakeClock": ".clock",
    "Job": ".model", "JobState": ".model", "Priority": ".model",
    "calculate_priority": ".priority", "get_job_options": ".priority",
    "BackoffPolicy": ".retry", "calculate_backoff_delay": ".retry", "get_default_strategy": ".retry",
    "QueueService": ".service",
    "SqliteStore": ".store", "open_store": ".store",
    "HandlerRegistry": ".workers", "JobContext": ".workers", "UnrecoverableError": ".workers", "registry": ".workers",
}

__all__ = [
    "__version__",
    "BackoffPolicy",
    "Clock",
    "FakeClock",
    "HandlerRegistry",
    "Job",
    "JobContext",
    "JobState",
    "Priority",
    "QueueService",
    "SqliteStore",
    "UnrecoverableError",
    "calculate_backoff_delay",
    "calculate_priority",
    "get_default_strategy",
    "get_job_options",
    "open_store",
    "registry",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'queueapp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
