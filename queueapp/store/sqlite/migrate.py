"""Applies the numbered SQL files of migrations/ in order, once each.

Each file runs in its own transaction together with its row in
``schema_migrations``, so a crash mid-migration leaves the database at the
previous version, never half-way.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _migration_files(engine: str) -> list[Traversable]:
    """The files of migrations/ (SQLite) or of migrations/postgres/."""
    try:
        root: Traversable = resources.files("queueapp._migrations")
        return list((root if engine == "sqlite" else root / engine).iterdir())
    except ModuleNotFoundError:
        pass
    here = Path(__file__).resolve()
    # The single executable carries them as data beside the package; a source checkout
    # that was not installed has the top-level folder.
    for folder in (here.parents[2] / "_migrations", here.parents[3] / "migrations"):
        if folder.is_dir():
            return list(folder.iterdir() if engine == "sqlite" else (folder / engine).iterdir())
    raise RuntimeError("the schema migrations are missing from this installation")


def available_migrations(engine: str = "sqlite") -> list[Migration]:
    """The numbered migrations of ``engine`` ("sqlite" or "postgres"), in order."""
    found = []
    for entry in _migration_files(engine):
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(conn: sqlite3.Connection) -> list[Migration]:
    """Apply what is missing; return the migrations applied now."""
    done = applied_versions(conn)
    applied = []
    for migration in available_migrations():
        if migration.version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT first; run the statements one by one instead,
            # inside our transaction.
            for statement in _split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)"
                " VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (migration.version, migration.name),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration)
    return applied


def _split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement knows
    about semicolons inside strings and triggers)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer[:80]!r}")
    return statements
