"""A setting's value for one queue: the config file's ``[queues.NAME]`` table over
the setting itself. ``Config.per_queue()`` (config.py) builds one from the settings;
the service is handed its methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .flow import Aging, GroupLimits
from .health import HealthThresholds

HEALTH_PREFIX = "health_"  # health_waiting_warning is HealthThresholds.waiting_warning


@dataclass(frozen=True)
class QueueSettings:
    defaults: dict[str, Any]  # every setting a queue's table may override, by name
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # [queues.NAME], by queue
    stuck_after_ms: int = 0

    def _value(self, queue: str, name: str) -> Any:
        return self.tables.get(queue, {}).get(name, self.defaults[name])

    def thresholds_for(self, queue: str) -> HealthThresholds:
        health = {name.removeprefix(HEALTH_PREFIX): self._value(queue, name)
                  for name in self.defaults if name.startswith(HEALTH_PREFIX)}
        return HealthThresholds(**health, stuck_after_ms=self.stuck_after_ms)

    def concurrency_for(self, queue: str) -> int:
        return int(self._value(queue, "concurrency"))

    def aging_for(self, queue: str) -> Aging | None:
        every = self._value(queue, "aging_every_ms")
        return Aging(every, self._value(queue, "aging_max_levels")) if every else None

    def group_limits_for(self, queue: str) -> GroupLimits:  # [queues.NAME.groups]
        table = self.tables.get(queue, {}).get("groups", {})
        return GroupLimits(table.get("concurrency"), table.get("rate_max"), table.get("rate_per_ms"))
