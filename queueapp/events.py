"""Job transition events, published after the change they describe is committed.

Each subscriber has a bounded buffer. Publishing never waits: a subscriber whose
buffer is full is dropped (its ``closed`` is set), so a slow reader can neither
slow the dispatcher nor make memory grow without bound.

Events are numbered in the order published, and the last ``REPLAY_EVENTS`` are kept
so that a reader that lost its connection can go on from the last one it saw
(``since``). Numbers restart with the process: an event's id is the bus's ``epoch``
and its number, so that an id from an earlier run is known as such. Events are built
only while someone listens (``active``), and for ``REPLAY_S`` after the last reader
left, so that a reader reconnecting finds what it missed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REPLAY_EVENTS = 10_000  # the newest events kept for readers that reconnect
REPLAY_S = 60.0  # events are built this long after the last reader left


@dataclass(frozen=True, slots=True)
class JobEvent:
    type: str  # added, waiting, active, progress, completed, retrying, failed, cancelled, stalled
    job_id: int
    queue: str
    name: str
    at: int
    detail: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int, accept: Callable[[JobEvent], bool]) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[tuple[int, JobEvent]] = asyncio.Queue(maxsize)
        self.accept = accept
        self.closed = asyncio.Event()
        self.dropped = False

    def offer(self, seq: int, event: JobEvent) -> None:
        if not self.accept(event):
            return
        try:
            self._queue.put_nowait((seq, event))
        except asyncio.QueueFull:
            self.dropped = True
            self.close()

    async def get(self) -> JobEvent:
        return (await self._queue.get())[1]

    async def get_numbered(self) -> tuple[int, JobEvent]:
        """The next event with its number (see EventBus.since)."""
        return await self._queue.get()

    async def until(self, predicate: Callable[[JobEvent], bool], timeout: float = 10.0) -> JobEvent:
        """The next event that satisfies ``predicate`` (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            while True:
                _, event = await self._queue.get()
                if predicate(event):
                    return event

    def close(self) -> None:
        self._bus.unsubscribe(self)
        self.closed.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._subscribers: list[Subscription] = []
        self._clock = clock
        self._seq = 0
        self._recent: deque[tuple[int, JobEvent]] = deque(maxlen=REPLAY_EVENTS)
        self._keep_until = 0.0
        # this run's part of every event id (hex milliseconds of its start)
        self.epoch = format(int(time.time() * 1000), "x")

    def subscribe(
        self, maxsize: int = 10_000, accept: Callable[[JobEvent], bool] = lambda e: True
    ) -> Subscription:
        sub = Subscription(self, maxsize, accept)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            if not self._subscribers:  # a reader may be reconnecting: keep building events a while
                self._keep_until = self._clock() + REPLAY_S

    def close_all(self) -> None:
        """End every subscription (shutting down: open streams finish at once)."""
        for sub in list(self._subscribers):
            sub.close()

    def publish(self, event: JobEvent) -> None:
        self._seq += 1
        self._recent.append((self._seq, event))
        for sub in list(self._subscribers):
            sub.offer(self._seq, event)

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int) -> tuple[list[tuple[int, JobEvent]], bool]:
        """The kept events numbered after ``seq``, and whether some after it are lost
        (older than those kept, or numbered beyond this run's)."""
        kept = [(n, e) for n, e in self._recent if n > seq]
        oldest = self._recent[0][0] if self._recent else self._seq + 1
        return kept, seq > self._seq or seq + 1 < oldest

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def seq_of(self, event_id: str) -> int | None:
        """The number in an id of this run's events; None for another run's, or no id."""
        epoch, _, number = event_id.strip().partition("-")
        if epoch != self.epoch or not number.isdigit() or len(number) > 18:
            return None
        return int(number)

    @property
    def active(self) -> bool:
        return bool(self._subscribers) or self._clock() < self._keep_until

    def __len__(self) -> int:
        return len(self._subscribers)
