"""The statements of the ``api_keys`` table, for either engine."""

from __future__ import annotations

from typing import Any

from ...access import ApiKey
from ...jsonfast import dumps, loads
from .dialect import Dialect
from .plan import Statement, row, rows, value

COLUMNS = ("id, name, roles, queues, note, created_at, created_by, expires_at, revoked_at, secret_hash,"
           " previous_hash, previous_until, rotated_at")


def every(d: Dialect) -> Statement:
    return rows(f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id")


def live_count(d: Dialect) -> Statement:
    return value("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")


def insert(d: Dialect, k: ApiKey) -> Statement:
    """The key, unless a key not revoked has its name (then no row)."""
    return row(
        f"INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8{d.bigint}, NULL, ?9, NULL, NULL,"
        " NULL) ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING id",
        k.id, k.name, ",".join(k.roles), None if k.queues is None else dumps(list(k.queues)), k.note,
        k.created_at, k.created_by, k.expires_at, k.secret_hash)


def revoke(d: Dialect, key_id: str, now: int) -> Statement:
    """Revoke the key (a second revoke keeps the first's time); the key."""
    return row(f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1 RETURNING {COLUMNS}",
               key_id, now)


def rotate(d: Dialect, key_id: str, secret_hash: str, previous_until: int | None, now: int) -> Statement:
    """A new secret for a key not revoked; the one before stays good until
    ``previous_until`` (None: not at all). The key, or no row."""
    return row(
        f"UPDATE api_keys SET previous_hash = CASE WHEN ?3{d.bigint} IS NULL THEN NULL ELSE secret_hash END,"
        f" previous_until = ?3{d.bigint}, secret_hash = ?2, rotated_at = ?4"
        f" WHERE id = ?1 AND revoked_at IS NULL RETURNING {COLUMNS}",
        key_id, secret_hash, previous_until, now)


def row_to_key(r: Any) -> ApiKey:
    return ApiKey(
        id=r[0], name=r[1], roles=tuple(r[2].split(",")), queues=None if r[3] is None else tuple(loads(r[3])),
        note=r[4], created_at=r[5], created_by=r[6], expires_at=r[7], revoked_at=r[8], secret_hash=r[9],
        previous_hash=r[10], previous_until=r[11], rotated_at=r[12],
    )
