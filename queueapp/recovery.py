"""Recovery of jobs whose worker is gone.

The failure it repairs: a job was claimed (state ``active``, attempt counted) and
then nobody finished it, because

* the appliance process died (crash, ``kill -9``, power loss) while an in-process
  handler ran it, or while an external worker held its lease; at the next start every
  job still ``active`` in the store has no living worker: ``recover_after_restart``;
* an external worker vanished (crashed, lost the network) and its lease ran out
  without a heartbeat: ``LeaseReaper.tick``.

Either way the attempt counts as failed, with a message saying why; the job then
retries with its backoff, or fails for good when its attempts are spent. A worker
that answers late finds its lease token stale and gets 409; it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from .clock import Clock
from .dispatcher import Dispatcher, fail_plan
from .store import Store

log = logging.getLogger("queueapp.recovery")

RESTART_MESSAGE = "the appliance stopped while the job was running"
LEASE_MESSAGE = "lease expired without a heartbeat: the worker is gone"


async def recover_after_restart(store: Store, clock: Clock) -> int:
    """Before dispatching starts: every active job lost its worker with the process."""
    changes = await store.rescue_active(clock.now_ms(), fail_plan(), RESTART_MESSAGE)
    if changes:
        log.warning(
            "recovered jobs left active by the previous run",
            extra={"event": "recovery.restart", "jobs": len(changes)},
        )
    return len(changes)


class LeaseReaper:
    """Returns jobs whose lease expired. ``tick`` does one pass; ``run`` repeats it
    when the earliest lease is due (at least every ``interval_ms`` while any lease
    is out)."""

    def __init__(self, dispatcher: Dispatcher, interval_ms: int = 1000) -> None:
        self.dispatcher = dispatcher
        self.interval_ms = interval_ms

    async def tick(self) -> int:
        expiry = self.dispatcher.next_lease_expiry()
        if expiry is None or expiry >= self.dispatcher.clock.now_ms():
            return 0
        changes = await self.dispatcher.rescue_expired(LEASE_MESSAGE)
        for change in changes:
            log.warning(
                "lease expired; job returned",
                extra={"event": "recovery.lease_expired", "job": change.job.id,
                       "state": str(change.job.state)},
            )
        return len(changes)

    async def run(self) -> None:
        """Sleep until the earliest lease runs out (or a first lease is granted), then
        tick: no polling while nothing is leased."""
        dispatcher = self.dispatcher
        while True:
            try:
                await self.tick()
            except Exception:  # the store refused (full, read-only): try again later
                log.exception("lease reaper failed", extra={"event": "recovery.error"})
                await asyncio.sleep(self.interval_ms / 1000)
                continue
            dispatcher.lease_granted.clear()
            expiry = dispatcher.next_lease_expiry()
            timeout = None
            if expiry is not None:
                # Leases expire in wall-clock time and the loop sleeps in monotonic time:
                # look at least every interval, in case the wall clock jumps.
                left = max(0.0, (expiry - dispatcher.clock.now_ms()) / 1000) + 0.001
                timeout = min(left, self.interval_ms / 1000)
            try:
                await asyncio.wait_for(dispatcher.lease_granted.wait(), timeout)
            except TimeoutError:
                pass
