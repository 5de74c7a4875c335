"""Writes to PostgreSQL on one connection, in order, with group commit: the writes
waiting when the connection frees up go into one transaction, each inside a
savepoint of its own (one that raises is rolled back alone and its caller told), one
commit for them all, then each write's post-commit hook (``then``) in order, before
the next batch starts. So memory follows the table in commit order, as with the
SQLite store's single writer, and a burst of enqueues costs one commit, not one
each. A write goes on to its commit and hook even when its caller stops waiting.
Reads use a pool of their own and never wait for writes."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ...errors import QueueAppError, StoreUnavailable, ValidationFailed
from ..lock import DatabaseInUse
from ..records import CommitStats

Write = Callable[..., Awaitable[Any]]
# Writes of one kind merged into one statement: (connection, each write's args) to
# each write's result, in order.
Merge = Callable[[Any, list[tuple[Any, ...]]], Awaitable[list[Any]]]
MAX_BATCH = 256  # writes in one transaction: bounds how long one commit holds the others


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the store cannot take writes: {exc}")


# SQLSTATEs of text PostgreSQL cannot hold (U+0000 in TEXT or in JSONB): the input's
# fault, not the database's, so the caller hears 400, not 503.
_UNSTORABLE = ("22021", "22P05")


@cache
def connection_errors() -> tuple[type[BaseException], ...]:
    """What says the database could not be reached or went away (down, restarting,
    shutting down, the network), rather than refused a statement."""
    import asyncpg

    return (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            asyncpg.exceptions.OperatorInterventionError)


def connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, connection_errors())


def unstorable(exc: BaseException) -> ValidationFailed | None:
    if getattr(exc, "sqlstate", None) in _UNSTORABLE:
        return ValidationFailed("PostgreSQL cannot store the character U+0000 (NUL) in text or JSON: remove it"
                                " from names, data, results and messages")
    return None


@dataclass(slots=True)
class _Op:
    write: Write
    args: tuple[Any, ...]
    then: Callable[[Any], Any] | None
    merge: Merge | None = None
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class OrderedWriter:
    def __init__(self, connect: Callable[[], Awaitable[Any]],
                 housekeeping: tuple[Write, int] | None = None) -> None:
        """``housekeeping``: a write run in a transaction of its own after every so
        many writes (the counts' fold, which keeps their deltas few)."""
        self._connect = connect
        self._housekeeping = housekeeping
        self._since_housekeeping = 0
        self._conn: Any = None
        self._waiting: deque[_Op] = deque()
        self._running: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = CommitStats()

    async def start(self) -> None:
        self._conn = await self._connect()

    def server_pid(self) -> int | None:
        """The backend process of the writer's connection (None while it has none)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def submit(self, write: Write, *args: Any, then: Callable[[Any], Any] | None = None,
                     merge: Merge | None = None) -> Any:
        """``write(conn, *args)`` in a savepoint of a batch's transaction; ``then(result)``
        after the batch commits. Raises what the write raised (nothing of it
        committed), or StoreUnavailable when the database cannot take writes.
        ``merge``: neighbours in a batch with the same one run as one statement
        (the write alone is the way back when that statement refuses)."""
        if self._closed:
            raise StoreUnavailable("the store is shutting down")
        op = _Op(write, args, then, merge)
        self._waiting.append(op)
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._drain())
        return await asyncio.shield(op.done)

    async def _drain(self) -> None:
        while self._waiting:
            batch = [self._waiting.popleft() for _ in range(min(MAX_BATCH, len(self._waiting)))]
            started = time.perf_counter()
            outcomes = await self._commit(batch)
            if outcomes is not None:
                self._count(started, len(batch))
                await self._keep_house(len(batch))
            for index, op in enumerate(batch):
                if outcomes is None:
                    continue  # failed as a whole: each was told in _commit
                ok, value = outcomes[index]
                if not ok:
                    op.done.set_exception(value)
                    continue
                if op.then is not None:
                    op.then(value)  # after the commit, in order, before the caller hears
                op.done.set_result(value)

    async def _commit(self, batch: list[_Op]) -> list[tuple[bool, Any]] | None:
        """The batch's outcomes, or None when it could not commit (each op told).
        First without savepoints (a round trip each saved); when a write refuses,
        that transaction is rolled back and the batch runs again, each write in a
        savepoint of its own, so only the refused one is left out."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            try:
                async with self._conn.transaction():
                    return await self._fast(batch)
            except Exception:  # a refusal, or the connection lost: the slow way tells which
                pass
            async with self._conn.transaction():
                return [await self._one(op) for op in batch]
        except DatabaseInUse as exc:  # reconnected, and another node holds the database now
            failure: BaseException = StoreUnavailable(str(exc))
        except (OSError, TimeoutError) as exc:
            failure = unavailable(exc)
        except Exception as exc:  # asyncpg's: the connection or the commit failed
            failure = unavailable(exc)
        for op in batch:
            if not op.done.done():
                op.done.set_exception(failure)
        return None

    async def _fast(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """Each write once, neighbours of one merge in one statement."""
        outcomes: list[tuple[bool, Any]] = []
        start = 0
        while start < len(batch):
            merge = batch[start].merge
            end = start + 1
            while merge is not None and end < len(batch) and batch[end].merge is merge:
                end += 1
            if merge is not None and end - start > 1:
                results = await merge(self._conn, [op.args for op in batch[start:end]])
                outcomes += [(True, result) for result in results]
            else:
                outcomes.append((True, await batch[start].write(self._conn, *batch[start].args)))
            start = end
        return outcomes

    async def _one(self, op: _Op) -> tuple[bool, Any]:
        try:
            async with self._conn.transaction():  # a savepoint: this write alone on failure
                return True, await op.write(self._conn, *op.args)
        except (QueueAppError, ValueError, LookupError) as exc:
            return False, exc  # the write's own refusal
        except Exception as exc:
            if (refused := unstorable(exc)) is not None:
                return False, refused
            if type(exc).__module__.startswith("asyncpg") and not self._conn.is_closed():
                return False, unavailable(exc)  # the database refused this write only
            raise

    async def _keep_house(self, ops: int) -> None:
        if self._housekeeping is None:
            return
        write, every = self._housekeeping
        self._since_housekeeping += ops
        if self._since_housekeeping < every:
            return
        self._since_housekeeping = 0
        try:
            async with self._conn.transaction():
                await write(self._conn)
        except Exception:  # it runs again after the next writes
            pass

    def _count(self, started: float, ops: int) -> None:
        took = (time.perf_counter() - started) * 1000
        stats = self.stats
        stats.commits += 1
        stats.ops += ops
        stats.last_commit_ms = took
        stats.total_commit_ms += took
        stats.latency.observe(took)

    async def close(self) -> None:
        self._closed = True
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()
