"""Priority from business factors, and recommended options per priority
(the seed's PrioritizationService).

The rule, in points:

    userTier        enterprise 3   premium 2    standard 1     free 0
    urgency         critical 4     high 3       normal 1       low 0
    businessImpact  revenue 3      customer 2   operational 1  internal 0
    deadline        passed or within 1 hour 3, within 24 hours 2, within 7 days 1, later 0

A missing factor scores 0. The sum maps to a priority:

    points  >= 10   1 CRITICAL
            7..9    2 HIGH
            4..6    3 NORMAL
            2..3    4 LOW
            0..1    5 BACKGROUND

and ``urgency: critical`` alone never yields less than HIGH.

The seed's example (premium, high, revenue, deadline weeks away) scores
2 + 3 + 3 + 0 = 8: HIGH.
"""

from __future__ import annotations

from typing import Any

from .model import DEFAULT_ATTEMPTS, Priority
from .retry import BackoffPolicy

USER_TIER = {"enterprise": 3, "premium": 2, "standard": 1, "free": 0}
URGENCY = {"critical": 4, "high": 3, "normal": 1, "low": 0}
BUSINESS_IMPACT = {"revenue": 3, "customer": 2, "operational": 1, "internal": 0}

HOUR_MS = 3_600_000


def _deadline_points(deadline_ms: int | None, now_ms: int) -> int:
    if deadline_ms is None:
        return 0
    left = deadline_ms - now_ms
    if left <= HOUR_MS:
        return 3
    if left <= 24 * HOUR_MS:
        return 2
    if left <= 7 * 24 * HOUR_MS:
        return 1
    return 0


def _lookup(table: dict[str, int], factor: str, value: str | None) -> int:
    if value is None:
        return 0
    if value not in table:
        allowed = ", ".join(table)
        raise ValueError(f"{factor} must be one of {allowed}, not {value!r}")
    return table[value]


def calculate_priority(
    *,
    user_tier: str | None = None,
    urgency: str | None = None,
    business_impact: str | None = None,
    deadline_ms: int | None = None,
    now_ms: int,
) -> Priority:
    """The priority for a job from its factors (see the module docstring for the rule).

    Raises ValueError for a factor value outside the tables: an unknown value is a
    mistake to report, not something to guess at.
    """
    points = (
        _lookup(USER_TIER, "userTier", user_tier)
        + _lookup(URGENCY, "urgency", urgency)
        + _lookup(BUSINESS_IMPACT, "businessImpact", business_impact)
        + _deadline_points(deadline_ms, now_ms)
    )
    if points >= 10:
        priority = Priority.CRITICAL
    elif points >= 7:
        priority = Priority.HIGH
    elif points >= 4:
        priority = Priority.NORMAL
    elif points >= 2:
        priority = Priority.LOW
    else:
        priority = Priority.BACKGROUND
    if urgency == "critical":
        priority = min(priority, Priority.HIGH)
    return Priority(priority)


# Recommended backoff and timeout per priority: important jobs retry sooner.
_RECOMMENDED: dict[int, tuple[BackoffPolicy, int]] = {
    1: (BackoffPolicy("exponential", 1000, 30_000, 2, 0.1), 60_000),
    2: (BackoffPolicy("exponential", 2000, 60_000, 2, 0.1), 120_000),
    3: (BackoffPolicy("exponential", 5000, 300_000, 2, 0.1), 300_000),
    4: (BackoffPolicy("exponential", 10_000, 600_000, 2, 0.1), 600_000),
    5: (BackoffPolicy("fixed", 60_000), 1_800_000),
}


def get_job_options(priority: int) -> dict[str, Any]:
    """Recommended ``options`` for a priority (the seed's ``getJobOptions``), in the
    API's camelCase shape, ready to pass to ``add_job``."""
    if priority not in DEFAULT_ATTEMPTS:
        raise ValueError("priority must be between 1 and 5")
    backoff, timeout = _RECOMMENDED[priority]
    return {
        "priority": priority,
        "attempts": DEFAULT_ATTEMPTS[priority],
        "backoff": backoff.to_options(),
        "timeout": timeout,
    }
