"""The PostgreSQL store: the ``Store`` interface over one PostgreSQL database, with
the same behaviour as the SQLite store (the contract tests run on both). Writes go
one at a time through the ordered writer (its hooks in commit order, so memory
follows the table); reads use a pool of their own. Each process is a node with an
id, recorded on the jobs its own handlers run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ...access import ApiKey
from ...errors import StoreUnavailable
from ...flow import GroupLimits, KeyChange, KeySettings
from ...history import Tally
from ...jsonfast import dumps
from ...logs import log_as_conditions
from ...model import Job, JobState, NewJob, Schedule
from ...retry import Failure
from ...search import JobPage, JobSearch
from .. import changes, transitions
from ..actions import Acted, Selection, count_query
from ..base import Store, Then
from ..lock import DatabaseInUse
from ..records import (
    Added,
    AuditEntry,
    Change,
    CommitStats,
    FinishedSample,
    LogLine,
    PendingJob,
    QueueSettings,
    Report,
    StoredGroups,
    TableSnapshot,
)
from ..sql.dialect import POSTGRES
from . import jobs, reads, upkeep
from .adds import add_keyed
from .location import shown
from .migrate import migrate
from .run import complete_merged, complete_one, run
from .shared import PostgresShared
from .writer import OrderedWriter, connection_errors, connection_lost, unstorable

# Held by every node that serves a database, on its writer's connection: alone
# (exclusive) by a node without cluster mode, shared by the nodes of a cluster, so
# that the two kinds never serve one database at once.
NODE_LOCK = int.from_bytes(b"qa-node1", "big") & (2**63 - 1)
_TAKE = {False: "SELECT pg_try_advisory_lock($1)", True: "SELECT pg_try_advisory_lock_shared($1)"}
_GIVE = {False: "SELECT pg_advisory_unlock($1)", True: "SELECT pg_advisory_unlock_shared($1)"}


async def migrate_url(url: str) -> list[str]:
    """Create or upgrade the schema of the database at ``url``."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [f"{m.version:04d}_{m.name}" for m in await migrate(conn)]
    finally:
        await conn.close()


