"""What a node of a cluster reads of the whole cluster, about every second, so that
metrics, health and the running jobs answer for all nodes from any node without a
query per request and without counting the jobs table: counts per queue and state
(folded by the database, see store/postgres/counts.py), which queues exist and are
paused, the running jobs, and the other nodes' recent finishes, which each node
publishes with its heartbeat (``seen``)."""

from __future__ import annotations

import logging
from typing import Any

from ..clock import Clock, DatabaseClock
from ..dispatch import ActiveJob, Ledger
from ..model import Job, JobState
from ..store import NodeSeen, SharedStore, Store
from .claims import DatabaseSource

log = logging.getLogger("queueapp.cluster")

REFRESH_MS = 1000  # how stale the cluster's counts, nodes and running jobs may be
SKEW_WARN_MS = 1000  # a node whose wall clock is this far from the database's says so
SKEW_WARN_EVERY_MS = 60_000
NODE_GONE_MS = 5000  # a node not seen for this long is gone: the leader returns its jobs
RUNNING_SHOWN = 10_000  # running jobs read for the running list and the stuck check


def _active(job: Job, node: str | None, alive: bool) -> ActiveJob:
    assert job.lease_token is not None and job.started_at is not None
    return ActiveJob(job.id, job.queue, job.name, job.lease_token, job.started_at, job.heartbeat_at or job.started_at,
                     job.lease_expires_at, job.group, node=node, alive_elsewhere=alive)


class ClusterView:
    def __init__(self, store: Store, shared: SharedStore, ledger: Ledger, source: DatabaseSource,
                 clock: Clock) -> None:
        self.store = store
        self.shared = shared
        self.ledger = ledger
        self.source = source
        self.clock = clock
        self.nodes: list[NodeSeen] = []
        self.leader: str | None = None
        self.running: dict[int, ActiveJob] = {}  # the whole cluster's, as last read
        self._skew_told_at: int | None = None

    @property
    def active(self) -> dict[int, ActiveJob]:
        """Every running job: this node's own as memory has them, the others as read."""
        return {**self.running, **self.ledger.active}

    async def refresh(self) -> None:
        await self.read_clock()
        now = self.clock.now_ms()
        await self.shared.seen(now, self.published(now))
        self.nodes = await self.shared.nodes(now, NODE_GONE_MS)
        self.leader = await self.shared.leader(now)
        ledger = self.ledger
        for settings in await self.store.queue_settings():
            q = ledger.queue(settings.name)
            q.paused = settings.paused
            if settings.concurrency:
                q.concurrency = settings.concurrency
        await self.source.follow_groups()
        counts = await self.shared.counts()
        for queue in counts:
            ledger.queue(queue)
        for queue, m in ledger.metrics.queues.items():
            m.counts = {s: counts.get(queue, {}).get(s, 0) for s in JobState}
        self._take_elsewhere()
        alive = {n.id for n in self.nodes}
        self.running = {job.id: _active(job, node, node in alive)
                        for job, node in await self.shared.active_jobs(RUNNING_SHOWN)}

    async def read_clock(self) -> None:
        """Read the database's clock (a node that keeps its deadlines on it), and say
        so in the log when this host's own clock is far from it."""
        clock = self.clock
        if not isinstance(clock, DatabaseClock):
            return
        sent = clock.monotonic_ms()
        database = await self.shared.database_ms()
        clock.correct(database, sent, clock.monotonic_ms())
        told = self._skew_told_at
        if abs(clock.skew_ms) > SKEW_WARN_MS and (told is None or sent - told >= SKEW_WARN_EVERY_MS):
            self._skew_told_at = sent
            log.warning("this host's clock differs from the database's; the cluster keeps its deadlines on the"
                        " database's", extra={"event": "cluster.clock_skew", "skew_ms": clock.skew_ms})

    def published(self, now: int) -> dict[str, Any]:
        """This node's finishes of the last minutes, per queue, for the others."""
        skew = self.clock.skew_ms if isinstance(self.clock, DatabaseClock) else None
        return {"finished": {queue: m.own(now) for queue, m in self.ledger.metrics.queues.items()
                             if m.finished}, "skewMs": skew}

    def _take_elsewhere(self) -> None:
        """The other nodes' published finishes, summed per queue, into the windows."""
        sums: dict[str, list[int]] = {}
        for node in self.nodes:
            if node.id == self.shared.node:
                continue
            for queue, figures in node.stats.get("finished", {}).items():
                total = sums.setdefault(queue, [0] * 5)
                for i, value in enumerate(figures[:5]):
                    total[i] += int(value)
        metrics = self.ledger.metrics
        for queue in metrics.queues.keys() | sums.keys():
            a, b, c, d, e = sums.get(queue, [0] * 5)
            metrics.of(queue).elsewhere = (a, b, c, d, e)
