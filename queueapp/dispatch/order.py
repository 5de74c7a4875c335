"""A queue's waiting jobs in the order they start: its lines (lanes.py), taking turns.

Per kind (jobs run by this process's handlers, or leased by external workers) a heap
holds an entry per line with work and room: (rank, serial, line), the rank packing
(level, turn, when) into one integer, compared in C.

- A lower level goes first: a HIGH job of any key starts before the NORMAL jobs of
  every key (the level is the job's priority, or its aged priority, groups.Aging).
- Among lines whose best jobs share a level, the line served longest ago goes first:
  a line never served has turn 0, and each time a line is served it gets the next
  number. So keys with due work take turns, a job each, and a key with 100,000
  waiting jobs cannot delay a key with 10. The jobs without a key are one more line.
- Then the job due first, then the one that arrived first.

A line without room (its key at its limit of active jobs or of starts, or paused) is
*closed*: out of the heaps until a finish, a resume, a new policy or time gives room
back (``reopen``; ``closed_until`` asks the dispatcher to call it at a time).

An entry is trusted only while it is its line's current entry and still names the
line's best job and turn; otherwise the line is offered again when it surfaces. With
aging, levels improve as time passes, so the heaps are ranked again every second.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..flow import Aging, GroupPolicy
from .lanes import WHEN_MASK, Best, Lane, Line, serial, unpack_id, unpack_run_at

RERANK_MS = 1000  # with aging: how often every line's level is computed again

Entry = tuple[int, int, Line]
_TURN_SHIFT = 90  # below it: the job's due time and id (lanes.WHEN_MASK)
_LEVEL_SHIFT = _TURN_SHIFT + 48  # turns fit 48 bits: 2.8e14 takes


def rank(level: int, turn: int, key: int) -> int:
    """The order of a line's entry: its best job's level, the line's turn, then the
    job's due time and id."""
    return (level << _LEVEL_SHIFT) | (turn << _TURN_SHIFT) | (key & WHEN_MASK)


@dataclass(frozen=True, slots=True)
class Taken:
    """Jobs popped from their lanes, with what it takes to put them back."""

    entries: list[tuple[Lane, int]]
    owner: Lanes | None = None
    now: int = 0  # when they were taken: their start time, which rate limits count

    @property
    def ids(self) -> list[int]:
        return [unpack_id(key) for _, key in self.entries]

    @property
    def due_times(self) -> list[int]:
        """The due time each job was taken at (a claim leaves a job moved since)."""
        return [unpack_run_at(key) for _, key in self.entries]

    def put_back(self) -> None:
        """Return the entries to their lanes, as they were (nothing was claimed)."""
        if self.owner is not None:
            self.owner.put_back(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)


