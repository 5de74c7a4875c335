"""The statements of the ``audit`` table: operator changes, newest first."""

from __future__ import annotations

from typing import Any

from ...jsonfast import dumps, loads
from ..records import AuditEntry
from .dialect import Dialect
from .plan import Statement, count, rows, run

COLUMNS = "id, at, actor, via, address, queue, action, target, changed, detail"


def record(d: Dialect, e: AuditEntry) -> Statement:
    return run("INSERT INTO audit (at, actor, via, address, queue, action, target, changed, detail)"
               f" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9{d.json})",
               e.at, e.actor, e.via, e.address, e.queue, e.action, e.target, e.changed, dumps(e.detail))


def page(d: Dialect, queue: str | None, before_id: int | None, limit: int) -> Statement:
    """The newest entries (of ``queue``, when given) before ``before_id``."""
    where, params = [], []
    for column, op, value in (("queue", "=", queue), ("id", "<", before_id)):
        if value is not None:
            params.append(value)
            where.append(f"{column} {op} ?{len(params)}")
    params.append(limit)
    conditions = f" WHERE {' AND '.join(where)}" if where else ""
    return rows(f"SELECT {COLUMNS} FROM audit{conditions} ORDER BY id DESC LIMIT ?{len(params)}", *params)


def prune(d: Dialect, before: int) -> Statement:
    return count("DELETE FROM audit WHERE at < ?1", before)


def row_to_entry(r: Any) -> AuditEntry:
    detail = r[9]
    return AuditEntry(at=r[1], actor=r[2], via=r[3], address=r[4], queue=r[5], action=r[6], target=r[7],
                      changed=r[8], detail=loads(detail) if isinstance(detail, str) else dict(detail), id=r[0])
