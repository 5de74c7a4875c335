"""Statements on the queues table: a queue's existence and its pause, for either engine."""

from __future__ import annotations

from .dialect import Dialect
from .plan import Statement, run


def set_paused(d: Dialect, queue: str, paused: bool, now: int) -> Statement:
    return run("INSERT INTO queues (name, paused, created_at) VALUES (?1, ?2, ?3)"
               " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused", queue, d.boolean(paused), now)


def ensure(d: Dialect, queue: str, now: int) -> Statement:
    return run("INSERT INTO queues (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING", queue, now)
