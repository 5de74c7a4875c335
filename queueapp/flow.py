"""Flow control per group key (options.group): how many jobs of one key may run at
once, how many may start in a window, whether the key is paused; and priority aging.

A queue's jobs with the same key form a *line* (dispatch/lanes.py). Each line has a ``Gate``
that says how many of its jobs may start now (``room``) and, when none may, when
time alone opens it again (``reopens_at``). Jobs without a key are a line with no
limits. Nothing here touches the store or the clock: times are passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

NO_LIMIT = 1 << 30
AGED_CEILING = 2  # the best level aging gives: HIGH (flow.Aging)


@dataclass(frozen=True, slots=True)
class GroupLimits:
    """Limits of one key: at most ``concurrency`` active jobs, at most ``rate_max``
    starts in any window of ``rate_per_ms`` (None: no such limit)."""

    concurrency: int | None = None
    rate_max: int | None = None
    rate_per_ms: int | None = None

    @property
    def limited(self) -> bool:
        return self.concurrency is not None or self.rate_max is not None


NONE = GroupLimits()


@dataclass(frozen=True, slots=True)
class KeySettings:
    """One key's own settings: its limits (None: the queue's), and a pause (until
    ``paused_until`` ms, or until resumed when that is None)."""

    limits: GroupLimits | None = None
    paused: bool = False
    paused_until: int | None = None


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A change of one key's settings that names what it changes: its limits, its
    pause, or both. What it does not name stays as stored, so a change of limits
    and a pause made at the same moment both hold."""

    sets_limits: bool = False
    limits: GroupLimits | None = None  # None: the queue's again
    sets_pause: bool = False
    paused: bool = False
    paused_until: int | None = None

    @classmethod
    def of_limits(cls, limits: GroupLimits | None) -> KeyChange:
        return cls(sets_limits=True, limits=limits)

    @classmethod
    def of_pause(cls, paused: bool, until: int | None = None) -> KeyChange:
        return cls(sets_pause=True, paused=paused, paused_until=until if paused else None)

    @classmethod
    def forget(cls) -> KeyChange:
        return cls(sets_limits=True, sets_pause=True)


@dataclass(slots=True)
class GroupPolicy:
    """A queue's group policy: the limits of every key, the keys with limits of
    their own, and the paused keys (until a time in ms, or None: until resumed)."""

    default: GroupLimits = NONE
    overrides: dict[str, GroupLimits] = field(default_factory=dict)
    paused: dict[str, int | None] = field(default_factory=dict)

    def limits_of(self, key: str | None) -> GroupLimits:
        if key is None:
            return NONE  # jobs without a key take their turn, unlimited
        return self.overrides.get(key, self.default)

    def longest_window(self) -> int:
        """The longest rate window of any key (0: no rate limit)."""
        return max((limits.rate_per_ms or 0 for limits in (self.default, *self.overrides.values())), default=0)

    def key_settings(self, key: str) -> KeySettings:
        return KeySettings(self.overrides.get(key), key in self.paused, self.paused.get(key))

    def with_key(self, key: str, settings: KeySettings) -> GroupPolicy:
        """This policy with ``key``'s settings replaced."""
        overrides = {k: v for k, v in self.overrides.items() if k != key}
        paused = {k: v for k, v in self.paused.items() if k != key}
        if settings.limits is not None:
            overrides[key] = settings.limits
        if settings.paused:
            paused[key] = settings.paused_until
        return GroupPolicy(self.default, overrides, paused)


@dataclass(slots=True)
class Gate:
    """What lets a line's jobs start: its limits, its jobs being claimed or running,
    the recent starts (times in ms, oldest first), and a pause."""

    limits: GroupLimits = NONE
    claiming: int = 0  # taken from the line, claim not yet committed
    running: int = 0  # active in the store (in this process or leased)
    starts: deque[int] = field(default_factory=deque)
    paused: bool = False
    paused_until: int | None = None  # None while paused: until resumed

    @property
    def busy(self) -> int:
        return self.claiming + self.running

    def room(self, now: int) -> int:
        """How many of the line's jobs may start at ``now``."""
        if self.paused and (self.paused_until is None or now < self.paused_until):
            return 0
        limits = self.limits
        room = NO_LIMIT
        if limits.concurrency is not None:
            room = limits.concurrency - self.busy
        if limits.rate_max is not None and limits.rate_per_ms is not None:
            starts = self.starts
            gone = now - limits.rate_per_ms
            while starts and starts[0] <= gone:  # a start at ``gone`` is a full window ago
                starts.popleft()
            room = min(room, limits.rate_max - len(starts))
        return max(0, room)

    def reopens_at(self, now: int) -> int | None:
        """When time alone gives room back (a pause with a duration ends, the oldest
        start of a full window leaves it); None when only a finish or a resume can."""
        if self.paused:
            if self.paused_until is None:
                return None
            if now < self.paused_until:
                return self.paused_until
        limits = self.limits
        if limits.rate_max is not None and limits.rate_per_ms is not None and len(self.starts) >= limits.rate_max:
            return self.starts[len(self.starts) - limits.rate_max] + limits.rate_per_ms
        return None

    def charge(self, now: int) -> None:
        """One of the line's jobs was taken to start at ``now``."""
        self.claiming += 1
        if self.limits.rate_max is not None:
            self.starts.append(now)  # never handed back: a start that found its job gone still counts

    def remember_start(self, at: int) -> None:
        """A start before a restart, still inside the window (read from the table)."""
        if self.limits.rate_max is not None:
            self.starts.append(at)

    def idle(self) -> bool:
        return self.busy == 0 and not self.starts and not self.paused


@dataclass(frozen=True, slots=True)
class Aging:
    """Priority aging: a waiting job rises one level (toward HIGH) for each
    ``every_ms`` it has waited since it was due, at most ``max_levels`` levels, and
    never above HIGH (2): CRITICAL is for jobs sent as critical.

    With ``every_ms`` = 60,000 and ``max_levels`` = 2, a LOW (4) job due at 12:00
    competes as NORMAL (3) from 12:01 and as HIGH (2) from 12:02 on, where it stays:
    ahead of HIGH jobs due after 12:00, behind CRITICAL ones. Within a level the job
    due first goes first, as without aging. The ceiling is what makes that hold:
    were HIGH jobs to age into CRITICAL as well, a steady stream of them would stay a
    level ahead of every aged job, and the aged job would starve anyway."""

    every_ms: int
    max_levels: int

    def level(self, priority: int, run_at: int, now: int) -> int:
        waited = now - run_at
        if waited < self.every_ms or priority <= AGED_CEILING:
            return priority
        return max(AGED_CEILING, priority - min(self.max_levels, waited // self.every_ms))
