"""Storage. All SQL of the appliance lives in this package."""

from pathlib import Path

from .base import Added, Change, CommitStats, FinishedSample, PendingJob, QueueSettings, Store, Then
from .connection import connect
from .migrate import migrate
from .sqlite import SqliteStore, restore_file

__all__ = [
    "Added",
    "Change",
    "CommitStats",
    "FinishedSample",
    "PendingJob",
    "QueueSettings",
    "SqliteStore",
    "Store",
    "Then",
    "migrate_database",
    "open_store",
    "restore_database",
]


def open_store(path: str, durability: str = "full") -> Store:
    """The store for a database location (today: a SQLite file path)."""
    return SqliteStore(path, durability)


def migrate_database(path: str) -> list[str]:
    """Create or upgrade the schema at a database location; the migrations applied."""
    conn = connect(path)
    try:
        return [f"{m.version:04d}_{m.name}" for m in migrate(conn)]
    finally:
        conn.close()


def restore_database(backup: str, path: str) -> None:
    """Bring a backup back as the database at ``path`` (the appliance stopped), then
    bring its schema up to date. Raises ValueError for a backup that cannot serve."""
    restore_file(Path(backup), Path(path))
    migrate_database(path)
