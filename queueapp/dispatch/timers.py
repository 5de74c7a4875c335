"""Delayed jobs by due time, in one heap for every queue. Entries are never searched
for: a cancelled job leaves a tombstone and its entry is dropped when it surfaces."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field


@dataclass(order=True, slots=True)
class Timer:
    run_at: int
    job_id: int
    priority: int = field(compare=False)
    queue: str = field(compare=False)
    name: str = field(compare=False)
    group: str | None = field(compare=False, default=None)


class TimerHeap:
    """Delayed jobs by due time."""

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._dead: Counter[tuple[int, int]] = Counter()

    def push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, timer)

    def extend(self, timers: list[Timer]) -> None:
        """Add many at once (start-up): one heapify instead of a push each."""
        self._heap.extend(timers)
        heapq.heapify(self._heap)

    def kill(self, run_at: int, job_id: int) -> None:
        self._dead[(run_at, job_id)] += 1

    def next_due(self) -> int | None:
        self._drop_dead()
        return self._heap[0].run_at if self._heap else None

    def pop_due(self, now: int, limit: int | None = None) -> list[Timer]:
        """The timers due at ``now``, earliest first (at most ``limit``)."""
        due: list[Timer] = []
        while limit is None or len(due) < limit:
            self._drop_dead()
            if not self._heap or self._heap[0].run_at > now:
                return due
            due.append(heapq.heappop(self._heap))
        return due

    def _drop_dead(self) -> None:
        heap = self._heap
        while heap:
            mark = (heap[0].run_at, heap[0].job_id)
            if mark not in self._dead:
                return
            self._dead[mark] -= 1
            if not self._dead[mark]:
                del self._dead[mark]
            heapq.heappop(heap)

    def live(self) -> list[Timer]:
        """Every live timer (for the self-audit)."""
        dead = Counter(self._dead)
        live = []
        for t in self._heap:
            if dead[(t.run_at, t.job_id)]:
                dead[(t.run_at, t.job_id)] -= 1
            else:
                live.append(t)
        return live

    def __len__(self) -> int:
        return len(self._heap) - sum(self._dead.values())
