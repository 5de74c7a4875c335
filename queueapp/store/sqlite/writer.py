"""The single writer: every change to the database goes through here.

Callers submit small functions that run against the SQLite connection. While one
transaction is being committed (in the writer's own thread, so the fsync does not
block the event loop), new submissions pile up; the next transaction takes them
all at once (group commit), so under load one fsync acknowledges hundreds of
changes instead of one.

A caller's future resolves only after the transaction holding its change has
committed. A change may carry a ``then`` hook: it runs once, in the event loop's
thread, right after the commit and before the caller is answered, whether or not
the caller is still waiting (a cancelled caller cannot skip it). The dispatcher's
ledger uses it to turn a committed change into memory state in one step. Each
change runs inside a SAVEPOINT, so one change that raises is
rolled back alone and the rest of its batch still commits.

Changes that nobody is told about (claiming a job for an in-process handler, its
completion, promoting a due job) are submitted with ``durable=False``. A batch of
only such changes commits on the loop's thread without an fsync; the next batch
that acknowledges anything to a caller commits with an fsync, and since the
write-ahead log is one file, that fsync makes the earlier commits durable too. A
crash of the process loses none of them (the OS has the log); a power loss can lose
the last unacknowledged ones, and then a job runs again, as at-least-once delivery
allows.

Changes of one kind that arrive together (enqueues, above all) can be *merged*:
``submit_merged`` appends to a pending call of the same function that has not
started yet, so a hundred concurrent enqueues become one ``executemany``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ...errors import QueueAppError, StoreUnavailable
from ..records import CommitStats
from ..standbys import StandbyGate
from .replica import FSYNC_EVERY_S, WalShipper

T = TypeVar("T")

WriteFn = Callable[..., Any]
Then = Callable[[Any], Any]

log = logging.getLogger("queueapp.store")


@dataclass(slots=True)
class _Op:
    fn: WriteFn
    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None
    # A merged op: fn(conn, items, *args) returns one result per item.
    items: list[Any] | None = None
    futures: list[asyncio.Future[Any]] | None = None
    # False for a change that is one guarded statement: SQLite undoes a failed
    # statement by itself, so the SAVEPOINT round trip would buy nothing.
    savepoint: bool = True
    # False for a change no caller is told about: it need not wait for an fsync.
    durable: bool = True
    # Runs on the committed result before the caller is answered (one per item when merged).
    then: Then | None = None
    thens: list[Then | None] | None = None
    # True for a change that is a few long statements (a large enqueue): its whole
    # batch runs in the writer's thread, which holds the GIL only between them.
    offload: bool = False

    def committed(self, ok: bool, value: Any) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """Run the change's hooks on its committed result (at once: memory follows the
        table); the answers its callers are due."""
        if self.futures is None:
            assert self.future is not None
            return [(self.future, ok, _after_commit(self.then, value) if ok else value)]
        assert self.thens is not None
        return [(future, ok, _after_commit(self.thens[index], value[index]) if ok else value)
                for index, future in enumerate(self.futures)]

    @staticmethod
    def answer(answers: list[tuple[asyncio.Future[Any], bool, Any]], refused: Exception | None = None) -> None:
        """Answer the callers; ``refused``: the change is committed (its hooks ran) but
        its callers are told this error."""
        for future, ok, value in answers:
            _settle(future, ok and refused is None, value if refused is None or not ok else refused)


def _after_commit(then: Then | None, value: Any) -> Any:
    """Run a change's post-commit hook. The change is committed whatever the hook
    does: a failing hook is logged loudly and the caller still gets the result."""
    if then is None:
        return value
    try:
        then(value)
    except Exception:
        log.exception("bookkeeping after a commit failed", extra={"event": "ledger.error"})
    return value


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller gave up waiting; its change stands
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class GroupCommitWriter:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], max_batch: int = 4096, *,
        fsync: bool = True, shipper: WalShipper | None = None, gate: StandbyGate | None = None,
    ) -> None:
        self._connect = connect
        # Copies each commit's log to a replica folder, right after it (replica.py);
        # the standbys that follow it, which a batch may have to wait for (standbys.py).
        self._shipper = shipper
        self._gate = gate
        self._confirming: set[asyncio.Task[None]] = set()  # batches answered once standbys hold them
        # True when the durability setting fsyncs commits; then the writer switches
        # between FULL (a batch someone waits on) and NORMAL (internal changes only).
        self._fsync = fsync
        self._synchronous = "FULL" if fsync else "NORMAL"
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queueapp-writer")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._outcomes: list[tuple[bool, Any]] = []
        self.stats = CommitStats()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        self._task = asyncio.create_task(self._run(), name="queueapp-writer")

    async def begin_shipping(self) -> None:
        """Start replicating (after the schema is up to date): a generation's snapshot."""
        if self._shipper is not None:
            await self.run_sync(self._shipper.start)

    async def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on the writer's connection outside any batch (start-up work)."""
        conn = self._conn
        assert conn is not None, "the writer is not started"
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    def submit(
        self, fn: WriteFn, *args: Any, savepoint: bool = True, durable: bool = True,
        then: Then | None = None,
    ) -> asyncio.Future[Any]:
        """Queue ``fn(conn, *args)``; the future resolves with its return value
        once the transaction holding it has committed. ``savepoint=False`` only for
        a function that issues a single write statement; ``durable=False`` only for
        a change that no caller is told about."""
        if self._closing:
            raise StoreUnavailable("the store is shutting down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(fn, args, future, savepoint=savepoint, durable=durable, then=then))
        self._wake.set()
        return future

    def submit_merged(
        self, fn: WriteFn, item: Any, *args: Any, then: Then | None = None, offload: bool = False,
        durable: bool = True,
    ) -> asyncio.Future[Any]:
        """Queue ``item`` for ``fn(conn, items, *args)``, joining a pending call of the
        same ``fn`` and ``args`` that has not started. The future resolves with this
        item's result. One failure fails every item of the call: merge only changes
        that fail only when the store itself fails."""
        if self._closing:
            raise StoreUnavailable("the store is shutting down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        last = self._pending[-1] if self._pending else None
        if last is None or last.items is None or last.fn is not fn or last.args != args:
            last = _Op(fn, args, None, [], [], thens=[], durable=durable)
            self._pending.append(last)
            self._wake.set()
        assert last.items is not None and last.futures is not None and last.thens is not None
        last.items.append(item)
        last.futures.append(future)
        last.thens.append(then)
        last.offload = last.offload or offload
        last.durable = last.durable or durable
        return future

    async def close(self) -> None:
        """Commit what was submitted, then close the connection."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._conn is not None:
            loop = asyncio.get_running_loop()
            if self._shipper is not None:
                await loop.run_in_executor(self._executor, self._shipper.close)
            await loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._idle()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                started = time.perf_counter()
                durable = self._fsync and any(op.durable for op in batch)
                self._set_synchronous("FULL" if durable else "NORMAL")
                outcomes: list[tuple[bool, Any]] | None
                if any(op.offload for op in batch):
                    outcomes = await loop.run_in_executor(self._executor, self._execute_and_commit, batch, durable)
                else:
                    outcomes = self._execute(batch)
                    if outcomes is None:
                        if durable or self._shipper is not None:
                            # the fsync (or the copy to the replica) waits in the writer
                            # thread; the loop goes on
                            failure = await loop.run_in_executor(self._executor, self._commit, durable)
                        else:  # no fsync: committing here is quicker than a thread hop
                            failure = self._commit(durable)
                        outcomes = self._settled(batch, failure)
                if outcomes is self._outcomes:
                    self._record(len(batch), started)
                answers = [a for op, (ok, value) in zip(batch, outcomes, strict=True) for a in op.committed(ok, value)]
                self._answer_when_confirmed(answers, outcomes, durable)
            if self._closing:
                # A stopping appliance serves no standby any more: what waits for one
                # is answered as not confirmed (committed here all the same).
                for task in self._confirming:
                    task.cancel()
                await asyncio.gather(*self._confirming, return_exceptions=True)
                return

    async def _idle(self) -> None:
        """Wait for changes; while a replica's copy is not on its disk yet (async
        replication), no longer than it may stay so."""
        shipper = self._shipper
        if shipper is None or not shipper.status.unsynced_commits:
            await self._wake.wait()
            return
        try:
            await asyncio.wait_for(self._wake.wait(), FSYNC_EVERY_S)
        except TimeoutError:
            await self.run_sync(lambda _conn: shipper.flush())

    def _answer_when_confirmed(self, answers: list[tuple[asyncio.Future[Any], bool, Any]],
                               outcomes: list[tuple[bool, Any]], durable: bool) -> None:
        """Answer a committed batch's callers: at once, or, with synchronous standbys
        and a batch that answers anyone, once they hold it. The writer goes on with the
        next batches meanwhile (their answers wait for their own positions, in order),
        so that one round trip to the standbys confirms as many batches as it covers."""
        gate, shipper = self._gate, self._shipper
        if gate is None or shipper is None:
            _Op.answer(answers)
            return
        position = shipper.position()
        gate.ship(position)
        if not durable or not gate.waits() or not any(ok for ok, _ in outcomes):
            _Op.answer(answers)
            return
        task = asyncio.ensure_future(self._confirm(gate, position, answers))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    @staticmethod
    async def _confirm(gate: StandbyGate, position: tuple[str, int],
                       answers: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
        try:
            held = await gate.hold(position)
        except asyncio.CancelledError:
            _Op.answer(answers, StoreUnavailable("committed here, but the appliance stopped before a standby"
                                                 " confirmed it"))
            raise
        if held or gate.lost == "degrade":
            _Op.answer(answers)
            return
        _Op.answer(answers, StoreUnavailable(f"committed here, but no standby confirmed it within"
                                             f" {gate.timeout_ms} ms (standby_lost = refuse)"))

    def _set_synchronous(self, level: str) -> None:
        if level != self._synchronous and self._conn is not None:
            self._conn.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    def _execute(self, batch: list[_Op]) -> list[tuple[bool, Any]] | None:
        """In the event loop's thread: open the transaction and run every change.

        The statements are quick (no fsync until COMMIT), and running them here spares
        the writer thread from taking the GIL back after each one, which under load
        costs up to a switch interval per statement. Returns the outcomes when the
        transaction could not even begin, else None (they wait in ``_outcomes``)."""
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, _unavailable(exc))] * len(batch)
        outcomes = []
        for op in batch:
            outcome = self._apply_one(conn, op)
            if not conn.in_transaction:
                # SQLite rolled the whole transaction back by itself (a full disk, an
                # I/O error): every change of the batch is gone, the ones before this
                # too. Fail them all; nothing may run outside a transaction.
                failure = outcome[1] if isinstance(outcome[1], StoreUnavailable) else StoreUnavailable(
                    "the store cannot take writes: the transaction was rolled back")
                return [(False, failure)] * len(batch)
            outcomes.append(outcome)
        self._outcomes = outcomes
        return None

    def _execute_and_commit(self, batch: list[_Op], durable: bool) -> list[tuple[bool, Any]]:
        """In the writer thread: the whole batch, for one that is a few long statements."""
        outcomes = self._execute(batch)
        return outcomes if outcomes is not None else self._settled(batch, self._commit(durable))

    def _settled(self, batch: list[_Op], failure: StoreUnavailable | None) -> list[tuple[bool, Any]]:
        return self._outcomes if failure is None else [(False, failure)] * len(batch)

    def _commit(self, durable: bool = True) -> StoreUnavailable | None:
        """In the writer thread: COMMIT, which waits for the fsync, then the commit's
        log to the replica (on its disk too when it is synchronous and the batch is
        ``durable``). The event loop goes on serving requests meanwhile; their
        changes form the next batch."""
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            return _unavailable(exc)
        if self._shipper is not None:
            self._shipper.ship(conn, durable)
        return None

    def _record(self, ops: int, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.commits += 1
        self.stats.ops += ops
        self.stats.last_commit_ms = elapsed
        self.stats.total_commit_ms += elapsed
        self.stats.latency.observe(elapsed)

    @staticmethod
    def _apply_one(conn: sqlite3.Connection, op: _Op) -> tuple[bool, Any]:
        if not op.savepoint:
            return _apply_bare(conn, op)
        conn.execute("SAVEPOINT op")
        try:
            if op.items is None:
                value = op.fn(conn, *op.args)
            else:
                value = op.fn(conn, op.items, *op.args)
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


def _apply_bare(conn: sqlite3.Connection, op: _Op) -> tuple[bool, Any]:
    try:
        return True, op.fn(conn, *op.args)
    except QueueAppError as exc:
        return False, exc
    except sqlite3.Error as exc:
        return False, _unavailable(exc) if _is_storage_error(exc) else exc
    except Exception as exc:  # a bug in a write function: report it to its caller only
        return False, exc


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
