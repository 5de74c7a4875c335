"""Group flow control of a queue, as callers see it: the policy (the limits of every
key), keys' own limits, pauses, and what each key is doing now.

Every change is written to the store first; its post-commit hook hands the new
policy to the ledger, so memory follows the table in commit order and the
dispatcher applies it at once (a key over a lowered limit starts nothing until
enough of its jobs finish; a resumed key starts at once).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .clock import Clock
from .dispatch import Dispatcher
from .errors import NotFound
from .flow import Aging, GroupLimits, KeyChange, KeySettings
from .store import Store


@dataclass(frozen=True, slots=True)
class KeyView:
    key: str
    limits: GroupLimits  # in force: its own, or the queue's
    custom: bool
    paused: bool
    paused_until: int | None
    active: int
    waiting: int


@dataclass(frozen=True, slots=True)
class GroupsView:
    queue: str
    limits: GroupLimits
    aging: Aging | None
    keys: list[KeyView]
    total_keys: int


class GroupDesk:
    def __init__(self, store: Store, dispatcher: Dispatcher, clock: Clock) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.ledger = dispatcher.ledger
        self.policies = dispatcher.ledger.policies
        self.clock = clock

    async def view(self, queue: str, limit: int = 100) -> GroupsView:
        """The queue's policy and its keys: those with jobs waiting or running, and
        those with settings of their own; the most waiting first."""
        counts = await self.dispatcher.key_counts(queue)
        policy = self.policies.of(queue)
        keys = counts.keys() | policy.overrides.keys() | policy.paused.keys()
        views = sorted((self._key(queue, key, counts.get(key, (0, 0))) for key in keys),
                       key=lambda v: (-v.waiting, -v.active, v.key))
        return GroupsView(queue, policy.default, self.policies.aging_for(queue), views[:limit], len(views))

    async def key(self, queue: str, key: str) -> KeyView:
        return self._key(queue, key, (await self.dispatcher.key_counts(queue)).get(key, (0, 0)))

    def _key(self, queue: str, key: str, counts: tuple[int, int]) -> KeyView:
        policy = self.policies.of(queue)
        own = policy.key_settings(key)
        paused = own.paused and (own.paused_until is None or own.paused_until > self.clock.now_ms())
        return KeyView(key, policy.limits_of(key), own.limits is not None, paused,
                       own.paused_until if paused else None, *counts)

    async def set_policy(self, queue: str, limits: GroupLimits | None) -> GroupsView:
        """The limits of every key of ``queue`` (None: back to the config file's)."""
        await self.store.ensure_queue(queue, self.clock.now_ms())
        default = limits or self.policies.defaults(queue)

        def applied(_: object) -> None:
            self.ledger.set_policy(queue, replace(self.policies.of(queue), default=default))

        await self.store.set_group_policy(queue, limits, self.clock.now_ms(), then=applied)
        return await self.view(queue)

    async def set_key(self, queue: str, key: str, limits: GroupLimits | None) -> KeyView:
        """``key``'s own limits (None: the queue's again); its pause stays as it is."""
        return await self._save(queue, key, KeyChange.of_limits(limits))

    async def pause(self, queue: str, key: str, duration_ms: int | None) -> KeyView:
        """Start no job of ``key`` for ``duration_ms`` (None: until resumed). Its
        running jobs go on; its limits stay as they are."""
        until = None if duration_ms is None else self.clock.now_ms() + duration_ms
        return await self._save(queue, key, KeyChange.of_pause(True, until))

    async def resume(self, queue: str, key: str) -> KeyView:
        return await self._save(queue, key, KeyChange.of_pause(False))

    async def forget(self, queue: str, key: str) -> KeyView:
        """Drop ``key``'s own limits and pause."""
        if self.policies.of(queue).key_settings(key) == KeySettings():
            raise NotFound(f"group {key!r} of queue {queue} has no settings of its own")
        return await self._save(queue, key, KeyChange.forget())

    async def _save(self, queue: str, key: str, change: KeyChange) -> KeyView:
        """The store changes only what ``change`` names, in one statement, and
        answers the key's settings as they then stand: memory takes those, so two
        changes at once (limits and a pause) both hold, in memory as in the table."""
        await self.store.ensure_queue(queue, self.clock.now_ms())

        def applied(settings: KeySettings) -> None:
            self.ledger.set_policy(queue, self.policies.of(queue).with_key(key, settings))

        await self.store.set_group_key(queue, key, change, self.clock.now_ms(), then=applied)
        return await self.key(queue, key)
