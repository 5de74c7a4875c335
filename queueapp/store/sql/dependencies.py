"""Statements on ``job_dependencies``: an edge per unfinished dependency of a blocked
job (options.dependsOn), for either engine."""

from __future__ import annotations

from .dialect import Dialect
from .plan import Statement, rows, run, value

# Edges whose dependency has ended or is gone: (dependency, how it ended).
LINGERING = (
    "SELECT DISTINCT d.depends_on, coalesce(j.state, 'deleted') FROM job_dependencies d"
    " LEFT JOIN jobs j ON j.id = d.depends_on"
    " WHERE j.id IS NULL OR j.state NOT IN ('waiting', 'delayed', 'active', 'blocked')"
)


def lingering(d: Dialect) -> Statement:
    return rows(LINGERING)


def take_edges(d: Dialect, depends_on: int) -> Statement:
    """The edges to ``depends_on`` removed: the ids of the jobs that waited on it."""
    return rows("DELETE FROM job_dependencies WHERE depends_on = ?1 RETURNING job_id", depends_on)


def drop_edges(d: Dialect, job_id: int) -> Statement:
    """Every edge of ``job_id`` removed (it no longer waits)."""
    return run("DELETE FROM job_dependencies WHERE job_id = ?1", job_id)


def waits(d: Dialect, job_id: int) -> Statement:
    """1 while ``job_id`` has an edge left, else None."""
    return value("SELECT 1 FROM job_dependencies WHERE job_id = ?1 LIMIT 1", job_id)


def awaited(d: Dialect, ids: list[int]) -> Statement:
    """Those of ``ids`` some job waits on."""
    return rows(f"SELECT DISTINCT depends_on FROM job_dependencies WHERE {d.one_of('depends_on', 1)}", d.ids(ids))


def dependents(d: Dialect, job_id: int, limit: int) -> Statement:
    """(id, name, state) of the jobs that wait on ``job_id``, in id order."""
    return rows("SELECT j.id, j.name, j.state FROM job_dependencies e JOIN jobs j ON j.id = e.job_id"
                " WHERE e.depends_on = ?1 ORDER BY j.id LIMIT ?2", job_id, limit)
