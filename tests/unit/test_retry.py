import random

import pytest

from queueapp.retry import (
    BackoffPolicy,
    calculate_backoff_delay,
    get_default_strategy,
    next_attempt,
    strategy_for_job,
)


def test_exponential_without_jitter_gives_the_seed_schedule():
    policy = BackoffPolicy("exponential", delay=2000, max_delay=60_000, multiplier=2)
    assert [calculate_backoff_delay(n, policy) for n in range(1, 8)] == [
        2000, 4000, 8000, 16000, 32000, 60000, 60000,
    ]


def test_fixed_backoff_is_constant():
    policy = BackoffPolicy("fixed", delay=5000)
    assert [calculate_backoff_delay(n, policy) for n in (1, 2, 3, 10)] == [5000] * 4


def test_multiplier_other_than_two():
    policy = BackoffPolicy("exponential", delay=100, multiplier=3)
    assert [calculate_backoff_delay(n, policy) for n in (1, 2, 3, 4)] == [100, 300, 900, 2700]


def test_jitter_only_shortens_and_stays_within_its_fraction():
    policy = BackoffPolicy("exponential", delay=1000, max_delay=4000, multiplier=2, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 6):
        base = min(1000 * 2 ** (attempt - 1), 4000)
        delays = {calculate_backoff_delay(attempt, policy, rng) for _ in range(200)}
        assert min(delays) >= base * 0.5
        assert max(delays) <= base
        assert len(delays) > 50  # really random, not a constant


def test_huge_attempt_numbers_do_not_overflow():
    policy = BackoffPolicy("exponential", delay=1000, multiplier=10)
    assert calculate_backoff_delay(5000, policy) == 24 * 3600 * 1000
    capped = BackoffPolicy("exponential", delay=1000, max_delay=9000, multiplier=10)
    assert calculate_backoff_delay(5000, capped) == 9000


@pytest.mark.parametrize(
    "kwargs",
    [{"multiplier": 0.5}, {"jitter": 1.5}, {"jitter": -0.1}, {"delay": -1}, {"type": "linear"}],
)
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_attempt_counts_from_one():
    with pytest.raises(ValueError):
        calculate_backoff_delay(0, BackoffPolicy())


def test_default_strategies_by_kind_and_by_job_name():
    assert get_default_strategy("email").delay == 2000
    assert get_default_strategy("report").type == "fixed"
    assert get_default_strategy("unknown") == get_default_strategy("default")
    assert strategy_for_job("send-email") == get_default_strategy("email")
    assert strategy_for_job("process-payment") == get_default_strategy("payment")
    assert strategy_for_job("resize-image") == get_default_strategy("default")


def test_next_attempt_retries_until_attempts_are_spent():
    options = {"backoff": {"type": "fixed", "delay": 500}}
    assert next_attempt("x", options, 3, 1, 1000) == ("delayed", 1500)
    assert next_attempt("x", options, 3, 2, 1000) == ("delayed", 1500)
    assert next_attempt("x", options, 3, 3, 1000) == ("failed", 1000)
    assert next_attempt("x", options, 3, 1, 1000, retry=False) == ("failed", 1000)
    zero = {"backoff": {"type": "fixed", "delay": 0}}
    assert next_attempt("x", zero, 3, 1, 1000) == ("waiting", 1000)
