"""Storage. All SQL of the appliance lives in this package."""

import asyncio
from pathlib import Path

from .actions import ELIGIBLE, Acted, Selection
from .base import (
    Added,
    AddedRun,
    AuditEntry,
    Change,
    CommitStats,
    FinishedSample,
    LogLine,
    NameFigures,
    PendingJob,
    QueueSettings,
    ReplicaStatus,
    Report,
    Store,
    TableSnapshot,
    Then,
    added_ids,
    added_jobs,
)
from .lock import DatabaseInUse, DatabaseLock, NoFileLock
from .postgres.location import postgres_url, shown
from .shared import NodeSeen, SharedStore
from .sqlite import replica
from .sqlite.check import job_count, table_problems
from .sqlite.connection import connect
from .sqlite.migrate import migrate
from .sqlite.replica import Restored
from .sqlite.store import SqliteStore, restore_file
from .standbys import StandbyGate

__all__ = [
    "ELIGIBLE",
    "Acted",
    "Selection",
    "Added",
    "AddedRun",
    "AuditEntry",
    "added_ids",
    "added_jobs",
    "Change",
    "CommitStats", "ReplicaStatus", "StandbyGate",
    "DatabaseInUse",
    "DatabaseLock",
    "FinishedSample",
    "LogLine",
    "NameFigures",
    "PendingJob",
    "QueueSettings",
    "Report",
    "NodeSeen",
    "SharedStore",
    "SqliteStore",
    "Store",
    "TableSnapshot",
    "Then",
    "check_database",
    "check_location",
    "postgres_url",
    "engine_version",
    "lock_database",
    "migrate_database",
    "parse_location",
    "open_store",
    "restore_database",
]


def engine_version() -> str:
    """The database engine this build carries, for ``queueapp --version``."""
    return f"SQLite {sqlite_version()}"


def sqlite_version() -> str:
    """The version of the SQLite library this build carries."""
    import sqlite3

    return sqlite3.sqlite_version


def parse_location(db: str) -> Path:
    """The SQLite file a ``db`` setting names: a path, or ``sqlite:///path``. Raises
    ValueError for any other scheme, saying what is supported."""
    if db.startswith("sqlite://"):
        path = db.removeprefix("sqlite://")
        if not path.startswith("/"):
            raise ValueError(f"db {db!r}: write sqlite:///relative/path or sqlite:////absolute/path")
        return Path(path[1:])  # sqlite:///rel/q.db is rel/q.db; sqlite:////abs/q.db is /abs/q.db
    scheme, sep, _ = db.partition("://")
    if sep:
        if postgres_url(db) is not None:
            raise ValueError(f"db {shown(db)} is a PostgreSQL database, not a SQLite file (back it up"
                             " and check it with PostgreSQL's own tools)")
        raise ValueError(f"db {db!r}: unknown scheme {scheme!r}; give a file path, sqlite:///path"
                         " or postgresql://user@host:5432/dbname")
    if not db.strip():
        raise ValueError("db must name a file")
    return Path(db)


def check_location(db: str) -> None:
    """ValueError when ``db`` names no database this build can use."""
    if postgres_url(db) is None:
        parse_location(db)


def open_store(db: str, durability: str = "full", lock: DatabaseLock | None = None,
               cluster: bool = False, replicate_to: str = "", replication: str = "async",
               standbys: StandbyGate | None = None) -> Store:
    """The store for a database location; ``lock``: already taken by the caller;
    ``cluster``: a node of several on one PostgreSQL database; ``replicate_to``: a
    folder every commit of a SQLite database is copied to (``replication`` sync or
    async)."""
    url = postgres_url(db)
    if cluster and url is None:
        raise ValueError("cluster mode needs a PostgreSQL database (db = postgresql://...); a SQLite file is"
                         " served by one process")
    if url is not None:
        if replicate_to:
            raise ValueError("replicate_to copies a SQLite database; PostgreSQL has replication of its own")
        from .postgres.store import PostgresStore  # needs asyncpg: the postgres extra

        return PostgresStore(url, cluster=cluster, durability=durability)
    return SqliteStore(parse_location(db), durability, lock=lock, replicate_to=replicate_to or None,
                       replication=replication, standbys=standbys)


def lock_database(db: str, cluster: bool = False) -> DatabaseLock:
    """Take the database's single-appliance lock (DatabaseInUse when taken). A
    PostgreSQL database's is taken by its store when it opens: this only looks
    whether another node holds it (or the server cannot be reached: OSError)."""
    url = postgres_url(db)
    if url is not None:  # its store holds a lock in the database itself; here, a look first
        from .postgres.store import check_free

        asyncio.run(check_free(url, cluster))
        return NoFileLock()
    return DatabaseLock(parse_location(db)).acquire()


def migrate_database(db: str) -> list[str]:
    """Create or upgrade the schema at a database location; the migrations applied."""
    url = postgres_url(db)
    if url is not None:
        from .postgres.store import migrate_url

        return asyncio.run(migrate_url(url))
    with DatabaseLock(parse_location(db)):
        conn = connect(parse_location(db))
        try:
            return [f"{m.version:04d}_{m.name}" for m in migrate(conn)]
        finally:
            conn.close()


def restore_database(backup: str, db: str) -> None:
    """Bring a backup back as the database at ``db`` (refused while an appliance
    serves it), then bring its schema up to date. Raises ValueError for a backup that
    cannot serve, DatabaseInUse when the database is in use."""
    path = parse_location(db)
    with DatabaseLock(path):
        restore_file(Path(backup), path)
        conn = connect(path)
        try:
            migrate(conn)
        finally:
            conn.close()


def restore_replica(folder: str, db: str, to_ms: int | None = None) -> Restored:
    """Rebuild the database at ``db`` (a SQLite file that must not exist) from a
    replica folder, as of its last commit or the last one made by ``to_ms``; then
    bring its schema up to date. Raises ValueError when it cannot."""
    path = parse_location(db)
    with DatabaseLock(path):
        restored = replica.restore(Path(folder), path, to_ms)
        conn = connect(path)
        try:
            migrate(conn)
        finally:
            conn.close()
    return restored


def replica_listing(folder: str) -> list[tuple[str, list[tuple[str, int]]]]:
    """A replica folder's generations and their files' sizes (for a standby)."""
    return replica.listing(Path(folder))


def read_replica_file(folder: str, generation: str, name: str, offset: int) -> bytes:
    """A replica file's bytes from ``offset`` (ValueError: no such file name)."""
    return replica.read_file(Path(folder), generation, name, offset)


def check_database(db: str) -> tuple[int, list[str]]:
    """The table's invariants (see store/sqlite/check.py), with the appliance stopped: the
    number of jobs and the problems found."""
    path = parse_location(db)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    with DatabaseLock(path):
        conn = connect(path)
        try:
            return job_count(conn), table_problems(conn)
        finally:
            conn.close()
