"""Wall-clock time in milliseconds, and ISO 8601 conversion.

Every component takes a ``Clock`` so tests can drive time by hand. An appliance
alone reads its host's clock; a node of a cluster reads the database's
(``DatabaseClock``), so that the deadlines the nodes share never depend on one
host's clock being right.
"""

from __future__ import annotations

import time
from datetime import datetime


class Clock:
    """The real clock: milliseconds since the Unix epoch, UTC."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        """Milliseconds on a clock that never jumps (for deadlines in this process)."""
        return time.monotonic_ns() // 1_000_000


class DatabaseClock(Clock):
    """The database's clock, as a node of a cluster reads it: every deadline the
    nodes share (leader's lease, liveness, job leases, due times, schedules, expiry)
    is written and compared in it, so a node whose wall clock runs ahead or behind
    moves none of them. It is read about once a second (``correct``); in between it
    advances on this host's monotonic clock, which measures durations only. Until
    the first reading it is the host's clock.

    A reading is the database's time at the middle of the round trip that fetched
    it: its error is at most half that round trip. A reading whose round trip took
    longer than ``MAX_ROUND_TRIP_MS`` is passed over, unless none was taken yet."""

    MAX_ROUND_TRIP_MS = 250

    def __init__(self) -> None:
        self._offset = super().now_ms() - super().monotonic_ms()
        self.corrected = False
        self.skew_ms = 0  # this host's wall clock minus the database's, at the last reading

    def now_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000 + self._offset

    def correct(self, database_ms: int, sent_ms: int, received_ms: int) -> None:
        """A reading: the database said ``database_ms`` to a question sent at
        ``sent_ms`` and answered at ``received_ms`` (both monotonic)."""
        if self.corrected and received_ms - sent_ms > self.MAX_ROUND_TRIP_MS:
            return
        self._offset = database_ms - (sent_ms + received_ms) // 2
        self.corrected = True
        self.skew_ms = super().now_ms() - self.now_ms()


class FakeClock(Clock):
    """A clock that moves only when told to (for tests and loop ``tick``s)."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic_ms(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


_seconds_text: dict[int, str] = {}
_last: tuple[int, str] = (-1, "")  # the latest time formatted, and its text (one object: threads)


def to_iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch to ``2026-12-25T09:00:00.000Z``.

    Every job answer carries several times, mostly within the same few seconds, so
    the formatted second is cached: formatting is the costly part."""
    if ms is None:
        return None
    global _last
    last = _last
    if ms == last[0]:  # a bulk's jobs share their times
        return last[1]
    seconds, millis = divmod(ms, 1000)
    text = _seconds_text.get(seconds)
    if text is None:
        if len(_seconds_text) > 4096:
            _seconds_text.clear()
        text = _seconds_text[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    text = f"{text}.{millis:03d}Z"
    _last = (ms, text)
    return text


def from_datetime(value: datetime) -> int:
    """An aware datetime to milliseconds since the epoch."""
    if value.tzinfo is None:
        raise ValueError("time needs an offset, such as Z or +01:00")
    return int(value.timestamp() * 1000)
