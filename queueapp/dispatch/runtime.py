"""What the dispatcher keeps per running job and per queue, whichever the work
source (memory.py, or a cluster's database: cluster/claims.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class ActiveJob:
    """A running job, as far as the dispatcher needs to know it."""

    id: int
    queue: str
    name: str
    token: str
    started_at: int
    heartbeat_at: int
    lease_expires_at: int | None  # wall-clock ms, as stored; None: runs in this process
    group: str | None = None  # options.group
    # Monotonic ms at which the lease runs out: a wall-clock step cannot expire it early.
    deadline: int | None = None
    task: asyncio.Task[None] | None = None
    node: str | None = None  # in a cluster: the node that claimed it
    worker: str | None = None  # who runs it (Job.worker)
    alive_elsewhere: bool = False  # in a cluster: run by the handlers of another node, alive

    @property
    def in_process(self) -> bool:
        return self.lease_expires_at is None


@dataclass(eq=False, slots=True)
class QueueRuntime:
    """One queue's state in memory: its settings, its in-process slots, its long polls."""

    name: str
    concurrency: int
    paused: bool = False
    running: int = 0  # in-process jobs claimed or running
    # Long-polling leases wait on these; any new waiting job resolves them all.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wake_waiters(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()
