"""Metrics history: what each queue did per minute, tallied in memory and written
once a minute, then rolled up into hours as it ages (see background/history.py).

A tally keeps processing times in a log-scale histogram (buckets 10 % wide), so the
p95 of a minute, an hour or any sum of them is known to within 10 % without
keeping every duration. Depends on nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MINUTES_KEPT_MS = 24 * HOUR_MS  # minutes older than this are rolled up into hours
KEPT_MS = 7 * 24 * HOUR_MS  # hours older than this are pruned by the cleanup job
_GROWTH = 1.1
_LOG_GROWTH = math.log(_GROWTH)
MAX_BUCKET = 250  # 1.1 ** 250 ms is beyond any timeout


def bucket_of(ms: float) -> int:
    """Bucket 0 holds times under 1 ms; bucket i holds times up to 1.1 ** i ms."""
    if ms < 1:
        return 0
    return min(math.ceil(math.log(ms) / _LOG_GROWTH - 1e-9), MAX_BUCKET)


def bucket_upper(index: int) -> float:
    return _GROWTH ** index


@dataclass(slots=True)
class Tally:
    enqueued: int = 0
    completed: int = 0
    failed: int = 0
    took_ms: int = 0
    took_n: int = 0
    buckets: dict[int, int] = field(default_factory=dict)

    def finished(self, took_ms: int | None, failed: bool) -> None:
        if failed:
            self.failed += 1
        else:
            self.completed += 1
        if took_ms is not None:
            self.took_ms += took_ms
            self.took_n += 1
            index = bucket_of(took_ms)
            self.buckets[index] = self.buckets.get(index, 0) + 1

    def merge(self, other: Tally) -> None:
        self.enqueued += other.enqueued
        self.completed += other.completed
        self.failed += other.failed
        self.took_ms += other.took_ms
        self.took_n += other.took_n
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n

    @property
    def empty(self) -> bool:
        return not (self.enqueued or self.completed or self.failed)

    def percentile(self, fraction: float) -> float | None:
        """The processing time under which ``fraction`` of the jobs finished (the
        upper bound of its bucket, rounded to 0.1 ms); None without times."""
        if not self.took_n:
            return None
        rank = math.ceil(fraction * self.took_n)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return round(bucket_upper(index), 1)
        return None

    def point(self, start_ms: int) -> dict[str, Any]:
        """One point of a chart, as the API answers it (times in ms)."""
        return {
            "start": start_ms,
            "enqueued": self.enqueued,
            "completed": self.completed,
            "failed": self.failed,
            "meanMs": round(self.took_ms / self.took_n, 1) if self.took_n else None,
            "p95Ms": self.percentile(0.95),
        }

    def buckets_text(self) -> dict[str, int]:
        return {str(i): n for i, n in sorted(self.buckets.items())}

    @classmethod
    def of_row(cls, enqueued: int, completed: int, failed: int, took_ms: int, took_n: int,
               buckets: dict[str, int]) -> Tally:
        return cls(enqueued, completed, failed, took_ms, took_n, {int(i): n for i, n in buckets.items()})


# A window of the history endpoint: how far back, and the width of one point.
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (HOUR_MS, MINUTE_MS),
    "24h": (24 * HOUR_MS, 10 * MINUTE_MS),
    "7d": (7 * 24 * HOUR_MS, HOUR_MS),
}


def chart(rows: list[tuple[int, Tally]], since: int, until: int, step: int) -> list[dict[str, Any]]:
    """Rows (start, tally) summed into points ``step`` wide from ``since`` to
    ``until``; a point with no row is zero, so a chart has no gaps."""
    first = since - since % step
    points = {start: Tally() for start in range(first, until, step)}
    for start, tally in rows:
        slot = start - start % step
        if slot in points:
            points[slot].merge(tally)
    return [tally.point(start) for start, tally in points.items()]
