"""In-memory ordering of waiting jobs: lanes, and the lines they make up.

A *lane* holds the waiting jobs of one job name, one group key and one priority in
one queue, in a binary heap ordered by (run_at, id): the job due first, then the job
that arrived first (ids grow with arrival). A heap entry is one packed integer, so a
million waiting jobs cost about 50 MB here and no payloads:

    key = priority << 90 | run_at_ms << 48 | id

(run_at in ms fits 42 bits until the year 2109, ids 48 bits.) Integers compare in C,
so heap operations stay cheap.

A *line* holds the lanes of one group key (options.group; the jobs without a key are
a line of their own) with, per kind (jobs run by this process's handlers, or leased
by external workers) and per priority, a heap of its lanes' best keys. Its best job
is the best of at most five heads: the first non-empty priority, or, with priority
aging, the head of the best aged level (a lane is FIFO within its priority, and the
job that has waited longest has aged most). Taking ``n`` jobs over any number of
names costs ``O(n log lanes)``: a queue with 30,000 job names is served as fast as
one with a single name.

Entries are never searched for: a cancelled job leaves a tombstone and its entry is
dropped when it surfaces. The store's guarded UPDATEs are the last word either way:
claiming a job that is no longer waiting changes nothing. Nothing here touches the
store or the clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..flow import Aging, Gate, GroupLimits

_ID_BITS = 48
_RUN_AT_BITS = 42
_ID_MASK = (1 << _ID_BITS) - 1
_PRIORITY_SHIFT = _ID_BITS + _RUN_AT_BITS
WHEN_MASK = (1 << _PRIORITY_SHIFT) - 1  # run_at and id: the order within a level
PRIORITIES = (1, 2, 3, 4, 5)

# Tie-breaker of heap entries, so that two entries never compare their lanes.
serial = itertools.count()


def pack(priority: int, run_at: int, job_id: int) -> int:
    return (priority << _PRIORITY_SHIFT) | (run_at << _ID_BITS) | job_id


def unpack_id(key: int) -> int:
    return key & _ID_MASK


def unpack_run_at(key: int) -> int:
    return (key & WHEN_MASK) >> _ID_BITS


@dataclass(eq=False, slots=True)
class Lane:
    """Waiting jobs of one name, group key and priority in one queue."""

    queue: str
    name: str
    group: str | None = None
    priority: int = 3
    local: bool = False  # run by this process's handlers (else leased)
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

    def live_keys(self) -> list[int]:
        """Every live key (for the self-audit; costs a pass over the heap)."""
        dead = Counter(self.tombstones)
        live = []
        for key in self.heap:
            if dead[key]:
                dead[key] -= 1
            else:
                live.append(key)
        return live

    def __len__(self) -> int:
        return len(self.heap) - sum(self.tombstones.values())


Best = tuple[int, int, Lane]  # level (the priority, aged), key, lane


class Line:
    """The waiting jobs of one group key in a queue, and what lets them start.

    A top heap may hold stale entries (a lane's best job was taken or killed, or a
    better one arrived); an entry is trusted only when it equals its lane's live best
    key, and a stale one is replaced by the lane's current best when it surfaces.
    Every non-empty lane always has an entry no worse than its best key."""

    __slots__ = ("queue", "key", "lanes", "tops", "gate", "turn", "entry", "closed")

    def __init__(self, queue: str, key: str | None, limits: GroupLimits) -> None:
        self.queue = queue
        self.key = key
        self.lanes: dict[tuple[str, int], Lane] = {}
        # Per kind (local or leased), per priority (index 1..5): lanes' best keys.
        self.tops: dict[bool, list[list[tuple[int, int, Lane]]]] = {
            kind: [[] for _ in range(6)] for kind in (True, False)}
        self.gate = Gate(limits)
        self.turn = 0  # when the line was last served: lines take turns (see order.py)
        self.entry: dict[bool, tuple[int, int, Line] | None] = {True: None, False: None}  # see order.py
        self.closed = False  # no room: out of the queue's order until reopened

    def lane(self, name: str, priority: int, local: bool) -> Lane:
        found = self.lanes.get((name, priority))
        if found is None:
            found = self.lanes[(name, priority)] = Lane(self.queue, name, self.key, priority, local)
        return found

    def push(self, lane: Lane, key: int) -> bool:
        """Add ``key`` to ``lane``; True when it is the lane's new best."""
        lane.push(key)
        if lane.heap[0] != key:
            return False
        heapq.heappush(self.tops[lane.local][lane.priority], (key, next(serial), lane))
        return True

    def push_many(self, lane: Lane, keys: list[int]) -> bool:
        """``push`` for many keys: one heapify when they outnumber the lane's own."""
        lowest = min(keys)
        if len(keys) > len(lane.heap):
            lane.heap.extend(keys)
            heapq.heapify(lane.heap)
        else:
            for key in keys:
                heapq.heappush(lane.heap, key)
        if lane.heap[0] != lowest:
            return False
        heapq.heappush(self.tops[lane.local][lane.priority], (lowest, next(serial), lane))
        return True

    def _head(self, local: bool, priority: int) -> tuple[int, Lane] | None:
        """The best key of one kind and priority, fixing stale entries on the way."""
        heap = self.tops[local][priority]
        while heap:
            key, _, lane = heap[0]
            best = lane.peek()
            if best is None or lane.local is not local or self.lanes.get((lane.name, priority)) is not lane:
                heapq.heappop(heap)  # an empty, forgotten or moved lane
            elif best != key:
                heapq.heapreplace(heap, (best, next(serial), lane))
            else:
                return key, lane
        return None

    def best(self, local: bool, aging: Aging | None, now: int) -> Best | None:
        """The job of ``local`` kind that should start first, without taking it."""
        found: Best | None = None
        tops = self.tops[local]
        for priority in PRIORITIES:
            if not tops[priority]:
                continue
            head = self._head(local, priority)
            if head is None:
                continue
            key, lane = head
            if aging is None:
                return priority, key, lane
            level = aging.level(priority, unpack_run_at(key), now)
            if found is None or (level, key & WHEN_MASK) < (found[0], found[1] & WHEN_MASK):
                found = (level, key, lane)
        return found

    def best_of(self, names: Iterable[str], aging: Aging | None, now: int) -> Best | None:
        """``best`` among the lanes of ``names`` only, of either kind."""
        found: Best | None = None
        for name in names:
            for priority in PRIORITIES:
                lane = self.lanes.get((name, priority))
                key = None if lane is None else lane.peek()
                if key is None or lane is None:
                    continue
                level = priority if aging is None else aging.level(priority, unpack_run_at(key), now)
                if found is None or (level, key & WHEN_MASK) < (found[0], found[1] & WHEN_MASK):
                    found = (level, key, lane)
        return found

    def take(self, best: Best, at_top: bool = True) -> int:
        """Pop ``best`` from its lane. ``at_top``: found by ``best`` just now, so its
        entry heads its top heap and is replaced there by the lane's next key (found
        by ``best_of``, the entry is stale now and is replaced when it surfaces)."""
        _, key, lane = best
        lane.pop()
        if at_top:
            heap = self.tops[lane.local][lane.priority]
            following = lane.peek()
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following, next(serial), lane))
        return key

    def rebuild(self, runs_here: Callable[[str], bool]) -> None:
        """Order every lane and the top heaps again (start-up; a handler registered
        or removed changes which lanes run here)."""
        self.tops = {kind: [[] for _ in range(6)] for kind in (True, False)}
        for lane in self.lanes.values():
            lane.local = runs_here(lane.name)
            heapq.heapify(lane.heap)
            key = lane.peek()
            if key is not None:
                self.tops[lane.local][lane.priority].append((key, next(serial), lane))
        for kind in self.tops.values():
            for heap in kind:
                heapq.heapify(heap)

    def forget_empty(self) -> None:
        for where in [w for w, lane in self.lanes.items() if not lane.heap]:
            del self.lanes[where]

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.lanes.values())
