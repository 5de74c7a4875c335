"""Queue health from metrics and thresholds (the seed's checkQueueHealth).

Pure: it judges numbers it is given; the monitor and the API gather them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import to_iso


@dataclass(frozen=True, slots=True)
class HealthReport:
    queue: str
    status: str  # healthy, warning or critical
    issues: list[str]
    metrics: dict[str, Any]
    timestamp: int
    replica: dict[str, Any] | None = None  # the database's copy, when it is replicated

    def as_dict(self) -> dict[str, Any]:
        """As the API and alerts show it."""
        shown = {"status": self.status, "issues": self.issues, "metrics": self.metrics,
                 "timestamp": to_iso(self.timestamp)}
        if self.replica is not None:
            shown["replica"] = self.replica
        return shown


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """A queue's thresholds; their defaults are the settings' (config.py)."""

    failure_rate_warning: float
    failure_rate_critical: float
    waiting_warning: int
    waiting_critical: int
    active_warning: int
    delayed_warning: int
    stuck_after_ms: int


def judge(
    metrics: dict[str, Any], failure_rate: float | None, stuck: int, t: HealthThresholds
) -> tuple[str, list[str]]:
    """(status, issues). ``metrics`` is the seed's metrics object; waiting counts jobs
    waiting whether or not the queue is paused (a paused backlog is still a backlog)."""
    critical: list[str] = []
    warning: list[str] = []
    if failure_rate is not None:
        shown = f"{failure_rate * 100:.1f}%"
        if failure_rate > t.failure_rate_critical:
            critical.append(f"failure rate {shown} over the last 5 minutes is above {t.failure_rate_critical:.0%}")
        elif failure_rate > t.failure_rate_warning:
            warning.append(f"failure rate {shown} over the last 5 minutes is above {t.failure_rate_warning:.0%}")
    waiting = metrics["waiting"] + metrics["paused"]
    if waiting > t.waiting_critical:
        critical.append(f"{waiting} jobs waiting, above {t.waiting_critical}")
    elif waiting > t.waiting_warning:
        warning.append(f"{waiting} jobs waiting, above {t.waiting_warning}")
    if metrics["active"] > t.active_warning:
        warning.append(f"{metrics['active']} jobs active, above {t.active_warning}")
    if metrics["delayed"] > t.delayed_warning:
        warning.append(f"{metrics['delayed']} jobs delayed, above {t.delayed_warning}")
    if stuck:
        warning.append(
            f"{stuck} jobs stuck: active for more than {_duration(t.stuck_after_ms)} without a heartbeat"
        )
    status = "critical" if critical else "warning" if warning else "healthy"
    return status, critical + warning


def _duration(ms: int) -> str:
    for unit_ms, unit in ((3_600_000, "hours"), (60_000, "minutes"), (1000, "seconds")):
        if ms >= unit_ms and ms % unit_ms == 0:
            return f"{ms // unit_ms} {unit}"
    return f"{ms} ms"
