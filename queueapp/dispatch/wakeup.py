"""What wakes the dispatcher's loop: a change that may give it work (``wake``), or the
one timer, set to the next moment something is due (a delayed job, a group key's
pause or rate window running out). Given to whatever learns of such changes (the
ledger, the work source), so none of them needs the dispatcher."""

from __future__ import annotations

import asyncio

from ..clock import Clock


class Wakeup:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.event = asyncio.Event()
        self.armed_at: int | None = None  # when the timer goes off (wall-clock ms)
        self._handle: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        self.event.set()

    def timer_moved(self, due: int) -> None:
        """Something is due at ``due``: look again if that is before the timer."""
        if self.armed_at is None or due < self.armed_at:
            self.event.set()

    def arm(self, due: int | None) -> None:
        """Set the one timer to ``due`` (None: nothing is due)."""
        if due == self.armed_at:
            return
        self.cancel()
        self.armed_at = due
        if due is not None:
            delay = max(0.0, (due - self.clock.now_ms()) / 1000)
            self._handle = asyncio.get_running_loop().call_later(delay, self._fired)

    def wake_later(self, delay_ms: int) -> None:
        asyncio.get_running_loop().call_later(delay_ms / 1000, self.event.set)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fired(self) -> None:
        self._handle = None
        self.armed_at = None
        self.event.set()
