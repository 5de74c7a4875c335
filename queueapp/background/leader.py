"""Leadership in a cluster: one node at a time does what must happen once.

Every node tries to take or renew the leader's lease every second
(``SharedStore.lead``); the lease lasts ``LEASE_MS``, so when the leader dies another
node leads within about that long, with a higher term. While it leads, a node:

* fires the schedules (each run fenced by its term: a deposed leader that wakes
  late fires nothing, and a new leader catches up the runs missed meanwhile as the
  schedule's ``missed`` policy says);
* returns the jobs whose lease ran out, and the jobs a dead node's handlers were
  running (a node not seen for ``NODE_GONE_MS``), as a restart returns its own.
  Only heartbeats that could have been written count: after the leader could not
  reach the database (an outage, a restart of it), it judges neither leases nor
  liveness until the database has answered it for ``NODE_GONE_MS``, time enough
  for every live node and worker to be heard again;
* promotes delayed jobs nobody else will (each node promotes those it made on time;
  the leader those of a node that is gone), ends expired jobs, folds the counts,
  and raises the health alerts.
"""

from __future__ import annotations

import asyncio
import logging

from ..clock import Clock
from ..cluster import Term
from ..cluster.view import NODE_GONE_MS
from ..dispatch.leases import LeaseDesk
from ..dispatch.outcomes import Outcomes
from ..store import SharedStore
from .expiry import ExpirySweep
from .monitor import Monitor
from .recovery import LEASE_MESSAGE
from .scheduler import Scheduler

log = logging.getLogger("queueapp.leader")

LEAD_EVERY_MS = 1000
LEASE_MS = 3000  # a dead leader is replaced within about this long
PROMOTE_BATCH = 10_000
GONE_MESSAGE = "the node running the job stopped"


class Leadership:
    def __init__(self, shared: SharedStore, term: Term, clock: Clock, *, leases: LeaseDesk, outcomes: Outcomes,
                 scheduler: Scheduler, monitor: Monitor, expiry: ExpirySweep) -> None:
        """``term``: this node's, while it leads (the work source fires schedules under
        it); ``leases`` and ``outcomes``: the dispatcher's desks, through which the
        leader returns jobs, so memory follows as for any change."""
        self.shared = shared
        self._term = term
        self.clock = clock
        self.leases = leases
        self.outcomes = outcomes
        self.scheduler = scheduler
        self.monitor = monitor
        self.expiry = expiry
        self._monitored_at = 0
        self._scheduling: asyncio.Task[None] | None = None
        # Since when (monotonic ms) every round has reached the database (from the
        # start: no round failed yet); None: the last one did not.
        self._reached_since: int | None = -NODE_GONE_MS

    @property
    def term(self) -> int | None:
        return self._term.current

    async def tick(self) -> None:
        """Lead or follow for the next second; as leader, do the cluster's chores."""
        try:
            await self._round()
        except BaseException:
            self._reached_since = None
            raise

    def _may_judge(self) -> bool:
        """Whether leases and liveness may be judged: the database has answered this
        node for as long as a live node may go unheard."""
        since = self._reached_since
        return since is not None and self.clock.monotonic_ms() - since >= NODE_GONE_MS

    async def _round(self) -> None:
        now = self.clock.now_ms()
        term = await self.shared.lead(now, LEASE_MS)
        if self._reached_since is None:
            self._reached_since = self.clock.monotonic_ms()
        if term != self.term:
            self._changed(term)
            if term is not None:  # edges a crash left between a job's end and its dependents
                await self.outcomes.settle_lingering()
        if term is None:
            return
        await self.shared.fold_counts()
        if self._may_judge():
            await self.leases.rescue_expired(LEASE_MESSAGE)
            await self._return_orphans()
        await self.shared.promote_due(self.clock.now_ms(), PROMOTE_BATCH)
        if expired := await self.expiry.tick():
            log.info("jobs expired", extra={"event": "jobs.expired", "count": expired})
        if now - self._monitored_at >= self.monitor.interval_ms:
            self._monitored_at = now
            await self.monitor.tick(now)

    def _changed(self, term: int | None) -> None:
        node = self.shared.node
        if term is None:
            log.warning("no longer the cluster's leader", extra={"event": "cluster.follower", "node": node})
        else:
            log.info("leading the cluster", extra={"event": "cluster.leader", "node": node, "term": term})
        self._term.lead(term)

    async def _return_orphans(self) -> None:
        orphans = await self.shared.orphans(self.clock.now_ms(), NODE_GONE_MS)
        if not orphans:
            return
        changes = await self.outcomes.rescue(orphans, GONE_MESSAGE)
        log.warning("returned the jobs of a node that stopped", extra={"event": "cluster.orphans",
                                                                       "jobs": len(changes)})

    async def run(self) -> None:
        self._scheduling = asyncio.create_task(self._schedule_forever(), name="queueapp-cluster-scheduler")
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("leader's round failed", extra={"event": "cluster.leader_error"})
                await asyncio.sleep(LEAD_EVERY_MS / 1000)
        finally:
            self._scheduling.cancel()
            await asyncio.gather(self._scheduling, return_exceptions=True)

    async def _schedule_forever(self) -> None:
        """While leading: the schedules as stored (any node may have changed them),
        read again every second, each fired at its time."""
        while True:
            if self.term is None:
                await asyncio.sleep(LEAD_EVERY_MS / 1000)
                continue
            try:
                await self.scheduler.reload()
                due = self.scheduler.next_due()
                wait = LEAD_EVERY_MS if due is None else min(LEAD_EVERY_MS, due - self.clock.now_ms())
                if wait > 0:
                    await asyncio.sleep(wait / 1000)
                if self.term is not None:
                    await self.scheduler.tick()
            except Exception:
                log.exception("scheduler tick failed", extra={"event": "schedule.error"})
                await asyncio.sleep(LEAD_EVERY_MS / 1000)

    async def step_down(self) -> None:
        """A clean stop: another node leads at once, without waiting for the lease."""
        term = self._term.follow()
        if term is not None:
            try:
                await self.shared.step_down(term)
            except Exception:  # its lease runs out instead
                log.warning("could not hand leadership over", extra={"event": "cluster.step_down_failed"})
