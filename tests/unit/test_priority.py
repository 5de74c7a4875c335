import pytest

from queueapp.model import Priority
from queueapp.priority import calculate_priority, get_job_options

NOW = 1_800_000_000_000
HOUR = 3_600_000


def test_the_seed_example_is_high():
    # premium 2 + high 3 + revenue 3 + deadline weeks away 0 = 8
    assert calculate_priority(
        user_tier="premium", urgency="high", business_impact="revenue",
        deadline_ms=NOW + 30 * 24 * HOUR, now_ms=NOW,
    ) is Priority.HIGH


@pytest.mark.parametrize(
    ("factors", "expected"),
    [
        ({}, Priority.BACKGROUND),
        ({"user_tier": "standard"}, Priority.BACKGROUND),
        ({"user_tier": "premium"}, Priority.LOW),
        ({"user_tier": "enterprise", "urgency": "normal"}, Priority.NORMAL),
        ({"user_tier": "enterprise", "urgency": "high", "business_impact": "operational"}, Priority.HIGH),
        ({"user_tier": "enterprise", "urgency": "critical", "business_impact": "revenue"}, Priority.CRITICAL),
        ({"urgency": "critical"}, Priority.HIGH),  # critical alone is never below HIGH
        ({"deadline_ms": NOW + HOUR // 2, "business_impact": "customer"}, Priority.NORMAL),
        ({"deadline_ms": NOW - HOUR, "urgency": "high", "business_impact": "revenue",
          "user_tier": "premium"}, Priority.CRITICAL),
    ],
)
def test_rule_table(factors, expected):
    assert calculate_priority(now_ms=NOW, **factors) is expected


def test_unknown_factor_values_are_errors():
    with pytest.raises(ValueError, match="userTier"):
        calculate_priority(user_tier="gold", now_ms=NOW)
    with pytest.raises(ValueError, match="urgency"):
        calculate_priority(urgency="asap", now_ms=NOW)


def test_recommended_options_follow_priority():
    assert [get_job_options(p)["attempts"] for p in range(1, 6)] == [5, 4, 3, 2, 1]
    critical = get_job_options(1)
    assert critical["priority"] == 1 and critical["backoff"]["type"] == "exponential"
    with pytest.raises(ValueError):
        get_job_options(6)
