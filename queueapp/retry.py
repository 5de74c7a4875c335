"""How long a failed job waits before its next attempt (the seed's RetryLogicService).

Pure functions of the attempt number and a policy; nothing here touches the store.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

BackoffType = Literal["exponential", "fixed"]

UNCAPPED_CEILING_MS = 24 * 3600 * 1000
# The longest a worker, a handler or a server called may push a job's next attempt.
MAX_RETRY_AFTER_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """A retry delay policy.

    ``exponential``: the delay before retry n (n = 1 after the first failure) is
    ``delay * multiplier ** (n - 1)``, capped at ``max_delay``.
    ``fixed``: always ``delay``.

    ``jitter`` (0..1) shortens each delay by a random fraction of at most ``jitter``,
    so jobs that failed together do not all retry in the same instant. Jitter only
    ever shortens a delay: the result stays within ``[base * (1 - jitter), base]``
    and never exceeds ``max_delay``.
    """

    type: BackoffType = "exponential"
    delay: int = 1000
    max_delay: int | None = None
    multiplier: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.type not in ("exponential", "fixed"):
            raise ValueError(f"backoff type must be exponential or fixed, not {self.type!r}")
        if self.delay < 0:
            raise ValueError("backoff delay must be at least 0 ms")
        if self.max_delay is not None and self.max_delay < 0:
            raise ValueError("backoff maxDelay must be at least 0 ms")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    @classmethod
    def from_options(cls, backoff: dict[str, Any]) -> BackoffPolicy:
        """From the API's camelCase ``options.backoff`` object."""
        return cls(
            type=backoff.get("type", "exponential"),
            delay=backoff.get("delay", 1000),
            max_delay=backoff.get("maxDelay"),
            multiplier=backoff.get("multiplier", 2.0),
            jitter=backoff.get("jitter", 0.0),
        )

    def to_options(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "type": d["type"],
            "delay": d["delay"],
            "maxDelay": d["max_delay"],
            "multiplier": d["multiplier"],
            "jitter": d["jitter"],
        }


def calculate_backoff_delay(
    attempt: int, policy: BackoffPolicy, rng: random.Random | None = None
) -> int:
    """Milliseconds to wait before retry number ``attempt`` (1 = after the first failure).

    Worked schedule for the seed's exponential example
    (delay 2000, multiplier 2, maxDelay 60000, jitter 0):

        attempt  1     2     3     4      5      6      7
        delay    2000  4000  8000  16000  32000  60000  60000

    and for fixed (delay 5000): 5000, 5000, 5000, ...
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if policy.type == "fixed":
        base = float(policy.delay)
    else:
        try:
            base = policy.delay * float(policy.multiplier) ** (attempt - 1)
        except OverflowError:
            base = float("inf")
        # Without a maxDelay an exponential backoff stops growing at one day.
        base = min(base, UNCAPPED_CEILING_MS)
    if policy.max_delay is not None:
        base = min(base, policy.max_delay)
    if policy.jitter:
        base *= 1 - policy.jitter * (rng or random).random()
    return int(round(base))


# Default strategies per kind of job, for jobs whose options give no backoff.
# A job's kind comes from its name (see strategy_for_job).
DEFAULT_STRATEGIES: dict[str, BackoffPolicy] = {
    # Mail servers throttle and greylist: back off quickly to a minute (2s, 4s, 8s, ...).
    "email": BackoffPolicy("exponential", delay=2000, max_delay=60_000, multiplier=2, jitter=0.1),
    # Payment providers: slower, wider spread, capped at 5 minutes; retries must not stampede.
    "payment": BackoffPolicy(
        "exponential", delay=5000, max_delay=300_000, multiplier=3, jitter=0.2
    ),
    # Reports are heavy and usually fail on a busy resource: a fixed pause.
    "report": BackoffPolicy("fixed", delay=5000),
    # HTTP calls and webhooks: short exponential backoff to 30 s.
    "http": BackoffPolicy("exponential", delay=1000, max_delay=30_000, multiplier=2, jitter=0.2),
    # Backups: one slow retry pattern.
    "backup": BackoffPolicy("fixed", delay=30_000),
    "default": BackoffPolicy(
        "exponential", delay=1000, max_delay=60_000, multiplier=2, jitter=0.1
    ),
}


def get_default_strategy(kind: str) -> BackoffPolicy:
    """The seed's ``getDefaultStrategy('email')``; unknown kinds get ``default``."""
    return DEFAULT_STRATEGIES.get(kind, DEFAULT_STRATEGIES["default"])


def strategy_for_job(name: str) -> BackoffPolicy:
    """The default policy for a job name: the first kind that the name mentions
    (``send-email`` -> email, ``process-payment`` -> payment), else ``default``."""
    lowered = name.lower()
    for kind in ("email", "payment", "report", "backup", "http", "webhook"):
        if kind in lowered:
            return get_default_strategy("http" if kind == "webhook" else kind)
    return DEFAULT_STRATEGIES["default"]


def policy_for(name: str, options: dict[str, Any]) -> BackoffPolicy:
    """The job's own ``options.backoff`` if it has one, else its name's default."""
    backoff = options.get("backoff")
    return BackoffPolicy.from_options(backoff) if backoff else strategy_for_job(name)


def next_attempt(
    name: str, options: dict[str, Any], attempts: int, attempts_made: int, now: int,
    retry: bool = True,
) -> tuple[str, int]:
    """Where a job goes after a failed attempt: ``("failed", now)`` when retry is off
    or its attempts are spent, else ``("delayed", due)`` or ``("waiting", now)`` for
    a zero delay. ``attempts_made`` counts the attempt that just failed."""
    if not retry or attempts_made >= attempts:
        return "failed", now
    delay = calculate_backoff_delay(attempts_made, policy_for(name, options))
    return ("delayed", now + delay) if delay > 0 else ("waiting", now)


@dataclass(frozen=True, slots=True)
class Failure:
    """How an attempt ended badly, as data: the store applies it to the job it reads
    in the same transaction (see ``after_failure``)."""

    message: str
    retry: bool = True
    # Retry after this long instead of the backoff (an upstream said when: HTTP 429).
    retry_after_ms: int | None = None
    # The attempt was stopped by a cancel: the job ends cancelled, whatever its attempts.
    cancel: bool = False
    # Where it failed: the handler's stack trace, redacted and bounded (see traces.py).
    stack: str | None = None


def after_failure(
    name: str, options: dict[str, Any], attempts: int, attempts_made: int, now: int,
    failure: Failure,
) -> tuple[str, int]:
    """Where a job goes after ``failure``: ``cancelled``, ``failed``, or back in line
    (``delayed`` with its due time, ``waiting`` for no delay)."""
    if failure.cancel:
        return "cancelled", now
    state, run_at = next_attempt(name, options, attempts, attempts_made, now, failure.retry)
    if failure.retry_after_ms is not None and state != "failed":
        wait = failure.retry_after_ms
        return ("delayed", now + wait) if wait else ("waiting", now)
    return state, run_at
