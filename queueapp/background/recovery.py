"""Recovery of jobs whose worker is gone.

The failure it repairs: a job was claimed (state ``active``, attempt counted) and
then nobody finished it, because

* the appliance process stopped (crash, ``kill -9``, power loss, or a stop whose
  grace ran out) while an in-process handler ran it: at the next start no handler
  of the old process is alive, and ``recover_after_restart`` returns those jobs;
* an external worker vanished (crashed, lost the network) and its lease ran out
  without a heartbeat: ``LeaseReaper.tick``. A lease still valid at a restart is
  kept (the worker may well finish the job) and its deadline goes on running.

Either way the attempt counts as failed, with a message saying why; the job then
retries with its backoff, or fails for good when its attempts are spent. A worker
that answers late finds its lease token stale and gets 409; it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from ..clock import Clock
from ..dispatch import Dispatcher
from ..model import Job
from ..retry import Failure
from ..store import Store

log = logging.getLogger("queueapp.recovery")

RESTART_MESSAGE = "the appliance stopped while the job was running"
LEASE_MESSAGE = "lease expired without a heartbeat: the worker is gone"


async def recover_after_restart(store: Store, clock: Clock) -> list[Job]:
    """Before dispatching starts: active jobs no living worker can hold fail their
    attempt; returns the leased ones whose lease is still valid, for the dispatcher
    to keep watching."""
    now = clock.now_ms()
    unowned, leased = await store.unowned_active(now)
    leases = [(j.id, j.lease_token) for j in unowned if j.lease_token is not None]
    changes = await store.rescue_active(now, Failure(RESTART_MESSAGE), leases)
    if settled := await store.settle_lingering(now):
        log.warning("blocked jobs whose dependency ended while the appliance stopped moved on",
                    extra={"event": "recovery.dependencies", "jobs": settled})
    if changes or leased:
        log.warning(
            "recovered jobs left active by the previous run",
            extra={"event": "recovery.restart", "jobs": len(changes), "leases_kept": len(leased)},
        )
    return leased


class LeaseReaper:
    """Returns jobs whose lease expired. ``tick`` does one pass; ``run`` repeats it
    when the earliest lease is due (``interval_ms``: the pause after a failed pass)."""

    def __init__(self, dispatcher: Dispatcher, interval_ms: int = 1000) -> None:
        self.dispatcher = dispatcher
        self.interval_ms = interval_ms

    async def tick(self) -> int:
        expiry = self.dispatcher.leases.next_expiry()
        if expiry is None or expiry >= self.dispatcher.clock.monotonic_ms():
            return 0
        changes = await self.dispatcher.leases.rescue_expired(LEASE_MESSAGE)
        for change in changes:
            log.warning(
                "lease expired; job returned",
                extra={"event": "recovery.lease_expired", "job": change.job.id,
                       "state": str(change.job.state)},
            )
        return len(changes)

    async def run(self) -> None:
        """Sleep until the earliest lease runs out (or a lease is granted or renewed),
        then tick: no polling while nothing is leased. Deadlines are monotonic, so a
        wall-clock step neither expires leases early nor keeps them late."""
        dispatcher = self.dispatcher
        while True:
            try:
                await self.tick()
            except Exception:  # the store refused (full, read-only): try again later
                log.exception("lease reaper failed", extra={"event": "recovery.error"})
                await asyncio.sleep(self.interval_ms / 1000)
                continue
            granted = dispatcher.ledger.lease_granted
            granted.clear()
            expiry = dispatcher.leases.next_expiry()
            timeout = None
            if expiry is not None:
                timeout = max(0.0, (expiry - dispatcher.clock.monotonic_ms()) / 1000) + 0.001
            try:
                await asyncio.wait_for(granted.wait(), timeout)
            except TimeoutError:
                pass
