"""Storage. All SQL of the appliance lives in this package."""

from .base import Added, Change, FailPlan, FinishedSample, PendingJob, QueueSettings, Store
from .sqlite import SqliteStore

__all__ = [
    "Added",
    "Change",
    "FailPlan",
    "FinishedSample",
    "PendingJob",
    "QueueSettings",
    "SqliteStore",
    "Store",
    "open_store",
]


def open_store(path: str, durability: str = "full") -> Store:
    """The store for a database location (today: a SQLite file path)."""
    return SqliteStore(path, durability)
