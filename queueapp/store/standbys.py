"""The standbys that follow a replicated database (``queueapp standby``), as the
primary sees them: where each copy stands, and, for synchronous standbys, the wait
before a change is answered.

A position is a generation's name and how many bytes of its commit lines a copy
holds whole on its disk (the lines come after the logs they name). With
``sync_standbys`` at N above 0, a batch that answers anyone is answered once N
standbys hold its last commit line, or after ``standby_timeout_ms``: then
``standby_lost`` says what happens. ``degrade`` answers, and goes on without waiting
(the health is critical, and says since when) until enough standbys have caught up
again; ``refuse`` answers 503, the change committed here but not confirmed there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("queueapp.replica")

Position = tuple[str, int]  # (generation, bytes of its commit lines)


@dataclass
class StandbySeen:
    name: str
    position: Position
    seen_ms: int


class StandbyGate:
    def __init__(self, required: int = 0, timeout_ms: int = 5000, lost: str = "degrade") -> None:
        assert lost in ("degrade", "refuse")
        self.required = required
        self.timeout_ms = timeout_ms
        self.lost = lost
        self.standbys: dict[str, StandbySeen] = {}
        self.shipped: Position = ("", 0)  # the primary's newest
        self.degraded_since_ms: int | None = None
        # Off until the appliance serves: its own start-up (recovery and the like)
        # answers nobody, and no standby can follow before it serves.
        self.armed = False
        self._changed = asyncio.Event()  # the primary shipped, or a standby reported

    # the primary's side --------------------------------------------------------------------

    def ship(self, position: Position) -> None:
        """The primary shipped up to ``position``: long polls look again."""
        if position != self.shipped:
            self.shipped = position
            self._wake()

    def waits(self) -> bool:
        """Whether a change now waits for standbys before it is answered."""
        return self.required > 0 and self.armed and not (self.degraded_since_ms is not None and self.lost == "degrade")

    async def hold(self, position: Position) -> bool:
        """Wait (while ``waits()``) until ``required`` standbys hold ``position``;
        False when the wait ran out, or (degrading) when another batch's ran out
        since this one was committed."""
        if self.degraded_since_ms is not None and self.lost == "degrade" and not self._held(position):
            return False
        if not await self._until(lambda: self._held(position), self.timeout_ms):
            self._lost()
            return False
        self._recovered()
        return True

    def _held(self, position: Position) -> bool:
        return sum(1 for s in self.standbys.values() if _covers(s.position, position)) >= self.required

    def _lost(self) -> None:
        if self.degraded_since_ms is None:
            self.degraded_since_ms = int(time.time() * 1000)
            log.error("no standby confirmed a commit in time", extra={
                "event": "replica.standby_lost", "required": self.required, "timeout_ms": self.timeout_ms,
                "then": self.lost})

    def _recovered(self) -> None:
        if self.degraded_since_ms is not None and self._held(self.shipped):
            self.degraded_since_ms = None
            log.info("standbys hold every commit again", extra={"event": "replica.standby_back"})

    # the standbys' side ----------------------------------------------------------------------

    def report(self, name: str, position: Position) -> None:
        self.standbys[name] = StandbySeen(name, position, int(time.time() * 1000))
        self._recovered()
        self._wake()

    async def changed_from(self, position: Position, wait_ms: int) -> None:
        """Return once the primary's newest differs from ``position``, or after ``wait_ms``."""
        await self._until(lambda: self.shipped != position, wait_ms)

    async def _until(self, condition: Callable[[], bool], wait_ms: int) -> bool:
        """Whether ``condition`` came true within ``wait_ms``, looked at again each time
        the primary ships or a standby reports."""
        deadline = time.monotonic() + wait_ms / 1000
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    def _wake(self) -> None:
        self._changed.set()


def _covers(held: Position, wanted: Position) -> bool:
    """A copy at ``held`` has every commit up to ``wanted``: the same generation as far,
    or a later one (names sort in the order generations began)."""
    return held[0] > wanted[0] or (held[0] == wanted[0] and held[1] >= wanted[1])
