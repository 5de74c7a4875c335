"""The dispatcher of one node among several on one PostgreSQL database.

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
  an enqueue's statement tells at its commit), when one of its slots frees up after
  a full claim, and every second in case a wake-up was lost.

What must happen once per cluster (schedules, the lease sweep, returning a dead
node's jobs, alerts, promotion of delayed jobs whose node is gone) is the leader's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..dispatch import ActiveJob, Dispatcher, QueueRuntime
from ..model import Job, NewJob
from ..store import Added, SharedStore
from .desks import ClusterLeases, ClusterOutcomes
from .ledger import ClusterLedger
from .view import REFRESH_MS, ClusterView

log = logging.getLogger("queueapp.cluster")

POLL_MS = 1000  # the slow look for work behind the wake-ups
GATHER_MS = 5  # how long a lone free slot waits for others before it is claimed for
AUDIT_SETTLE_S = 0.5  # how long another node's notification may take to arrive, for the audit


class ClusterDispatcher(Dispatcher):
    ledger_kind = ClusterLedger
    lease_kind = ClusterLeases
    outcome_kind = ClusterOutcomes
    ledger: ClusterLedger
    leases: ClusterLeases
    outcomes: ClusterOutcomes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shared = self.store.shared
        assert shared is not None, "a node of a cluster needs a store several nodes share"
        self.shared: SharedStore = shared
        self.leases.shared = self.outcomes.shared = shared
        self.leases.local_names = self.registry.names
        self.ledger.node = shared.node
        self.view = ClusterView(self.store, shared, self.ledger, self.clock)
        self.term: int | None = None  # the leader's term while this node leads (background/leader.py)
        self._more: set[str] = set()  # queues whose last claim for the handlers came back full
        self._gathering: set[str] = set()  # queues waiting GATHER_MS for more free slots
        self._gathered: set[str] = set()  # queues that waited: they claim at the next look
        self._refreshing: asyncio.Task[None] | None = None

    @property
    def active(self) -> dict[int, ActiveJob]:
        return self.view.active

    @property
    def node(self) -> str:
        return self.shared.node

    async def start(self, leased: list[Job] | None = None) -> None:
        await self.view.refresh()
        await self.shared.listen(self.ledger.heard, self._cancelled)
        self._wake.set()
        self._loop_task = asyncio.create_task(self._loop(), name="queueapp-dispatcher")
        self._refreshing = asyncio.create_task(self._refresh_forever(), name="queueapp-cluster-view")
        log.info("node joined the cluster", extra={"event": "cluster.joined", "node": self.node,
                                                   "nodes": len(self.view.nodes)})

    async def stop(self, grace_s: float = 10.0) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        await super().stop(grace_s)
        await self.shared.unlisten()
        try:
            await self.shared.forget_node()
        except Exception:  # the others find it gone when its heartbeat stops
            log.warning("could not leave the node list", extra={"event": "cluster.leave_failed"})

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_MS / 1000)
            try:
                await self.view.refresh()
            except Exception:
                log.exception("could not read the cluster's state", extra={"event": "cluster.view_failed"})

    # what the database decides ------------------------------------------------------

    async def set_paused(self, queue: str, paused: bool) -> None:
        await super().set_paused(queue, paused)
        if not paused:
            await self.shared.wake({queue: set()})

    async def add_scheduled(
        self, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int
    ) -> tuple[list[Added], bool] | None:
        """A schedule's run, fired only under this node's term as leader."""
        term = self.term
        if term is None:
            return None
        now = self.clock.now_ms()
        await self._ensure_queues({queue}, now)
        return await self.shared.fire_schedule(term, queue, name, expected_next, jobs, next_run_at, now,
                                               then=self.ledger.fired)

    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        await self.view.follow_groups()  # another node may have changed them a moment ago
        return await self.shared.key_counts(queue)

    def _cancelled(self, job_id: int) -> None:
        """Another node cancelled a job this node's handler runs: stop it."""
        active = self.ledger.active.get(job_id)
        if active is not None and active.task is not None:
            self.outcomes.lost(job_id, active.token)
            active.task.cancel()

    # the loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            everything = False
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_MS / 1000)
            except TimeoutError:
                everything = True
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._promote_due()
                self._look(everything)
                if self.ledger.woken:
                    woken, self.ledger.woken = self.ledger.woken, {}
                    self._spawn(self._tell(woken))
            except Exception:  # never let one bad tick stop the dispatcher
                log.exception("dispatcher tick failed", extra={"event": "dispatcher.error"})

    def _look(self, everything: bool) -> None:
        """Claim work for the handlers of the queues that may have some."""
        fresh, self.ledger.fresh = self.ledger.fresh, set()
        if not self.registry.names():
            return
        names = self.queues.keys() if everything else (fresh | self._more) & self.queues.keys()
        for name in sorted(names):
            self._start_in_process(self.queues[name])

    async def _tell(self, woken: dict[str, set[str]]) -> None:
        try:
            await self.shared.wake(woken)
        except Exception:  # the others' slow poll finds the jobs
            log.warning("could not wake the other nodes", extra={"event": "cluster.wake_failed"})

    def _start_in_process(self, q: QueueRuntime) -> None:
        free = q.concurrency - q.running
        if q.paused or free <= 0 or self._held_until > self.clock.now_ms():
            return
        if q.running and free * 2 < q.concurrency and q.name not in self._gathered:
            # A slot freed while most still run: the finishes of the next moment join
            # it, so that one claim fills several slots (a claim a job would be a
            # statement a job for the database).
            if q.name not in self._gathering:
                self._gathering.add(q.name)
                asyncio.get_running_loop().call_later(GATHER_MS / 1000, self._gathered_now, q.name)
            return
        self._gathered.discard(q.name)
        q.running += free  # the slots are reserved while the claim runs
        self._spawn(self._claim_for_handlers(q, free))

    def _gathered_now(self, queue: str) -> None:
        self._gathering.discard(queue)
        self._gathered.add(queue)
        self.ledger.fresh.add(queue)
        self._wake.set()

    async def _claim_for_handlers(self, q: QueueRuntime, wanted: int) -> None:
        def started(jobs: list[Job]) -> None:
            by_id = {job.id: job for job in jobs}
            actives = self.ledger.started(jobs, here=True)
            q.running -= wanted - len(actives)
            for active in actives:
                active.task = asyncio.create_task(self.executor.run(by_id[active.id]))

        try:
            jobs = await self.shared.claim(q.name, self.registry.names(), [], wanted, self.clock.now_ms(), None,
                                           self.ledger.rules(q.name), then=started)
        except Exception:
            q.running -= wanted
            self._retry_soon()
            log.exception("claim failed", extra={"event": "dispatcher.claim_failed", "queue": q.name})
            return
        if len(jobs) == wanted:
            self._more.add(q.name)  # there may be more: look again as soon as a slot frees up
            self._wake.set()
        else:
            self._more.discard(q.name)

    # the self-audit -------------------------------------------------------------------

    async def audit(self) -> list[str]:
        """This node's running jobs against the table (in commit order with this
        node's writes), and the counts metrics read against a count of the table
        (in one snapshot). A job another node ended a moment ago (a cancel) reaches
        this node's memory by a notification after that node's commit: a difference
        in running jobs counts only when a second look a moment later finds it too."""
        found = await self._running_differences()
        if found:
            await asyncio.sleep(AUDIT_SETTLE_S)
            found = sorted(set(found) & set(await self._running_differences()))
        counted, table = await self.shared.both_counts()
        if counted != table:
            found.append(f"counts differ: {counted} read against {table} in the table")
        return found

    async def _running_differences(self) -> list[str]:
        found: list[str] = []

        def compare(running: list[tuple[int, str]]) -> None:
            here = {a.id: a.token for a in self.ledger.active.values() if a.in_process}
            stored = dict(running)
            for job_id in sorted(here.keys() - stored.keys()):
                found.append(f"job {job_id}: running here in memory, not active for this node in the table")
            for job_id in sorted(stored.keys() - here.keys()):
                found.append(f"job {job_id}: active for this node in the table, not running here")
            found.extend(f"job {job_id}: lease token differs between memory and the table"
                         for job_id in sorted(here.keys() & stored.keys()) if here[job_id] != stored[job_id])

        await self.shared.running_here(then=compare)
        return found
