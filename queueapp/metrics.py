"""Running counts and time windows per queue, kept in memory.

The counts start from one GROUP BY at start-up and then move with every committed
change, so reading metrics never scans the jobs table.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .histogram import Histogram
from .history import Tally
from .model import Job, JobState

THROUGHPUT_WINDOW_MS = 60_000
PROCESSING_WINDOW_MS = 300_000


@dataclass(slots=True)
class Second:
    """Jobs that finished within one second: the windows add these up, so memory and
    the cost of a metrics read stay fixed whatever the throughput."""

    second: int
    completed: int = 0
    failed: int = 0
    took_sum: int = 0
    took_n: int = 0


@dataclass(slots=True)
class QueueMetrics:
    counts: dict[JobState, int] = field(default_factory=lambda: {s: 0 for s in JobState})
    # one entry per second with finished jobs, for the last 5 minutes
    finished: deque[Second] = field(default_factory=deque)
    completed_total: int = 0
    failed_total: int = 0
    retried_total: int = 0
    added_total: int = 0
    processing: Histogram = field(default_factory=Histogram)
    waiting_time: Histogram = field(default_factory=Histogram)
    # what happened since the history last took it (background/history.py)
    tally: Tally = field(default_factory=Tally)
    added_at_take: int = 0
    # A node of a cluster: counts are the database's (moves change nothing), and the
    # other nodes' finishes join the windows (completed in 60 s, then over 5 min: ms
    # summed, timed, failed, finished), as they published them.
    moves: bool = True
    elsewhere: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    def untaken(self) -> Tally:
        """What happened since the history last took it, without taking it."""
        tally = Tally()
        tally.merge(self.tally)
        tally.enqueued = self.added_total - self.added_at_take
        return tally

    def move(self, prior: JobState | None, state: JobState | None, n: int = 1) -> None:
        """``n`` jobs left ``prior`` for ``state`` (None: came, or went)."""
        if not self.moves:
            return
        if prior is not None:
            self.counts[prior] -= n
        if state is not None:
            self.counts[state] += n

    def record_finish(self, job: Job) -> None:
        assert job.finished_at is not None
        took = None if job.started_at is None else job.finished_at - job.started_at
        failed = job.state is JobState.FAILED
        self.add_finish(job.finished_at, took, failed)
        if took is not None:
            self.processing.observe(took)
        self.tally.finished(took, failed)
        if failed:
            self.failed_total += 1
        else:
            self.completed_total += 1

    def add_finish(self, finished_at: int, took: int | None, failed: bool) -> None:
        """Count a finished job in its second (times arrive in order; one that is a
        moment late joins the newest second)."""
        second = finished_at // 1000
        if not self.finished or self.finished[-1].second < second:
            self.finished.append(Second(second))
        bucket = self.finished[-1]
        if failed:
            bucket.failed += 1
        else:
            bucket.completed += 1
        if took is not None:
            bucket.took_sum += took
            bucket.took_n += 1

    def trim(self, now: int) -> None:
        horizon = (now - PROCESSING_WINDOW_MS) // 1000
        while self.finished and self.finished[0].second < horizon:
            self.finished.popleft()

    def window(self, now: int) -> tuple[int, float, float | None]:
        """(completed in the last 60 s, mean processing ms over 5 min, failure rate
        over 5 min), at one-second resolution."""
        throughput, took_sum, took_n, failed, total = (a + b for a, b in zip(self.own(now), self.elsewhere,
                                                                             strict=True))
        rate = None if total == 0 else failed / total
        return throughput, (took_sum / took_n if took_n else 0.0), rate

    def own(self, now: int) -> tuple[int, int, int, int, int]:
        """What finished here: (completed in the last 60 s, and over 5 min: processing
        ms summed, jobs timed, failed, finished)."""
        self.trim(now)
        recent = (now - THROUGHPUT_WINDOW_MS) // 1000
        throughput = took_sum = took_n = failed = total = 0
        for b in self.finished:
            if b.second >= recent:
                throughput += b.completed
            took_sum += b.took_sum
            took_n += b.took_n
            failed += b.failed
            total += b.completed + b.failed
        return throughput, took_sum, took_n, failed, total


class Metrics:
    """Metrics of every queue."""

    def __init__(self, moves: bool = True) -> None:
        """``moves`` False: counts are set from elsewhere (a node of a cluster)."""
        self.queues: dict[str, QueueMetrics] = {}
        self.forgotten: list[tuple[str, Tally]] = []
        self.moves = moves

    def of(self, queue: str) -> QueueMetrics:
        found = self.queues.get(queue)
        if found is None:
            found = self.queues[queue] = QueueMetrics(moves=self.moves)
        return found

    def take_tallies(self) -> list[tuple[str, Tally]]:
        """What each queue did since the last call (queues that did something)."""
        taken, self.forgotten = self.forgotten, []
        for name, m in self.queues.items():
            tally = _take(m)
            if not tally.empty:
                taken.append((name, tally))
        return taken

    def forget(self, queue: str) -> None:
        """Drop a queue's metrics; what it did since the history last took it stays
        for the next take."""
        m = self.queues.pop(queue, None)
        if m is not None and not (tally := _take(m)).empty:
            self.forgotten.append((queue, tally))

    def peek(self, queue: str) -> QueueMetrics:
        """A queue's metrics for reading: an unknown queue reads as empty and is not
        created (a read must not grow memory)."""
        return self.queues.get(queue) or QueueMetrics()

    def snapshot(self, queue: str, now: int, paused: bool) -> dict[str, Any]:
        """The seed's metrics object (API.md: GET /queues/metrics)."""
        m = self.peek(queue)
        counts = m.counts
        throughput, avg_ms, _ = m.window(now)
        waiting = counts[JobState.WAITING]
        states: dict[str, int] = {
            "waiting": 0 if paused else waiting,
            "active": counts[JobState.ACTIVE],
            "completed": counts[JobState.COMPLETED],
            "failed": counts[JobState.FAILED],
            "delayed": counts[JobState.DELAYED],
            "paused": waiting if paused else 0,
        }
        return {"queueName": queue, **states, "total": sum(states.values()),
                "throughput": throughput, "avgProcessingTime": round(avg_ms)}


def _take(m: QueueMetrics) -> Tally:
    tally = m.untaken()
    m.tally, m.added_at_take = Tally(), m.added_total
    return tally
