"""Group policies by queue, as memory holds them: the config file's limits, then the
store's (which win), and each queue's priority aging. One object, shared by the
ledger (which applies a committed change), the work source (which obeys it) and
the groups desk (which shows it)."""

from __future__ import annotations

from collections.abc import Callable

from ..flow import NONE, Aging, GroupLimits, GroupPolicy


class GroupPolicies:
    def __init__(self, defaults: Callable[[str], GroupLimits] | None = None,
                 aging: Callable[[str], Aging | None] | None = None) -> None:
        self.defaults: Callable[[str], GroupLimits] = defaults or (lambda queue: NONE)
        self.aging_for: Callable[[str], Aging | None] = aging or (lambda queue: None)
        self.by_queue: dict[str, GroupPolicy] = {}

    def of(self, queue: str) -> GroupPolicy:
        found = self.by_queue.get(queue)
        if found is None:
            found = self.by_queue[queue] = GroupPolicy(self.defaults(queue))
        return found

    def set(self, queue: str, policy: GroupPolicy) -> None:
        self.by_queue[queue] = policy

    def stored(self, queue: str) -> bool:
        """Whether ``queue`` has group settings beyond the config file's."""
        policy = self.by_queue.get(queue)
        return policy is not None and bool(policy.default.limited or policy.overrides or policy.paused)
