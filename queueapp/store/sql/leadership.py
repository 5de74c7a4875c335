"""The leader's guard (the ``leadership`` table of a cluster, PostgreSQL only): work
done once per cluster is written under it, so a deposed leader that wakes late
changes nothing (store/postgres/cluster.py)."""

from __future__ import annotations


def leads(first: int) -> str:
    """A statement's guard: true only while node ?first holds term ?first+1 of a lease
    not run out at ?first+2."""
    node, term, now = first, first + 1, first + 2
    return f"EXISTS (SELECT 1 FROM leadership WHERE node = ?{node} AND term = ?{term} AND expires_at > ?{now})"
