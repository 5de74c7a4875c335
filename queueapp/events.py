"""Job transition events, published after the change they describe is committed.

Each subscriber has a bounded buffer. Publishing never waits: a subscriber whose
buffer is full is dropped (its ``closed`` is set), so a slow reader can neither
slow the dispatcher nor make memory grow without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
        self._queue: asyncio.Queue[JobEvent] = asyncio.Queue(maxsize)
        self.accept = accept
        self.closed = asyncio.Event()
        self.dropped = False

    def offer(self, event: JobEvent) -> None:
        if not self.accept(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.close()

    async def get(self) -> JobEvent:
        return await self._queue.get()

    async def until(self, predicate: Callable[[JobEvent], bool], timeout: float = 10.0) -> JobEvent:
        """The next event that satisfies ``predicate`` (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._queue.get()
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
    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []

    def subscribe(
        self, maxsize: int = 10_000, accept: Callable[[JobEvent], bool] = lambda e: True
    ) -> Subscription:
        sub = Subscription(self, maxsize, accept)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def close_all(self) -> None:
        """End every subscription (shutting down: open streams finish at once)."""
        for sub in list(self._subscribers):
            sub.close()

    def publish(self, event: JobEvent) -> None:
        for sub in list(self._subscribers):
            sub.offer(event)

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)
