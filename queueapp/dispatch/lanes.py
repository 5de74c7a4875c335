"""In-memory ordering of unfinished jobs: what runs next, and when delayed jobs are due.

Per queue and job name, a *lane* holds the waiting jobs in a binary heap ordered by
(priority, run_at, id): a lower priority number first; within a priority, the job due
first; then the job that arrived first (ids grow with arrival). A heap entry is one
packed integer, so a million waiting jobs cost about 50 MB here and no payloads:

    key = priority << 90 | run_at_ms << 48 | id

(run_at in ms fits 42 bits until the year 2109, ids 48 bits.) Integers compare in C,
so heap operations stay cheap.

A queue's lanes (``Lanes``) keep a second heap of each lane's best key, so taking
``n`` jobs across any number of lanes costs ``O(n log lanes)``: a queue with 30,000
job names is served as fast as one with a single name.

Delayed jobs sit in one timer heap ordered by due time. Entries are never searched
for: a cancelled job leaves a tombstone and its entry is dropped when it surfaces.
The store's guarded UPDATEs are the last word either way: claiming a job that is no
longer waiting changes nothing.

Nothing here touches the store or the clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

_ID_BITS = 48
_RUN_AT_BITS = 42
_ID_MASK = (1 << _ID_BITS) - 1
_PRIORITY_SHIFT = _ID_BITS + _RUN_AT_BITS

# Tie-breaker of lane-top entries, so that two entries never compare their lanes.
_serial = itertools.count()


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


@dataclass(frozen=True, slots=True)
class Taken:
    """Job ids popped from their lanes, with what it takes to put them back."""

    entries: list[tuple[Lane, int]]
    owner: Lanes | None = None

    @property
    def ids(self) -> list[int]:
        return [unpack_id(key) for _, key in self.entries]

    def put_back(self) -> None:
        """Return the entries to their lanes, as they were (nothing was claimed)."""
        for lane, key in self.entries:
            if self.owner is not None:
                self.owner.push(lane, key)
            else:
                lane.push(key)

    def __bool__(self) -> bool:
        return bool(self.entries)


def take_best(lanes: list[Lane], limit: int) -> Taken:
    """Pop up to ``limit`` jobs across ``lanes`` in global (priority, run_at, id)
    order: ``O(len(lanes) + limit log len(lanes))``."""
    tops = [(key, next(_serial), lane) for lane in lanes if (key := lane.peek()) is not None]
    heapq.heapify(tops)
    taken: list[tuple[Lane, int]] = []
    while tops and len(taken) < limit:
        key, _, lane = heapq.heappop(tops)
        lane.pop()
        taken.append((lane, key))
        following = lane.peek()
        if following is not None:
            heapq.heappush(tops, (following, next(_serial), lane))
    return Taken(taken)


class Lanes:
    """A queue's lanes, by job name, and two heaps of their best keys: one over the
    lanes whose jobs run in this process, one over those external workers lease.

    A top heap may hold stale entries (a lane's best job was taken or killed, or a
    better one arrived); an entry is trusted only when it equals its lane's live best
    key, and a stale one is replaced by the lane's current best when it surfaces.
    Every non-empty lane always has an entry no worse than its best key, so a top
    heap's first valid entry is the best job of its kind in the queue."""

    def __init__(self, queue: str, runs_here: Callable[[str], bool]) -> None:
        self.queue = queue
        self.runs_here = runs_here
        self.by_name: dict[str, Lane] = {}
        self._local: set[str] = set()
        self._tops: dict[bool, list[tuple[int, int, Lane]]] = {True: [], False: []}

    def lane(self, name: str) -> Lane:
        found = self.by_name.get(name)
        if found is None:
            found = self.by_name[name] = Lane(self.queue, name)
            if self.runs_here(name):
                self._local.add(name)
        return found

    def push(self, lane: Lane, key: int) -> None:
        lane.push(key)
        if lane.heap[0] == key:  # a new best for its lane
            heapq.heappush(self._tops[lane.name in self._local], (key, next(_serial), lane))

    def push_many(self, lane: Lane, keys: list[int]) -> None:
        """``push`` for many keys: one heapify when they outnumber the lane's own."""
        if not keys:
            return
        lowest = min(keys)
        if len(keys) > len(lane.heap):
            lane.heap.extend(keys)
            heapq.heapify(lane.heap)
        else:
            for key in keys:
                heapq.heappush(lane.heap, key)
        if lane.heap[0] == lowest:  # a new best for its lane
            heapq.heappush(self._tops[lane.name in self._local], (lowest, next(_serial), lane))

    def add_unordered(self, lane: Lane, key: int) -> None:
        """Append without ordering (start-up); ``rebuild`` must follow."""
        lane.heap.append(key)

    def rebuild(self) -> None:
        """Order every lane and the top heaps again (start-up; a handler registered
        or removed changes which lanes run here)."""
        self._local = {name for name in self.by_name if self.runs_here(name)}
        self._tops = {True: [], False: []}
        for name, lane in self.by_name.items():
            heapq.heapify(lane.heap)
            key = lane.peek()
            if key is not None:
                self._tops[name in self._local].append((key, next(_serial), lane))
        for tops in self._tops.values():
            heapq.heapify(tops)

    def take(self, limit: int, local: bool) -> Taken:
        """Pop up to ``limit`` jobs, best first, from the lanes that run in this
        process (``local``) or from those external workers lease."""
        taken: list[tuple[Lane, int]] = []
        tops = self._tops[local]
        while tops and len(taken) < limit:
            key, _, lane = heapq.heappop(tops)
            best = lane.peek()
            if best is None or self.by_name.get(lane.name) is not lane:
                continue  # an empty or forgotten lane
            if best != key:
                heapq.heappush(tops, (best, next(_serial), lane))
                continue
            lane.pop()
            taken.append((lane, key))
            following = lane.peek()
            if following is not None:
                heapq.heappush(tops, (following, next(_serial), lane))
        return Taken(taken, self)

    def take_named(self, names: list[str], limit: int) -> Taken:
        """Pop up to ``limit`` jobs from the lanes of ``names`` only."""
        lanes = [self.by_name[n] for n in dict.fromkeys(names) if n in self.by_name]
        taken = take_best(lanes, limit)
        for lane, _ in taken.entries:  # the top heap must learn each lane's new best
            best = lane.peek()
            if best is not None:
                heapq.heappush(self._tops[lane.name in self._local], (best, next(_serial), lane))
        return Taken(taken.entries, self)

    def forget_empty(self) -> None:
        """Drop lanes with nothing left in them (their stale tops are skipped)."""
        for name in [n for n, lane in self.by_name.items() if not lane.heap]:
            del self.by_name[name]
            self._local.discard(name)

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.by_name.values())


@dataclass(order=True, slots=True)
class Timer:
    run_at: int
    job_id: int
    priority: int = field(compare=False)
    queue: str = field(compare=False)
    name: str = field(compare=False)


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
