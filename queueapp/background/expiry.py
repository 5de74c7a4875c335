"""The expiry sweep: waiting and delayed jobs whose options.expireInMs has run out
end expired, within a second. (No job is ever started late whatever the sweep does:
a claim ends an expired job instead of starting it.)"""

from __future__ import annotations

import asyncio
import logging

from ..dispatch import Dispatcher
from ..dispatch.outcomes import EXPIRE_BATCH

log = logging.getLogger("queueapp.expiry")


class ExpirySweep:
    def __init__(self, dispatcher: Dispatcher, interval_ms: int = 1000) -> None:
        self.dispatcher = dispatcher
        self.interval_ms = interval_ms

    async def tick(self) -> int:
        """Expire what is due now (in batches); how many jobs."""
        total = 0
        while (n := await self.dispatcher.outcomes.expire_due()) > 0:
            total += n
            if n < EXPIRE_BATCH:
                break
        return total

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_ms / 1000)
            try:
                if expired := await self.tick():
                    log.info("jobs expired", extra={"event": "jobs.expired", "count": expired})
            except Exception:  # the store refused (full, read-only): the next pass tries again
                log.exception("expiry sweep failed", extra={"event": "expiry.error"})
