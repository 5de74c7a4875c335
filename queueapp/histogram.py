"""A fixed-bucket histogram of durations, in the shape Prometheus exposes."""

from __future__ import annotations

from dataclasses import dataclass, field

# Bucket upper bounds in seconds, for processing and wait times (Prometheus "le").
BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
)


@dataclass(slots=True)
class Histogram:
    """Cumulative-bucket histogram of durations, as Prometheus exposes them."""

    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_S))
    total: int = 0
    sum_s: float = 0.0

    def observe(self, ms: float) -> None:
        seconds = ms / 1000
        self.total += 1
        self.sum_s += seconds
        for index, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                self.counts[index] += 1
                return

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, n in zip(BUCKETS_S, self.counts, strict=True):
            running += n
            out.append((f"{bound:g}", running))
        out.append(("+Inf", self.total))
        return out
