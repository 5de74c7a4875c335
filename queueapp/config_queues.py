"""A setting's value for one queue: the config file's ``[queues.NAME]`` table over
the setting itself. Part of ``Config`` (config.py), kept apart so that each part
stays readable."""

from __future__ import annotations

from typing import Any

from .flow import Aging, GroupLimits
from .health import HealthThresholds

HEALTH_FIELDS = ("health_failure_rate_warning", "health_failure_rate_critical", "health_waiting_warning",
                 "health_waiting_critical", "health_active_warning", "health_delayed_warning")


class PerQueue:
    queues: dict[str, dict[str, Any]]
    concurrency: int
    aging_every_ms: int
    aging_max_levels: int
    stuck_after_ms: int

    def thresholds_for(self, queue: str) -> HealthThresholds:
        values = {name: getattr(self, name) for name in HEALTH_FIELDS}
        values.update({k: v for k, v in self.queues.get(queue, {}).items() if k in HEALTH_FIELDS})
        return HealthThresholds(
            failure_rate_warning=values["health_failure_rate_warning"],
            failure_rate_critical=values["health_failure_rate_critical"],
            waiting_warning=values["health_waiting_warning"],
            waiting_critical=values["health_waiting_critical"],
            active_warning=values["health_active_warning"],
            delayed_warning=values["health_delayed_warning"],
            stuck_after_ms=self.stuck_after_ms,
        )

    def concurrency_for(self, queue: str) -> int:
        return int(self.queues.get(queue, {}).get("concurrency", self.concurrency))

    def aging_for(self, queue: str) -> Aging | None:
        q = {"aging_every_ms": self.aging_every_ms, "aging_max_levels": self.aging_max_levels,
             **self.queues.get(queue, {})}
        return Aging(q["aging_every_ms"], q["aging_max_levels"]) if q["aging_every_ms"] else None

    def group_limits_for(self, queue: str) -> GroupLimits:  # [queues.NAME.groups]
        table = self.queues.get(queue, {}).get("groups", {})
        return GroupLimits(table.get("concurrency"), table.get("rate_max"), table.get("rate_per_ms"))
