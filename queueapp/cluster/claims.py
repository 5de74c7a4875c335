"""The work source of a node of a cluster: no waiting job in memory.

One appliance orders its waiting jobs in memory. A node of a cluster cannot: other
nodes add and take jobs it never sees. So the database chooses (``SharedStore.claim``:
the best waiting jobs in priority, due-time and id order, ``FOR UPDATE SKIP
LOCKED``) for whichever node asks, and no job is handed out twice:

* a worker's lease is claimed for it when it asks, on any node;
* this node's handlers claim as many jobs as they have free slots, no more: the
  local buffer of claimed-but-not-started work is empty, so a node that dies
  strands only the jobs it was running (the leader returns them, see
  background/leader.py), and a busy node leaves the rest to the others;
* a node looks for work when any node tells of new jobs in a queue (LISTEN/NOTIFY:
  an enqueue's statement tells at its commit; ``heard``), when one of its slots frees
  up after a full claim, and every second in case a wake-up was lost. The changes
  of this node that add waiting jobs other than enqueues (retries, promotions,
  resumes) are told to the others after each turn of the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..clock import Clock
from ..dispatch.ledger import Ledger, Running
from ..dispatch.policies import GroupPolicies
from ..dispatch.runtime import QueueRuntime
from ..dispatch.source import IN_PROCESS, Started
from ..dispatch.wakeup import Wakeup
from ..flow import GroupPolicy
from ..model import Job, NewJob
from ..store import Added, SharedStore, Store
from ..store.shared import FlowRules
from ..workers.registry import HandlerRegistry
from .term import Term

log = logging.getLogger("queueapp.cluster")

POLL_MS = 1000  # the slow look for work behind the wake-ups
GATHER_MS = 5  # how long a lone free slot waits for others before it is claimed for
RESCUE_BATCH = 1_000  # expired leases failed by one change
AUDIT_SETTLE_S = 0.5  # how long another node's notification may take to arrive, for the audit


class DatabaseSource:
    counts_in_memory = False  # other nodes change the table: counts are read (view.py)
    tracks_leases = False  # a lease may be answered through any node; the leader sweeps them
    shared_with_others = True
    poll_ms: int | None = POLL_MS

    def __init__(self, store: Store, shared: SharedStore, clock: Clock, registry: HandlerRegistry,
                 policies: GroupPolicies, wakeup: Wakeup, term: Term) -> None:
        self.store = store
        self.shared = shared
        self.node: str | None = shared.node  # recorded on the jobs its handlers run
        self.clock = clock
        self.registry = registry
        self.policies = policies
        self.wakeup = wakeup
        self.term = term
        # Queues that gained waiting jobs by this node's changes other than enqueues
        # (an enqueue wakes the other nodes in its own statement), with their names.
        self.woken: dict[str, set[str]] = {}
        self.fresh: set[str] = set()  # queues with new waiting jobs since the loop last looked
        self._more: set[str] = set()  # queues whose last claim for the handlers came back full
        self._gathering: set[str] = set()  # queues waiting GATHER_MS for more free slots
        self._gathered: set[str] = set()  # queues that waited: they claim at the next look

    # what the ledger tells ---------------------------------------------------------------------

    def queue_added(self, q: QueueRuntime) -> None:
        """Nothing to keep per queue: its waiting jobs are in the database."""

    def queue_forgotten(self, name: str) -> None:
        """Nothing was kept for it."""

    def forget_empty(self) -> None:
        """No lines to forget: the database holds them."""

    def waiting(self, q: QueueRuntime, ids: Sequence[int], name: str, priority: int, run_at: int, group: str | None,
                by_enqueue: bool) -> None:
        q.wake_waiters()
        if name in self.registry:
            self.fresh.add(q.name)
            self.wakeup.wake()
        if not by_enqueue:
            self.woken.setdefault(q.name, set()).add(name)

    def withdrawn(self, q: QueueRuntime, job: Job) -> None:
        """Nothing in memory to take it from."""

    def ran(self, q: QueueRuntime, group: str | None, delta: int) -> None:
        """Group keys' running jobs are counted by the database at each claim."""

    def policy_changed(self, q: QueueRuntime | None, policy: GroupPolicy) -> None:
        """Claims read the stored policy themselves."""

    def handlers_changed(self) -> None:
        self.wakeup.wake()

    def heard(self, queue: str, names: list[str] | None) -> None:
        """Another node told of new waiting jobs in ``queue``, of these ``names`` (None:
        any): this node's handlers look when they run one of them."""
        if names is None or any(name in self.registry for name in names):
            self.fresh.add(queue)
            self.wakeup.wake()

    # taking work --------------------------------------------------------------------------------

    def rules(self, queue: str) -> FlowRules:
        """What a claim of ``queue`` must respect: the config file's group limits, its
        aging, and whether the group settings stored when the view last read them
        govern it (the claim reads them itself unless they did not: then a queue that
        gained settings since claims nothing until the view sees them)."""
        return self.policies.defaults(queue), self.policies.aging_for(queue), self.policies.stored(queue)

    def queues_to_look(self, queues: dict[str, QueueRuntime], everything: bool) -> Iterable[QueueRuntime]:
        """The queues that may have work for this node's handlers."""
        fresh, self.fresh = self.fresh, set()
        if not self.registry.names():
            return []
        names = queues.keys() if everything else (fresh | self._more) & queues.keys()
        return [queues[name] for name in sorted(names)]

    def claim_for_handlers(self, q: QueueRuntime, free: int, started: Started) -> Any:
        if q.running and free * 2 < q.concurrency and q.name not in self._gathered:
            # A slot freed while most still run: the finishes of the next moment join
            # it, so that one claim fills several slots (a claim a job would be a
            # statement a job for the database).
            if q.name not in self._gathering:
                self._gathering.add(q.name)
                asyncio.get_running_loop().call_later(GATHER_MS / 1000, self._gathered_now, q.name)
            return None
        self._gathered.discard(q.name)
        q.running += free  # the slots are reserved while the claim runs
        return self._claim_for_handlers(q, free, started)

    def _gathered_now(self, queue: str) -> None:
        self._gathering.discard(queue)
        self._gathered.add(queue)
        self.fresh.add(queue)
        self.wakeup.wake()

    async def _claim_for_handlers(self, q: QueueRuntime, wanted: int, started: Started) -> None:
        def committed(jobs: list[Job]) -> None:
            actives = started(jobs)
            q.running -= wanted - len(actives)

        try:
            jobs = await self.shared.claim(q.name, self.registry.names(), [], wanted, self.clock.now_ms(), None,
                                           self.rules(q.name), worker=f"{IN_PROCESS} on {self.shared.node}",
                                           then=committed)
        except Exception:
            q.running -= wanted
            raise
        if len(jobs) == wanted:
            self._more.add(q.name)  # there may be more: look again as soon as a slot frees up
            self.wakeup.wake()
        else:
            self._more.discard(q.name)

    def claim_for_lease(self, queue: str, q: QueueRuntime | None, names: list[str] | None, max_jobs: int,
                        lease_ms: int, worker: str, started: Started) -> asyncio.Future[list[Job]]:
        """The database picks the jobs; names this node's handlers run are never
        leased through it."""
        return asyncio.ensure_future(self.shared.claim(queue, names, self.registry.names(), max_jobs,
                                                       self.clock.now_ms(), lease_ms, self.rules(queue),
                                                       worker=worker, then=started))

    def after_turn(self) -> Any:
        """Telling the other nodes of the waiting jobs this node's changes made (None:
        there are none)."""
        if not self.woken:
            return None
        woken, self.woken = self.woken, {}
        return self._tell(woken)

    async def _tell(self, woken: dict[str, set[str]]) -> None:
        try:
            await self.shared.wake(woken)
        except Exception:  # the others' slow poll finds the jobs
            log.warning("could not wake the other nodes", extra={"event": "cluster.wake_failed"})

    async def resumed(self, queue: str) -> None:
        await self.shared.wake({queue: set()})

    async def fire_schedule(self, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int,
                            now: int, then: Callable[[Any], None]) -> tuple[list[Added], bool] | None:
        """A schedule's run, fired only under this node's term as leader."""
        term = self.term.current
        if term is None:
            return None
        return await self.shared.fire_schedule(term, queue, name, expected_next, jobs, next_run_at, now, then=then)

    # time ------------------------------------------------------------------------------------------

    def reopen_due(self, now: int) -> None:
        """Keys' pauses and rate windows are judged by the database at each claim."""

    def next_wake(self) -> int | None:
        return None

    # reads -----------------------------------------------------------------------------------------

    async def expired_leases(self, running: Running) -> list[tuple[int, str]]:
        """The leader's sweep: leases of the whole cluster that ran out."""
        return await self.shared.expired_leases(self.clock.now_ms(), RESCUE_BATCH)

    def next_expiry(self, running: Running) -> int | None:
        return None  # the leader sweeps on its own beat

    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        await self.follow_groups()  # another node may have changed them a moment ago
        return await self.shared.key_counts(queue)

    async def follow_groups(self) -> None:
        """Group policies and keys' settings as stored (any node may change them), for
        the groups' views; claims read them themselves."""
        stored = {s.queue: s for s in await self.store.group_settings()}
        for queue in stored.keys() | self.policies.by_queue.keys():
            found = stored.get(queue)
            default = self.policies.defaults(queue)
            self.policies.set(queue, found.policy(default) if found else GroupPolicy(default))

    async def cancelled(self, job_id: int) -> None:
        """A running job this node does not run was cancelled: the node running it stops it."""
        await self.shared.tell_cancelled(job_id)

    # start-up and the self-audit ---------------------------------------------------------------------

    async def load(self, ledger: Ledger, leased: list[Job]) -> int:
        """Nothing to load: the cluster's view (view.py) reads what memory shows."""
        return 0

    async def audit(self, ledger: Ledger) -> list[str]:
        """This node's running jobs against the table (in commit order with this
        node's writes), and the counts metrics read against a count of the table
        (in one snapshot). A job another node ended a moment ago (a cancel) reaches
        this node's memory by a notification after that node's commit: a difference
        in running jobs counts only when a second look a moment later finds it too."""
        found = await self._running_differences(ledger)
        if found:
            await asyncio.sleep(AUDIT_SETTLE_S)
            found = sorted(set(found) & set(await self._running_differences(ledger)))
        counted, table = await self.shared.both_counts()
        if counted != table:
            found.append(f"counts differ: {counted} read against {table} in the table")
        return found

    async def _running_differences(self, ledger: Ledger) -> list[str]:
        found: list[str] = []

        def compare(running: list[tuple[int, str]]) -> None:
            here = {a.id: a.token for a in ledger.active.values() if a.in_process}
            stored = dict(running)
            for job_id in sorted(here.keys() - stored.keys()):
                found.append(f"job {job_id}: running here in memory, not active for this node in the table")
            for job_id in sorted(stored.keys() - here.keys()):
                found.append(f"job {job_id}: active for this node in the table, not running here")
            found.extend(f"job {job_id}: lease token differs between memory and the table"
                         for job_id in sorted(here.keys() & stored.keys()) if here[job_id] != stored[job_id])

        await self.shared.running_here(then=compare)
        return found