async def check_free(url: str, cluster: bool = False) -> None:
    """DatabaseInUse when a node serves the database at ``url`` now in a way this one
    cannot join (any node, or with ``cluster`` a node without cluster mode); OSError
    when it cannot be reached."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise OSError(f"cannot open the PostgreSQL database {shown(url)}: {exc}") from None
    try:
        if not await conn.fetchval(_TAKE[cluster], NODE_LOCK):
            raise DatabaseInUse(in_use(url, cluster))
        await conn.execute(_GIVE[cluster], NODE_LOCK)
    finally:
        await conn.close()


def in_use(url: str, cluster: bool = False) -> str:
    if cluster:
        return (f"a queueapp node without cluster mode serves the PostgreSQL database {shown(url)}; stop it, or"
                " start every node with --cluster on")
    return (f"another queueapp node serves the PostgreSQL database {shown(url)}; to serve one database from"
            " several nodes, start every node with --cluster on (docs/postgres.md)")


FOLD_EVERY = 1_000  # writes between two folds of the count deltas


def node_id() -> str:
    """This process's name in the cluster: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PostgresStore(Store):
    def __init__(self, url: str, *, node: str | None = None, pool_size: int = 4, cluster: bool = False,
                 durability: str = "full") -> None:
        """``cluster``: this node serves the database together with others (see
        ``shared``); otherwise it serves it alone. ``durability``: see _connect_writer."""
        self.url = url
        self.durability = durability
        self.node = node or node_id()
        self.cluster = cluster
        self.pool_size = pool_size
        self._pool: Any = None
        # The writer folds the count deltas itself now and then, so they stay few
        # (in a cluster the leader also folds them every second), and keeps the jobs
        # table's statistics fresh (upkeep.py).
        self._writer = OrderedWriter(self._connect_writer, housekeeping=(upkeep.keep_up, FOLD_EVERY))
        self.shared = PostgresShared(self) if cluster else None

    async def connect(self) -> Any:
        """A connection of its own (the caller closes it)."""
        import asyncpg  # the postgres extra

        return await asyncpg.connect(self.url)

    async def _connect_writer(self) -> Any:
        """The writer's connection, holding the node lock for as long as it lives."""
        conn = await self.connect()
        if not await conn.fetchval(_TAKE[self.cluster], NODE_LOCK):
            await conn.close()
            raise DatabaseInUse(in_use(self.url, self.cluster))
        if self.durability == "normal":  # "full": the server's own synchronous_commit
            # A crash of the appliance loses nothing acknowledged (the commit reached
            # the server); one of the server may lose its last moments, as with SQLite.
            await conn.execute("SET synchronous_commit = off")
        return conn

    async def submit(self, write: Any, *args: Any, then: Then = None) -> Any:
        """``write(conn, *args)`` through the ordered writer (see writer.py)."""
        return await self._writer.submit(write, *args, then=then)

    def writer_pid(self) -> int | None:
        """The server process of the writer's connection: what this node itself told
        other nodes comes from it."""
        return self._writer.server_pid()

    @property
    def commit_stats(self) -> CommitStats:  # type: ignore[override]
        return self._writer.stats

    async def open(self) -> None:
        import asyncpg

        log_as_conditions(*connection_errors())  # a database that went away: no traceback, its reason
        conn = await self.connect()
        try:
            await migrate(conn)
        finally:
            await conn.close()
        await self._writer.start()
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)

    async def close(self) -> None:
        await self._writer.close()
        if self._pool is not None:
            await self._pool.close()

    async def pooled(self, work: Any, *args: Any) -> Any:
        """``work(conn, *args)`` on a connection of the pool, outside the writer's order:
        reads, and a cluster node's own bookkeeping (heartbeat, leadership)."""
        try:
            async with self._pool.acquire() as conn:
                return await work(conn, *args)
        except Exception as exc:
            if (refused := unstorable(exc)) is not None:
                raise refused from None
            if connection_lost(exc):  # 503, as a write that cannot commit is
                raise StoreUnavailable(f"the database cannot be reached: {exc}") from None
            raise

    # writes ------------------------------------------------------------------

    async def add_jobs(self, jobs_: list[NewJob], now: int, *, then: Then = None) -> Sequence[Added]:
        if any(j.job_key is not None or j.unique is not None or j.depends_on for j in jobs_):
            return await self._writer.submit(_add_keyed, jobs_, now, then=then)
        return await self._writer.submit(_add_one_plain, jobs_, now, then=then, merge=_add_plain)

    async def claim_jobs(self, ids: list[int], now: int, lease_ms: int | None, *, worker: str,
                         taken_at: list[int] | None = None, then: Then = None) -> list[Job]:
        return await self._writer.submit(run, transitions.claim, ids, now, lease_ms, self.node, worker, taken_at,
                                         then=then)

    async def expire_jobs(self, now: int, limit: int, *, then: Then = None) -> list[Change]:
        return await self._writer.submit(run, transitions.expire, now, limit, then=then)

    async def settle_ended(self, job_id: int, state: str, now: int, *, then: Then = None) -> list[Change]:
        return await self._writer.submit(run, transitions.settle, job_id, state, now, then=then)

    async def settle_lingering(self, now: int) -> int:
        return await self._writer.submit(run, transitions.settle_lingering, now)

    async def promote_jobs(self, due: list[tuple[int, int]], now: int, *, then: Then = None) -> list[int]:
        return await self._writer.submit(run, transitions.promote_taken, due, then=then)

    async def complete_job(self, job_id: int, token: str, result: Any, now: int, *, durable: bool = True,
                           then: Then = None) -> Change | None:
        # Encoded here: a result that is not JSON fails its own caller only.
        return await self._writer.submit(complete_one, job_id, token, dumps(result), now, then=then,
                                         merge=complete_merged)

    async def complete_jobs(self, items: list[tuple[int, str, Any]], now: int, *,
                            then: Then = None) -> list[Change | None]:
        completions = [(job_id, token, dumps(result), now) for job_id, token, result in items]
        return await self._writer.submit(run, transitions.complete, completions, then=then)

    async def fail_job(self, job_id: int, token: str, failure: Failure, now: int, *, durable: bool = True,
                       then: Then = None) -> Change | None:
        return await self._writer.submit(run, transitions.fail, job_id, token, failure, now, then=then)

    async def release_job(self, job_id: int, token: str, now: int, *, then: Then = None) -> Change | None:
        return await self._writer.submit(run, transitions.release, job_id, token, now, then=then)

    async def cancel_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        return await self._writer.submit(run, transitions.cancel, job_id, now, then=then)

    async def retry_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        return await self._writer.submit(run, transitions.retry, job_id, now, then=then)

    async def promote_job(self, job_id: int, now: int, *, then: Then = None) -> Change:
        return await self._writer.submit(run, transitions.promote, job_id, now, then=then)

    async def heartbeat(self, job_id: int, token: str, now: int, lease_ms: int | None, progress: Any, *,
                        then: Then = None) -> Job | None:
        return await self._writer.submit(run, transitions.heartbeat, job_id, token, now, lease_ms, progress,
                                         then=then)

    async def rescue_active(self, now: int, failure: Failure, leases: list[tuple[int, str]], *,
                            then: Then = None) -> list[Change]:
        return await self._writer.submit(run, transitions.rescue, now, failure, leases, then=then)

    async def unowned_active(self, now: int) -> tuple[list[Job], list[Job]]:
        active = await self.pooled(reads.all_active)
        valid = [j for j in active if j.lease_expires_at is not None and j.lease_expires_at > now]
        return [j for j in active if j not in valid], valid

    async def set_paused(self, queue: str, paused: bool, now: int) -> None:
        await self._writer.submit(run, changes.set_paused, queue, paused, now)

    async def clean(self, queue: str, state: JobState, finished_before: int, limit: int | None, *,
                    then: Then = None) -> int:
        return await self._writer.submit(run, transitions.clean, queue, state, finished_before, limit, then=then)

    async def ensure_queue(self, queue: str, now: int) -> None:
        await self._writer.submit(run, changes.ensure_queue, queue, now)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._writer.submit(run, changes.record_audit, entry)

    async def prune_audit(self, before: int) -> int:
        return await self._writer.submit(run, changes.prune_audit, before)

    async def api_keys(self) -> list[ApiKey]:
        return await self.pooled(reads.api_keys)

    async def save_api_key(self, key: ApiKey) -> None:
        await self._writer.submit(run, changes.save_api_key, key)

    async def revoke_api_key(self, key_id: str, now: int) -> ApiKey | None:
        return await self._writer.submit(run, changes.revoke_api_key, key_id, now)

    async def rotate_api_key(self, key_id: str, secret_hash: str, previous_until: int | None,
                             now: int) -> ApiKey | None:
        return await self._writer.submit(run, changes.rotate_api_key, key_id, secret_hash, previous_until, now)

    async def read_audit(self, queue: str | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        return await self.pooled(reads.read_audit, queue, before_id, limit)

    async def append_log(self, job_id: int, token: str, lines: list[str], now: int, keep: int) -> int | None:
        return await self._writer.submit(run, changes.append_log, job_id, token, lines, now, keep)

    async def act_on_jobs(self, action: str, selection: Selection, now: int, limit: int, *,
                          then: Then = None) -> Acted:
        return await self._writer.submit(run, transitions.act, action, selection, now, limit, then=then)

    async def set_group_policy(self, queue: str, limits: GroupLimits | None, now: int, *,
                               then: Then = None) -> None:
        await self._writer.submit(run, changes.set_group_policy, queue, limits, now, then=then)

    async def set_group_key(self, queue: str, key: str, change: KeyChange, now: int, *,
                            then: Then = None) -> KeySettings:
        return await self._writer.submit(run, changes.set_group_key, queue, key, change, now, then=then)

    async def record_history(self, minute: int, tallies: list[tuple[str, Tally]]) -> None:
        await self._writer.submit(run, changes.record_history, minute, tallies)

    async def roll_up_history(self, before: int) -> int:
        return await self._writer.submit(run, changes.roll_up_history, before)

    async def prune_history(self, before: int) -> int:
        return await self._writer.submit(run, changes.prune_history, before)

    # schedules -----------------------------------------------------------------

    async def upsert_schedule(self, schedule: Schedule, now: int) -> Schedule:
        return await self._writer.submit(run, changes.upsert_schedule, schedule, now)

    async def delete_schedule(self, queue: str, name: str) -> bool:
        return await self._writer.submit(run, changes.delete_schedule, queue, name)

    async def set_schedule_enabled(self, queue: str, name: str, enabled: bool, next_run_at: int | None,
                                   now: int) -> Schedule | None:
        return await self._writer.submit(run, changes.set_schedule_enabled, queue, name, enabled, next_run_at,
                                         now)

    async def init_schedule_next_run(self, queue: str, name: str, next_run_at: int) -> None:
        await self._writer.submit(run, changes.init_schedule_next_run, queue, name, next_run_at)

    async def fire_schedule(self, queue: str, name: str, expected_next: int, jobs_: list[NewJob],
                            next_run_at: int, now: int, *, then: Then = None) -> tuple[list[Added], bool] | None:
        return await self._writer.submit(run, changes.fire_schedule, queue, name, expected_next, jobs_, next_run_at,
                                         now, then=then)

    async def run_schedule_now(self, queue: str, name: str, job: NewJob, now: int, *,
                               then: Then = None) -> tuple[list[Added], bool] | None:
        return await self._writer.submit(run, changes.run_schedule_now, queue, name, job, now, then=then)

    async def list_schedules(self, queue: str | None) -> list[Schedule]:
        return await self.pooled(reads.list_schedules, queue)

    async def get_schedule(self, queue: str, name: str) -> Schedule | None:
        return await self.pooled(reads.get_schedule, queue, name)

    # reads ---------------------------------------------------------------------

    async def snapshot(self, *, then: Then = None) -> TableSnapshot:
        # Through the writer: no write commits between the read and its hook.
        return await self._writer.submit(reads.snapshot, then=then)

    async def backup_to(self, path: str) -> int:
        raise ValueError("a PostgreSQL database is backed up by PostgreSQL itself (pg_dump, or base backups"
                         " with archived WAL), not by backup-data")

    async def report(self, queue: str, since: int, until: int) -> Report:
        return await self.pooled(reads.report, queue, since, until)

    async def get_job(self, job_id: int) -> Job | None:
        return await self.pooled(reads.get_job, job_id)

    async def dependents(self, job_id: int, limit: int) -> list[tuple[int, str, str]]:
        return await self.pooled(reads.dependents, job_id, limit)

    async def read_log(self, job_id: int, after_seq: int, limit: int) -> list[LogLine]:
        return await self.pooled(reads.read_log, job_id, after_seq, limit)

    async def search_jobs(self, search: JobSearch) -> JobPage:
        return await self.pooled(reads.search_jobs, search)

    async def failed_jobs(self, queue: str, limit: int) -> list[Job]:
        return await self.pooled(reads.failed_jobs, queue, limit)

    async def active_jobs(self, queue: str) -> list[Job]:
        return await self.pooled(reads.active_jobs, queue)

    async def pending_jobs(self, batch: int = 10_000) -> AsyncIterator[list[PendingJob]]:
        async with self._pool.acquire() as conn:
            async for rows in reads.pending_jobs(conn, batch):
                yield rows

    async def count_states(self) -> dict[str, dict[JobState, int]]:
        return await self.pooled(reads.count_states)

    async def finished_since(self, since: int) -> list[FinishedSample]:
        return await self.pooled(reads.finished_since, since)

    async def queue_settings(self) -> list[QueueSettings]:
        return await self.pooled(reads.queue_settings)

    async def group_settings(self) -> list[StoredGroups]:
        return await self.pooled(reads.group_settings)

    async def group_starts(self, since: int) -> list[tuple[str, str, int]]:
        return await self.pooled(reads.group_starts, since)

    async def failure_groups(self, queue: str, limit: int) -> list[dict[str, Any]]:
        return await self.pooled(reads.failure_groups, queue, limit)

    async def count_action(self, action: str, selection: Selection) -> int:
        query = count_query(action, selection, POSTGRES)
        return 0 if query is None else (await self.pooled(reads.fetch, *query))[0][0]

    async def read_history(self, queue: str, since: int) -> list[tuple[int, Tally]]:
        return await self.pooled(reads.read_history, queue, since)


async def _add_keyed(conn: Any, new_jobs: list[NewJob], now: int) -> list[Added]:
    return [Added(k.job, k.created, moved=k.moved) for k in await add_keyed(conn, new_jobs, now)]


async def _add_one_plain(conn: Any, new_jobs: list[NewJob], now: int) -> list[Added]:
    return (await _add_plain(conn, [(new_jobs, now)]))[0]


async def _add_plain(conn: Any, calls: list[tuple[Any, ...]]) -> list[list[Added]]:
    """Several callers' enqueues without keys, in one statement."""
    groups = [(new_jobs, now) for new_jobs, now in calls]
    return [[Added.fresh(job_id, new, now) for job_id, new in zip(ids, new_jobs, strict=True)]
            for ids, (new_jobs, now) in zip(await jobs.add_job_groups(conn, groups), groups, strict=True)]
