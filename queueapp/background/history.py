"""The metrics history's loop: at every minute's end, what each queue did in it goes
from memory to the store; once an hour, minutes older than a day become hours. The
cleanup job prunes what is older than a week (workers/maintenance.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..clock import Clock
from ..history import HOUR_MS, MINUTE_MS, MINUTES_KEPT_MS, WINDOWS, chart
from ..metrics import Metrics
from ..store import Store

log = logging.getLogger("queueapp.history")

# A tick wakes this long after a minute's end, and counts what it takes for the
# minute that just ended (a late wake-up within this margin still does).
_MARGIN_MS = 5_000


class HistoryKeeper:
    def __init__(self, store: Store, metrics: Metrics, clock: Clock) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self._rolled_hour: int | None = None

    async def tick(self, now: int | None = None) -> None:
        """Write what happened since the last tick, as the minute that just ended."""
        now = self.clock.now_ms() if now is None else now
        minute = (now - _MARGIN_MS) // MINUTE_MS * MINUTE_MS
        await self._write(minute)
        hour = now // HOUR_MS
        if hour != self._rolled_hour:
            self._rolled_hour = hour
            await self.store.roll_up_history(now - MINUTES_KEPT_MS)

    async def flush(self) -> None:
        """At a stop: what the current minute did so far is written as that minute."""
        now = self.clock.now_ms()
        await self._write(now // MINUTE_MS * MINUTE_MS)

    async def _write(self, minute: int) -> None:
        tallies = self.metrics.take_tallies()
        if tallies:
            await self.store.record_history(minute, tallies)

    async def run(self) -> None:
        while True:
            now = self.clock.now_ms()
            await asyncio.sleep((MINUTE_MS - now % MINUTE_MS + _MARGIN_MS // 5) / 1000)
            try:
                await self.tick()
            except Exception:  # a full disk, say: the tallies of that minute are lost, not the loop
                log.exception("metrics history could not be written", extra={"event": "history.error"})

    async def chart(self, queue: str, window: str) -> list[dict[str, Any]]:
        """The points of one of WINDOWS for ``queue``, the current minute included
        (it is still in memory)."""
        span, step = WINDOWS[window]
        now = self.clock.now_ms()
        until = now - now % step + step
        since = until - span
        rows = await self.store.read_history(queue, since)
        m = self.metrics.queues.get(queue)
        if m is not None:
            rows.append((now - now % MINUTE_MS, m.untaken()))
        return chart(rows, since, until, step)
