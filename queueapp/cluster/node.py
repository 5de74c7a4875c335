"""This process as a node of a cluster: what it keeps up besides dispatching.

Every second it reads the whole cluster (``ClusterView``: its heartbeat out, the
other nodes, the leader, counts, running jobs); a listener connection wakes it when
another node adds jobs or cancels one this node runs; a clean stop takes it off the
node list. Its dispatcher is the one appliance's over the database's claims
(claims.py); what must happen once per cluster is the leader's
(background/leader.py).
"""

from __future__ import annotations

import asyncio
import logging

from ..dispatch import ActiveJob, Dispatcher
from ..store import SharedStore
from .claims import DatabaseSource
from .view import REFRESH_MS, ClusterView

log = logging.getLogger("queueapp.cluster")


class ClusterNode:
    def __init__(self, shared: SharedStore, dispatcher: Dispatcher, source: DatabaseSource, view: ClusterView) -> None:
        self.shared = shared
        self.dispatcher = dispatcher
        self.source = source
        self.view = view
        self._refreshing: asyncio.Task[None] | None = None

    @property
    def node(self) -> str:
        return self.shared.node

    @property
    def active(self) -> dict[int, ActiveJob]:
        """Every running job of the cluster: this node's own as memory has them, the
        others' as last read."""
        return self.view.active

    async def join(self) -> None:
        """Read the cluster and listen to the other nodes (before dispatching starts)."""
        await self.view.refresh()
        await self.shared.listen(self._heard, self.dispatcher.cancelled_elsewhere)
        self._refreshing = asyncio.create_task(self._refresh_forever(), name="queueapp-cluster-view")
        log.info("node joined the cluster", extra={"event": "cluster.joined", "node": self.node,
                                                   "nodes": len(self.view.nodes)})

    def _heard(self, queue: str, names: list[str] | None) -> None:
        """Another node told of new waiting jobs in ``queue``: the long polls on it
        look, and this node's handlers when they run one of ``names`` (None: any)."""
        self.dispatcher.ledger.queue(queue).wake_waiters()
        self.source.heard(queue, names)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_MS / 1000)
            try:
                await self.view.refresh()
            except Exception:
                log.exception("could not read the cluster's state", extra={"event": "cluster.view_failed"})

    async def stop_refreshing(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)

    async def leave(self) -> None:
        """After the dispatcher stopped: stop listening, and leave the node list."""
        await self.shared.unlisten()
        try:
            await self.shared.forget_node()
        except Exception:  # the others find it gone when its heartbeat stops
            log.warning("could not leave the node list", extra={"event": "cluster.leave_failed"})
