"""Writes to PostgreSQL one after another on one connection, each in its own
transaction, its post-commit hook (``then``) run right after its commit and before
the next write starts: memory follows the table in commit order, as with the SQLite
store's single writer. A write goes on to its commit and hook even when its caller
stops waiting. Reads use a pool of their own and never wait for writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import QueueAppError, StoreUnavailable
from ..lock import DatabaseInUse
from ..records import CommitStats

Write = Callable[..., Awaitable[Any]]


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the store cannot take writes: {exc}")


class OrderedWriter:
    def __init__(self, connect: Callable[[], Awaitable[Any]]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.stats = CommitStats()

    async def start(self) -> None:
        self._conn = await self._connect()

    async def submit(self, write: Write, *args: Any, then: Callable[[Any], Any] | None = None) -> Any:
        """``write(conn, *args)`` in a transaction of its own; ``then(result)`` after
        its commit. Raises what the write raised (nothing committed) or
        StoreUnavailable when the database cannot be reached."""
        if self._closed:
            raise StoreUnavailable("the store is shutting down")
        task = asyncio.ensure_future(self._run(write, args, then))
        return await asyncio.shield(task)

    async def _run(self, write: Write, args: tuple[Any, ...], then: Callable[[Any], Any] | None) -> Any:
        async with self._lock:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                started = time.perf_counter()
                async with self._conn.transaction():
                    result = await write(self._conn, *args)
                self._count(started)
            except (QueueAppError, ValueError, LookupError):
                raise  # the write's own refusal: nothing was committed
            except DatabaseInUse as exc:  # reconnected, and another node holds the database now
                raise StoreUnavailable(str(exc)) from exc
            except (TimeoutError, OSError) as exc:
                raise unavailable(exc) from exc
            except Exception as exc:  # asyncpg's errors: the database refused or went away
                if type(exc).__module__.startswith("asyncpg"):
                    raise unavailable(exc) from exc
                raise
            if then is not None:
                then(result)
            return result

    def _count(self, started: float) -> None:
        took = (time.perf_counter() - started) * 1000
        stats = self.stats
        stats.commits += 1
        stats.ops += 1
        stats.last_commit_ms = took
        stats.total_commit_ms += took
        stats.latency.observe(took)

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
