"""In-memory ordering of unfinished jobs: what runs next, and when delayed jobs are due.

Per queue and job name, a *lane* holds the waiting jobs in a binary heap ordered by
(priority, run_at, id): a lower priority number first; within a priority, the job due
first; then the job that arrived first (ids grow with arrival). A heap entry is one
packed integer, so a million waiting jobs cost about 50 MB here and no payloads:

    key = priority << 90 | run_at_ms << 48 | id

(run_at in ms fits 42 bits until the year 2109, ids 48 bits.) Integers compare in C,
so heap operations stay cheap.

Delayed jobs sit in one timer heap ordered by due time. Entries are never searched
for: a cancelled job leaves a tombstone and its entry is dropped when it surfaces.
The store's guarded UPDATEs are the last word either way: claiming a job that is no
longer waiting changes nothing.

Nothing here touches the store or the clock.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

_ID_BITS = 48
_RUN_AT_BITS = 42
_ID_MASK = (1 << _ID_BITS) - 1
_PRIORITY_SHIFT = _ID_BITS + _RUN_AT_BITS


def pack(priority: int, run_at: int, job_id: int) -> int:
    return (priority << _PRIORITY_SHIFT) | (run_at << _ID_BITS) | job_id


def unpack_id(key: int) -> int:
    return key & _ID_MASK


@dataclass(eq=False, slots=True)
class Lane:
    """Waiting jobs of one name in one queue."""

    queue: str
    name: str
    heap: list[int] = field(default_factory=list)
    tombstones: Counter[int] = field(default_factory=Counter)

    def push(self, key: int) -> None:
        heapq.heappush(self.heap, key)

    def peek(self) -> int | None:
        """The best live key, dropping dead entries on the way."""
        heap = self.heap
        while heap:
            key = heap[0]
            if key in self.tombstones:
                self._bury(key)
                heapq.heappop(heap)
                continue
            return key
        return None

    def pop(self) -> int:
        return heapq.heappop(self.heap)

    def kill(self, key: int) -> None:
        self.tombstones[key] += 1

    def _bury(self, key: int) -> None:
        self.tombstones[key] -= 1
        if not self.tombstones[key]:
            del self.tombstones[key]

    def __len__(self) -> int:
        return len(self.heap) - sum(self.tombstones.values())


@dataclass(order=True, slots=True)
class Timer:
    run_at: int
    job_id: int
    priority: int = field(compare=False)
    lane: Lane = field(compare=False)


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

    def pop_due(self, now: int) -> list[Timer]:
        due: list[Timer] = []
        while True:
            self._drop_dead()
            if not self._heap or self._heap[0].run_at > now:
                return due
            due.append(heapq.heappop(self._heap))

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

    def __len__(self) -> int:
        return len(self._heap) - sum(self._dead.values())


@dataclass(frozen=True, slots=True)
class Taken:
    """Job ids popped from their lanes, with what it takes to put them back."""

    entries: list[tuple[Lane, int]]

    @property
    def ids(self) -> list[int]:
        return [unpack_id(key) for _, key in self.entries]

    def put_back(self, ids: set[int] | None = None) -> None:
        """Return the entries (those of ``ids``, or all) to their lanes, as they were."""
        for lane, key in self.entries:
            if ids is None or unpack_id(key) in ids:
                lane.push(key)

    def __bool__(self) -> bool:
        return bool(self.entries)


def take_best(lanes: list[Lane], limit: int) -> Taken:
    """Pop up to ``limit`` jobs across ``lanes`` in global (priority, run_at, id)
    order. Lanes are few (one per job name), so a scan of their tops is cheap."""
    taken: list[tuple[Lane, int]] = []
    while len(taken) < limit:
        best_lane, best_key = None, None
        for lane in lanes:
            key = lane.peek()
            if key is not None and (best_key is None or key < best_key):
                best_lane, best_key = lane, key
        if best_lane is None:
            break
        best_lane.pop()
        taken.append((best_lane, best_key))  # type: ignore[arg-type]
    return Taken(taken)
