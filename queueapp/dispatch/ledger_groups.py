"""What group flow control adds to the ledger (ledger.py): a finished job gives its
key room again, closed lines reopen when their time comes, a new policy applies.
Kept apart so that each part stays readable."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..flow import GroupLimits, GroupPolicy
from .lanes import Line, serial
from .runtime import ActiveJob, QueueRuntime
from .timers import TimerHeap


class GroupMoves:
    active: dict[int, ActiveJob]
    queues: dict[str, QueueRuntime]
    policies: dict[str, GroupPolicy]
    reopening: list[tuple[int, int, str, Line]]
    wake: Callable[[], None]
    timer_moved: Callable[[int], None]
    timers: TimerHeap
    group_defaults: Callable[[str], GroupLimits]  # the config file's limits of a queue's keys

    if TYPE_CHECKING:  # given by Ledger
        def queue(self, name: str) -> QueueRuntime: ...

    def drop_active(self, job_id: int) -> ActiveJob | None:
        """A job no longer runs: out of the active table, and its group has room again."""
        active = self.active.pop(job_id, None)
        if active is not None:
            q = self.queue(active.queue)
            if q.lanes.ran(active.group, -1):
                self._room_given(q)
        return active

    def _room_given(self, q: QueueRuntime) -> None:
        """A line of ``q`` reopened: whoever takes its jobs looks again."""
        self.wake()
        q.wake_waiters()

    def _reopen_at(self, queue: str, line: Line, at: int) -> None:
        heapq.heappush(self.reopening, (at, next(serial), queue, line))
        self.timer_moved(at)

    def reopen_due(self, now: int) -> None:
        """Open the lines whose pause or full rate window has run out by ``now``."""
        heap = self.reopening
        while heap and heap[0][0] <= now:
            _, _, queue, line = heapq.heappop(heap)
            q = self.queues.get(queue)
            if q is not None and q.lanes.reopen(line):
                self._room_given(q)

    def next_wake(self) -> int | None:
        """When the dispatcher must look again: the next delayed job due, or the next
        closed line to reopen."""
        times = [t for t in (self.timers.next_due(), self.reopening[0][0] if self.reopening else None)
                 if t is not None]
        return min(times) if times else None

    def policy_of(self, queue: str) -> GroupPolicy:
        found = self.policies.get(queue)
        if found is None:
            found = self.policies[queue] = GroupPolicy(self.group_defaults(queue))
        return found

    def set_policy(self, queue: str, policy: GroupPolicy) -> None:
        """A queue's group policy changed (or was read at start-up)."""
        self.policies[queue] = policy
        q = self.queues.get(queue)
        if q is not None:
            q.lanes.apply(policy)
            self._room_given(q)

