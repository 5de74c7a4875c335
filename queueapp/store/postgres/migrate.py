"""Applies migrations/postgres/ in order, once each, each file in its own
transaction together with its row in ``schema_migrations``, so a crash mid-migration
leaves the database at the previous version. Nodes that start together take an
advisory lock first: one applies, the others find the work done."""

from __future__ import annotations

import time
from typing import Any

from ..sqlite.migrate import Migration, available_migrations

# pg_advisory_lock key of schema changes: "queueapp" in ASCII, folded into 63 bits.
MIGRATION_LOCK = int.from_bytes(b"queueapp", "big") & (2**63 - 1)


async def migrate(conn: Any) -> list[Migration]:
    """Apply what is missing over an asyncpg connection; return what was applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for migration in available_migrations("postgres"):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)  # a script: the simple protocol runs it whole
                await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                                   migration.version, migration.name, time.time_ns() // 1_000_000)
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
