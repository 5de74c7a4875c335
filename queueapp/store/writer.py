"""The single writer: every change to the database goes through here.

Callers submit small functions that run against the SQLite connection in the
writer's own thread. While one transaction is being committed, new submissions
pile up; the next transaction takes them all at once (group commit), so under
load one fsync acknowledges hundreds of changes instead of one.

A caller's future resolves only after the transaction holding its change has
committed. Each change runs inside a SAVEPOINT, so one change that raises is
rolled back alone and the rest of its batch still commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import QueueAppError, StoreUnavailable

T = TypeVar("T")

WriteFn = Callable[..., Any]


@dataclass(slots=True)
class _Op:
    fn: WriteFn
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class CommitStats:
    """Counters a monitor can read: how often we commit and how long it takes."""

    commits: int = 0
    ops: int = 0
    last_commit_ms: float = 0.0
    total_commit_ms: float = 0.0


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 4096) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queueapp-writer")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = CommitStats()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        self._task = asyncio.create_task(self._run(), name="queueapp-writer")

    async def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on the writer's connection outside any batch (start-up work)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._conn)

    def submit(self, fn: WriteFn, *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(conn, *args)``; the future resolves with its return value
        once the transaction holding it has committed."""
        if self._closing:
            raise StoreUnavailable("the store is shutting down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(fn, args, future))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Commit what was submitted, then close the connection."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._conn is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                outcomes = await loop.run_in_executor(self._executor, self._apply, batch)
                for op, (ok, value) in zip(batch, outcomes, strict=True):
                    if op.future.done():  # the caller gave up waiting; its change stands
                        continue
                    if ok:
                        op.future.set_result(value)
                    else:
                        op.future.set_exception(value)
            if self._closing:
                return

    def _apply(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """Runs in the writer thread: one transaction for the whole batch."""
        conn = self._conn
        assert conn is not None
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, _unavailable(exc))] * len(batch)
        outcomes = [self._apply_one(conn, op) for op in batch]
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            return [(False, _unavailable(exc))] * len(batch)
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.commits += 1
        self.stats.ops += len(batch)
        self.stats.last_commit_ms = elapsed
        self.stats.total_commit_ms += elapsed
        return outcomes

    @staticmethod
    def _apply_one(conn: sqlite3.Connection, op: _Op) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT op")
        try:
            value = op.fn(conn, *op.args)
        except QueueAppError as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return False, exc
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            except sqlite3.Error:
                pass
            return False, _unavailable(exc) if _is_storage_error(exc) else exc
        except Exception as exc:  # a bug in a write function: report it to its caller only
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return False, exc
        conn.execute("RELEASE op")
        return True, value


def _is_storage_error(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError
    )


def _unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    return StoreUnavailable(f"the store cannot take writes: {exc}")


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