class Lanes:
    """A queue's lines by group key, and the order in which they are served."""

    def __init__(
        self, queue: str, runs_here: Callable[[str], bool], policy: GroupPolicy | None = None,
        aging: Aging | None = None, now: Callable[[], int] = lambda: 0,
        closed_until: Callable[[Line, int], None] = lambda line, at: None,
    ) -> None:
        """``closed_until(line, at)``: a closed line opens again by time alone at ``at``
        (a key's pause or rate window runs out): ``reopen`` it then."""
        self.queue = queue
        self.runs_here = runs_here
        self.policy = policy or GroupPolicy()
        self.aging = aging
        self.now = now
        self.lines: dict[str | None, Line] = {}
        self._heaps: dict[bool, list[Entry]] = {True: [], False: []}
        self._turns = itertools.count(1)
        self._ranked_at = 0
        self._names: dict[str, set[str | None]] = {}  # job name -> keys of lines with its lanes
        self.closed_until = closed_until

    # where jobs go -----------------------------------------------------------------

    def line(self, key: str | None) -> Line:
        found = self.lines.get(key)
        if found is None:
            found = self.lines[key] = Line(self.queue, key, self.policy.limits_of(key))
            self._pause_as_told(found)
        return found

    def lane(self, name: str, priority: int = 3, group: str | None = None) -> Lane:
        line = self.line(group)
        found = line.lanes.get((name, priority))
        if found is None:
            found = line.lane(name, priority, self.runs_here(name))
            self._names.setdefault(name, set()).add(group)
        return found

    def push(self, lane: Lane, key: int) -> None:
        line = self.line(lane.group)
        if line.push(lane, key):
            self._offer(line, lane.local)

    def push_many(self, lane: Lane, keys: list[int]) -> None:
        line = self.line(lane.group)
        if keys and line.push_many(lane, keys):
            self._offer(line, lane.local)

    def add_unordered(self, lane: Lane, key: int) -> None:
        """Append without ordering (start-up); ``rebuild`` must follow."""
        lane.heap.append(key)

    # the order -----------------------------------------------------------------------

    def rebuild(self) -> None:
        """Order every line and the heaps again (start-up; a handler registered or
        removed changes which lanes run here)."""
        for line in self.lines.values():
            line.rebuild(self.runs_here)
        self._rank()

    def _rank(self) -> None:
        now = self.now()
        self._heaps = {True: [], False: []}
        for line in self.lines.values():
            line.entry = {True: None, False: None}
            self._offer_both(line, now)
        self._ranked_at = now

    def _offer(self, line: Line, local: bool, now: int | None = None, found: Best | None = None) -> None:
        """Give ``line`` an entry in the heap of its kind, unless it has a better one
        (``found``: its best job, when the caller has just looked)."""
        if line.closed:
            return
        if found is None:
            found = line.best(local, self.aging, self.now() if now is None else now)
        if found is None:
            return
        order = rank(found[0], line.turn, found[1])
        old = line.entry[local]
        if old is not None and old[0] <= order:
            return
        entry = (order, next(serial), line)
        line.entry[local] = entry
        heapq.heappush(self._heaps[local], entry)

    def take(self, limit: int, local: bool) -> Taken:
        """Pop up to ``limit`` jobs in order, from the lanes that run in this process
        (``local``) or from those external workers lease, within their keys' room."""
        now = self.now()
        if self.aging is not None and now - self._ranked_at >= RERANK_MS:
            self._rank()
        heap = self._heaps[local]
        taken: list[tuple[Lane, int]] = []
        while heap and len(taken) < limit:
            entry = heapq.heappop(heap)
            line = entry[2]
            if line.entry[local] is not entry or line.closed:
                continue  # superseded, or its line closed since
            line.entry[local] = None
            found = line.best(local, self.aging, now)
            if found is None:
                continue
            if rank(found[0], line.turn, found[1]) != entry[0]:
                self._offer(line, local, now)  # its best job or its turn changed
                continue
            room = line.gate.room(now)
            if room <= 0:
                self._close(line, now)
                continue
            # Alone in the order: as many as its room allows. Else one, then the next key.
            found = self._serve(line, local, found, min(room, limit - len(taken)) if not heap else 1, now, taken)
            line.turn = next(self._turns)
            if line.gate.room(now) <= 0:
                self._close(line, now)
            elif found is not None:
                self._offer(line, local, now, found)
        return Taken(taken, self, now)

    def _serve(self, line: Line, local: bool, found: Best | None, count: int, now: int,
               taken: list[tuple[Lane, int]]) -> Best | None:
        """Take up to ``count`` of ``line``'s jobs, best first (``found``: its best
        now); return its best job after them."""
        gate, aging = line.gate, self.aging
        for _ in range(count):
            if found is None:
                break
            taken.append((found[2], line.take(found)))
            gate.charge(now)
            found = line.best(local, aging, now)
        return found

    def take_named(self, names: list[str], limit: int) -> Taken:
        """Pop up to ``limit`` jobs from the lanes of ``names`` only, in order."""
        now = self.now()
        wanted = list(dict.fromkeys(names))
        heap: list[tuple[int, int, Line, Best]] = []

        def offer(line: Line) -> None:
            if line.closed or line.gate.room(now) <= 0:
                if not line.closed:
                    self._close(line, now)
                return
            found = line.best_of(wanted, self.aging, now)
            if found is not None:
                heapq.heappush(heap, (rank(found[0], line.turn, found[1]), next(serial), line, found))

        for key in {k for name in wanted for k in self._names.get(name, ())}:
            if (line := self.lines.get(key)) is not None:
                offer(line)
        taken: list[tuple[Lane, int]] = []
        while heap and len(taken) < limit:
            *_, line, found = heapq.heappop(heap)
            taken.append((found[2], line.take(found, at_top=False)))
            line.gate.charge(now)
            line.turn = next(self._turns)
            offer(line)
        self._offer_again({lane.group for lane, _ in taken}, now)  # their entries are stale now
        return Taken(taken, self, now)

    def _offer_again(self, keys: set[str | None], now: int) -> None:
        for key in keys:
            line = self.lines.get(key)
            if line is not None:
                self._offer_both(line, now)

    def _offer_both(self, line: Line, now: int) -> None:
        for local in (True, False):
            self._offer(line, local, now)

    # room given and taken back ------------------------------------------------------------

    def _close(self, line: Line, now: int) -> None:
        line.closed = True
        line.entry = {True: None, False: None}
        self._reopen_later(line, now)

    def _reopen_later(self, line: Line, now: int) -> None:
        """Ask to be called back when time alone gives ``line`` room (if it can)."""
        at = line.gate.reopens_at(now)
        if at is not None:
            self.closed_until(line, at)

    def reopen(self, line: Line) -> bool:
        """Put a closed line back in order if it has room now; True if it did."""
        if not line.closed or self.lines.get(line.key) is not line:
            return False
        now = self.now()
        if line.gate.room(now) <= 0:
            self._reopen_later(line, now)
            return False
        line.closed = False
        self._offer_both(line, now)
        return True

    def claimed(self, taken: Taken, started: set[int]) -> bool:
        """The claim of ``taken`` committed; ``started`` are the ids now active (the
        others had moved on). True when a line reopened."""
        reopened = False
        for lane, key in taken.entries:
            line = self.line(lane.group)
            line.gate.claiming -= 1
            if unpack_id(key) in started:
                line.gate.running += 1
            else:
                reopened |= self.reopen(line)
        return reopened

    def put_back(self, entries: list[tuple[Lane, int]]) -> None:
        """A claim that changed nothing: the jobs back in line, as they were."""
        for lane, key in entries:
            line = self.line(lane.group)
            line.gate.claiming -= 1
            self.push(self.lane(lane.name, lane.priority, lane.group), key)
            self.reopen(line)

    def ran(self, group: str | None, delta: int) -> bool:
        """A job of ``group`` became active (+1: adopted at start-up) or stopped
        running (-1). True when its line reopened."""
        line = self.line(group)
        line.gate.running += delta
        return delta < 0 and self.reopen(line)

    # the policy ----------------------------------------------------------------------------

    def apply(self, policy: GroupPolicy) -> None:
        """A new group policy: every line's limits and pause again, in order again."""
        self.policy = policy
        for line in self.lines.values():
            line.gate.limits = policy.limits_of(line.key)
            self._pause_as_told(line)
            line.closed = False
        self._rank()

    def _pause_as_told(self, line: Line) -> None:
        gate, key = line.gate, line.key
        gate.paused = key is not None and key in self.policy.paused
        gate.paused_until = self.policy.paused[key] if key is not None and gate.paused else None

    # the rest ---------------------------------------------------------------------------------

    def forget_empty(self) -> None:
        """Drop lanes with nothing left in them, and lines with nothing to remember."""
        now = self.now()
        for key, line in list(self.lines.items()):
            line.forget_empty()
            line.gate.room(now)  # drops starts out of the window
            if (not line.lanes and line.gate.idle() and key not in self.policy.overrides
                    and key not in self.policy.paused):
                del self.lines[key]
        self._names = {}
        for key, line in self.lines.items():
            for name, _ in line.lanes:
                self._names.setdefault(name, set()).add(key)

    def all_lanes(self) -> Iterator[Lane]:
        for line in self.lines.values():
            yield from line.lanes.values()

    def __len__(self) -> int:
        return sum(len(line) for line in self.lines.values())
