"""Opening the SQLite file, with every pragma in one place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DURABILITY_PRAGMA = {
    # fsync the WAL at every commit: an acknowledged job survives a power loss.
    "full": "FULL",
    # fsync only at checkpoints: an acknowledged job survives a crash of the process
    # (kill -9) but the last commits may be lost if the machine loses power.
    "normal": "NORMAL",
}


def connect(path: str | Path, durability: str = "full", *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves)."""
    if durability not in DURABILITY_PRAGMA:
        raise ValueError(f"durability must be full or normal, not {durability!r}")
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=5.0
    )
    apply_pragmas(conn, durability, readonly=readonly)
    return conn


def apply_pragmas(conn: sqlite3.Connection, durability: str, *, readonly: bool = False) -> None:
    # WAL: readers (the API, sqlite3 on the command line) never block the writer, and
    # a commit is one sequential append instead of a rewrite of the database pages.
    conn.execute("PRAGMA journal_mode=WAL")
    # The durability setting: FULL fsyncs every commit, NORMAL only at checkpoints.
    conn.execute(f"PRAGMA synchronous={DURABILITY_PRAGMA[durability]}")
    # Someone running sqlite3 on the file may hold a lock for a moment: wait for it
    # instead of failing the write.
    conn.execute("PRAGMA busy_timeout=5000")
    # Constraints declared in migrations are enforced, not decorative.
    conn.execute("PRAGMA foreign_keys=ON")
    # Temporary b-trees for sorting stay in memory; they are small and short-lived.
    conn.execute("PRAGMA temp_store=MEMORY")
    # 32 MiB of page cache keeps the hot parts of the indexes in memory.
    conn.execute("PRAGMA cache_size=-32768")
    if readonly:
        for pragma in READER_PRAGMAS:
            conn.execute(pragma)


READER_PRAGMAS = (
    # Wait for a writer's lock (a checkpoint, sqlite3 on the file) instead of failing.
    "PRAGMA busy_timeout=5000",
    # The read connection must never write, whatever a bug in a query might try.
    "PRAGMA query_only=ON",
    "PRAGMA cache_size=-32768",
)
