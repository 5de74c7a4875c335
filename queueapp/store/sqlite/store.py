"""The SQLite store: one file in WAL mode, one writer, one reader connection."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ...access import ApiKey
from ...flow import GroupLimits, KeyChange, KeySettings
from ...history import Tally
from ...model import Job, JobState, NewJob, Schedule, dumps
from ...retry import Failure
from ...search import MAX_SCAN, JobPage, JobSearch
from .. import actions, changes, transitions
from .. import job_reads as reads
from ..actions import Acted, Selection
from ..base import (
    Added,
    AuditEntry,
    Change,
    CommitStats,
    FinishedSample,
    LogLine,
    NameFigures,
    PendingJob,
    QueueSettings,
    Report,
    Store,
    StoredGroups,
    TableSnapshot,
    Then,
)
from ..lock import DatabaseLock
from ..sql import audit, groups, history, keys, logs, schedules
from ..sql import dependencies as edges
from ..sql.dialect import SQLITE
from ..sql.jobs import row_to_job
from ..sql.plan import Statement
from ..standbys import StandbyGate
from . import adds
from . import reads as writer_reads
from .connection import READER_PRAGMAS, connect
from .migrate import migrate
from .replica import WalShipper
from .run import complete_merged, run
from .writer import GroupCommitWriter


class SqliteStore(Store):
    def __init__(
        self, path: str | Path, durability: str = "full", *, lock: DatabaseLock | None = None,
        replicate_to: str | Path | None = None, replication: str = "async", standbys: StandbyGate | None = None,
    ) -> None:
        self.path = Path(path)
        self.durability = durability
        # The single-appliance lock: taken by open() unless the caller already holds it.
        self._lock = lock
        self._owns_lock = lock is None
        # Every commit's log copied to a folder as it commits (replica.py).
        shipper = None if replicate_to is None else WalShipper(self.path, Path(replicate_to), replication)
        self.replica = None if shipper is None else shipper.status
        # The standbys that follow the copy (queueapp standby), and how many must hold a
        # change before it is answered.
        self.standbys = None if shipper is None else (standbys or StandbyGate())
        self._writer = GroupCommitWriter(lambda: connect(self.path, durability), fsync=durability == "full",
                                         shipper=shipper, gate=self.standbys)
        self._reader: aiosqlite.Connection | None = None
        self._ids: adds.IdAllocator | None = None

    @property
    def commit_stats(self) -> CommitStats:  # type: ignore[override]
        return self._writer.stats

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._owns_lock:
            self._lock = DatabaseLock(self.path).acquire()
        await self._writer.start()
        await self._writer.run_sync(migrate)

        def load_ids(conn: sqlite3.Connection) -> adds.IdAllocator:
            return adds.IdAllocator(conn)

        self._ids = await self._writer.run_sync(load_ids)
        await self._writer.begin_shipping()
        self._reader = await aiosqlite.connect(str(self.path), isolation_level=None)
        for pragma in READER_PRAGMAS:
            await self._reader.execute(pragma)

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._owns_lock and self._lock is not None:
            self._lock.release()
            self._lock = None

    # writes ------------------------------------------------------------------

    async def add_jobs(self, jobs: list[NewJob], now: int, *, then: Then = None) -> Sequence[Added]:
        # Concurrent enqueues share one transaction (see GroupCommitWriter.submit_merged);
        # a large one is encoded here, and its batch runs in the writer's thread.
        encoded = adds.EncodedJobs.of(jobs, now)
        return await self._writer.submit_merged(
            adds.add_job_groups, (jobs, now, encoded), self._ids, then=then, offload=encoded is not None)

    async def claim_jobs(
        self, ids: list[int], now: int, lease_ms: int | None, *, worker: str, taken_at: list[int] | None = None,
        then: Then = None,
    ) -> list[Job]:
        # A claim for this process's own handlers is told to nobody (see the writer).
        return await self._writer.submit(run, self._ids, transitions.claim, ids, now, lease_ms, None, worker, taken_at,
                                         durable=lease_ms is not None, then=then)

    async def expire_jobs(self, now: int, limit: int, *, then: Then = None) -> list[Change]:
        return await self._writer.submit(run, self._ids, transitions.expire, now, limit, then=then)

    async def settle_ended(self, job_id: int, state: str, now: int, *, then: Then = None) -> list[Change]:
        return await self._writer.submit(run, self._ids, transitions.settle, job_id, state, now, then=then)

    async def settle_lingering(self, now: int) -> int:
        return await self._writer.submit(run, self._ids, transitions.settle_lingering, now)

    async def promote_jobs(self, due: list[tuple[int, int]], now: int, *, then: Then = None) -> list[int]:
        return await self._writer.submit(run, self._ids, transitions.promote_taken, due, durable=False, then=then)

    async def complete_job(
        self, job_id: int, token: str, result: Any, now: int, *, durable: bool = True,
        then: Then = None,
    ) -> Change | None:
        # Encoded here: a result that is not JSON fails its own caller, never the
        # others' completions merged with it.
        completion = (job_id, token, dumps(result), now)
        return await self._writer.submit_merged(complete_merged, completion, self._ids, durable=durable, then=then)

    async def complete_jobs(
        self, items: list[tuple[int, str, Any]], now: int, *, then: Then = None
    ) -> list[Change | None]:
        completions = [(job_id, token, dumps(result), now) for job_id, token, result in items]
        return await self._writer.submit(complete_merged, completions, self._ids, then=then)

    async def fail_job(
        self, job_id: int, token: str, failure: Failure, now: int, *, durable: bool = True,
        then: Then = None,
    ) -> Change | None:
        return await self._writer.submit(run, self._ids, transitions.fail, job_id, token, failure, now,
                                         durable=durable, then=then)

    async def release_job(self, job_id: int, token: str, now: int, *, then: Then = None) -> Change | None:
        return await self._writer.submit(run, self._ids, transitions.release, job_id, token, now, savepoint=False,
                                         then=then)

    async def cancel_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        return await self._writer.submit(run, self._ids, transitions.cancel, job_id, now, then=then)

    async def retry_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        return await self._writer.submit(run, self._ids, transitions.retry, job_id, now, then=then)

    async def promote_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        return await self._writer.submit(run, self._ids, transitions.promote, job_id, now, then=then)

    async def heartbeat(
        self, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any, *,
        then: Then = None,
    ) -> Job | None:
        return await self._writer.submit(
            run, self._ids, transitions.heartbeat, job_id, token, now, lease_ms, progress, savepoint=False,
            durable=lease_ms is not None, then=then,  # in-process progress is told to nobody
        )

    async def rescue_active(
        self, now: int, failure: Failure, leases: list[tuple[int, str]], *, then: Then = None
    ) -> list[Change]:
        return await self._writer.submit(run, self._ids, transitions.rescue, now, failure, leases, then=then)

    async def unowned_active(self, now: int) -> tuple[list[Job], list[Job]]:
        return await self._writer.submit(writer_reads.unowned_active, now, savepoint=False, durable=False)

    async def snapshot(self, *, then: Then = None) -> TableSnapshot:
        return await self._writer.submit(writer_reads.snapshot, savepoint=False, durable=False, then=then)

    async def set_paused(self, queue: str, paused: bool, now: int) -> None:
        await self._writer.submit(run, self._ids, changes.set_paused, queue, paused, now)

    async def ensure_queue(self, queue: str, now: int) -> None:
        await self._writer.submit(run, self._ids, changes.ensure_queue, queue, now)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._writer.submit(run, self._ids, changes.record_audit, entry)

    async def prune_audit(self, before: int) -> int:
        return await self._writer.submit(run, self._ids, changes.prune_audit, before)

    async def read_audit(self, queue: str | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        return [audit.row_to_entry(r) for r in await self._read(audit.page(SQLITE, queue, before_id, limit))]

    async def api_keys(self) -> list[ApiKey]:
        return [keys.row_to_key(r) for r in await self._read(keys.every(SQLITE))]

    async def save_api_key(self, key: ApiKey) -> None:
        await self._writer.submit(run, self._ids, changes.save_api_key, key)

    async def revoke_api_key(self, key_id: str, now: int) -> ApiKey | None:
        return await self._writer.submit(run, self._ids, changes.revoke_api_key, key_id, now)

    async def rotate_api_key(self, key_id: str, secret_hash: str, previous_until: int | None,
                             now: int) -> ApiKey | None:
        return await self._writer.submit(run, self._ids, changes.rotate_api_key, key_id, secret_hash,
                                         previous_until, now)

    async def append_log(self, job_id: int, token: str, lines: list[str], now: int, keep: int) -> int | None:
        return await self._writer.submit(run, self._ids, changes.append_log, job_id, token, lines, now, keep)

    async def group_settings(self) -> list[StoredGroups]:
        return await self._writer.submit(run, self._ids, changes.read_groups, savepoint=False, durable=False)

    async def group_starts(self, since: int) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in await self._fetchall(groups.STARTS_SINCE, (since,))]

    async def set_group_policy(self, queue: str, limits: GroupLimits | None, now: int, *,
                               then: Then = None) -> None:
        await self._writer.submit(run, self._ids, changes.set_group_policy, queue, limits, now, then=then)

    async def set_group_key(self, queue: str, key: str, change: KeyChange, now: int, *,
                            then: Then = None) -> KeySettings:
        return await self._writer.submit(run, self._ids, changes.set_group_key, queue, key, change, now, then=then)

    async def clean(
        self, queue: str, state: JobState, finished_before: int, limit: int | None, *,
        then: Then = None,
    ) -> int:
        return await self._writer.submit(run, self._ids, transitions.clean, queue, state, finished_before, limit,
                                         then=then)

    async def act_on_jobs(
        self, action: str, selection: Selection, now: int, limit: int, *, then: Then = None
    ) -> Acted:
        return await self._writer.submit(run, self._ids, transitions.act, action, selection, now, limit, then=then)

    async def failure_groups(self, queue: str, limit: int) -> list[dict[str, Any]]:
        grouped_query, legacy_query = reads.failure_groups_queries(queue, limit)
        return reads.failure_groups(await self._fetchall(*grouped_query), await self._fetchall(*legacy_query), limit)

    async def count_action(self, action: str, selection: Selection) -> int:
        query = actions.count_query(action, selection)
        return 0 if query is None else (await self._fetchall(*query))[0][0]

    async def record_history(self, minute: int, tallies: list[tuple[str, Tally]]) -> None:
        await self._writer.submit(run, self._ids, changes.record_history, minute, tallies)

    async def roll_up_history(self, before: int) -> int:
        return await self._writer.submit(run, self._ids, changes.roll_up_history, before)

    async def prune_history(self, before: int) -> int:
        return await self._writer.submit(run, self._ids, changes.prune_history, before)

    async def read_history(self, queue: str, since: int) -> list[tuple[int, Tally]]:
        return history.rows_to_tallies(await self._read(history.read(SQLITE, queue, since)))

    # schedules -----------------------------------------------------------------

    async def upsert_schedule(self, schedule: Schedule, now: int) -> Schedule:
        return await self._writer.submit(run, self._ids, changes.upsert_schedule, schedule, now)

    async def delete_schedule(self, queue: str, name: str) -> bool:
        return await self._writer.submit(run, self._ids, changes.delete_schedule, queue, name)

    async def set_schedule_enabled(
        self, queue: str, name: str, enabled: bool, next_run_at: int | None, now: int
    ) -> Schedule | None:
        return await self._writer.submit(run, self._ids, changes.set_schedule_enabled, queue, name, enabled,
                                         next_run_at, now)

    async def init_schedule_next_run(self, queue: str, name: str, next_run_at: int) -> None:
        await self._writer.submit(run, self._ids, changes.init_schedule_next_run, queue, name, next_run_at)

    async def fire_schedule(
        self, queue: str, name: str, expected_next: int, jobs: list[NewJob],
        next_run_at: int, now: int, *, then: Then = None,
    ) -> tuple[list[Added], bool] | None:
        return await self._writer.submit(run, self._ids, changes.fire_schedule, queue, name, expected_next, jobs,
                                         next_run_at, now, then=then)

    async def run_schedule_now(self, queue: str, name: str, job: NewJob, now: int, *,
                               then: Then = None) -> tuple[list[Added], bool] | None:
        return await self._writer.submit(run, self._ids, changes.run_schedule_now, queue, name, job, now, then=then)

    async def list_schedules(self, queue: str | None) -> list[Schedule]:
        return [schedules.row_to_schedule(r) for r in await self._read(schedules.listed(SQLITE, queue))]

    async def get_schedule(self, queue: str, name: str) -> Schedule | None:
        found = await self._read(schedules.one(SQLITE, queue, name))
        return schedules.row_to_schedule(found[0]) if found else None

    # maintenance ---------------------------------------------------------------

    async def backup_to(self, path: str) -> int:
        # sqlite3's online backup, from a connection of its own in a thread: the writer
        # and readers go on meanwhile, and the copy is one consistent snapshot.
        return await asyncio.to_thread(backup_file, self.path, Path(path))

    async def report(self, queue: str, since: int, until: int) -> Report:
        by_name, reasons, states = reads.report_queries(queue, since, until)
        return Report(
            [NameFigures(n, c, f, None if avg is None else round(avg, 1), mx)
             for n, c, f, avg, mx in await self._fetchall(*by_name)],
            [(e, n) for e, n in await self._fetchall(*reasons)],
            {state: n for state, n in await self._fetchall(*states)},
        )

    # reads -------------------------------------------------------------------

    async def _read(self, statement: Statement) -> list[Any]:
        return await self._fetchall(statement.sql, statement.params)

    async def _fetchall(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        assert self._reader is not None, "store is not open"
        async with self._reader.execute(query, params) as cursor:
            return list(await cursor.fetchall())

    async def get_job(self, job_id: int) -> Job | None:
        rows = await self._fetchall(*reads.get_query(job_id))
        return row_to_job(rows[0]) if rows else None

    async def dependents(self, job_id: int, limit: int) -> list[tuple[int, str, str]]:
        return [tuple(r) for r in await self._read(edges.dependents(SQLITE, job_id, limit))]

    async def read_log(self, job_id: int, after_seq: int, limit: int) -> list[LogLine]:
        return [LogLine(*r) for r in await self._read(logs.read(SQLITE, job_id, after_seq, limit))]

    async def search_jobs(self, search: JobSearch) -> JobPage:
        jobs = [row_to_job(r) for r in await self._fetchall(*reads.search_query(search))]
        last = search.key_of(jobs[-1]) if len(jobs) == search.limit else None
        if not search.scans:
            return JobPage(jobs, last)
        (scanned,), = await self._fetchall(*reads.scanned_query(search, last))
        if last is not None or scanned < MAX_SCAN:
            return JobPage(jobs, last, scanned)
        edge = await self._fetchall(*reads.window_end_query(search))
        return JobPage(jobs, tuple(edge[0]) if edge else None, scanned)

    async def failed_jobs(self, queue: str, limit: int) -> list[Job]:
        return [row_to_job(r) for r in await self._fetchall(*reads.failed_query(queue, limit))]

    async def active_jobs(self, queue: str) -> list[Job]:
        return [row_to_job(r) for r in await self._fetchall(*reads.active_query(queue))]

    async def pending_jobs(self, batch: int = 10_000) -> AsyncIterator[list[PendingJob]]:
        assert self._reader is not None, "store is not open"
        async with self._reader.execute(reads.PENDING) as cursor:
            while rows := await cursor.fetchmany(batch):
                yield [PendingJob._make(r) for r in rows]

    async def count_states(self) -> dict[str, dict[JobState, int]]:
        counts: dict[str, dict[JobState, int]] = {}
        for queue, state, n in await self._fetchall(reads.COUNT_STATES):
            counts.setdefault(queue, {})[JobState(state)] = n
        return counts

    async def finished_since(self, since: int) -> list[FinishedSample]:
        samples: list[FinishedSample] = []
        for (queue,) in await self._fetchall(reads.QUEUE_NAMES):
            for state in (JobState.COMPLETED, JobState.FAILED):
                rows = await self._fetchall(*reads.finished_query(queue, state, since))
                samples.extend(FinishedSample(queue, state, s, f) for s, f in rows)
        return samples

    async def queue_settings(self) -> list[QueueSettings]:
        rows = await self._fetchall("SELECT name, paused, concurrency FROM queues ORDER BY name")
        return [QueueSettings(r[0], bool(r[1]), r[2]) for r in rows]


def backup_file(source: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(str(source))
    dst = sqlite3.connect(str(partial))
    try:
        # One step, inside one read transaction: in WAL mode it holds no writer up, and
        # it cannot be restarted by commits (a stepped backup from a second connection
        # starts over after every commit, and under steady writes never finishes).
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
    finally:
        dst.close()
        src.close()
    partial.replace(target)
    return target.stat().st_size


def restore_file(backup: Path, db: Path) -> None:
    """Bring a backup back as the database at ``db`` (the appliance must be stopped).
    The backup is checked first; the copy goes through SQLite, so a -wal file left
    by the old database is dealt with correctly."""
    if not backup.is_file():
        raise ValueError(f"{backup} does not exist")
    try:
        src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"cannot open {backup}: {exc}") from None
    try:
        verdict = src.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise ValueError(f"{backup} is damaged: {verdict}")
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "jobs" not in tables:
            raise ValueError(f"{backup} is not a queueapp database (no jobs table)")
        dst = connect(db)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{backup} is not a SQLite database: {exc}") from None
    finally:
        src.close()
