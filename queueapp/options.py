"""What a caller may say about a job, validated: the API's ``options`` and
``priorityFactors`` objects. Shared by the HTTP API and the Python library."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000  # ten years: beyond that it is a mistake

Ms = Annotated[int, Field(ge=0, le=MAX_DELAY_MS)]


class Strict(BaseModel):
    # Unknown fields are errors (a typo must not silently fall back to a default),
    # and "3" is not 3.
    model_config = ConfigDict(extra="forbid", strict=True)


class BackoffOptions(Strict):
    type: Literal["exponential", "fixed"] = "exponential"
    delay: Ms = 1000
    maxDelay: Ms | None = None
    multiplier: Annotated[float, Field(ge=1, le=100)] = 2.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.0

    @field_validator("multiplier", "jitter", mode="before")
    @classmethod
    def _int_is_a_number(cls, value: Any) -> Any:
        # Strict mode refuses 2 for a float field; a whole number is a fine number.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


Keep = bool | Annotated[int, Field(ge=0)]


class JobOptions(Strict):
    priority: Annotated[int, Field(ge=1, le=5)] | None = None
    attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    delay: Ms = 0
    backoff: BackoffOptions | None = None
    timeout: Annotated[int, Field(ge=1, le=MAX_DELAY_MS)] | None = None
    jobId: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    removeOnComplete: Keep = False
    removeOnFail: Keep = False

    def stored(self) -> dict[str, Any]:
        """The options kept with the job (what governs it after enqueue)."""
        kept: dict[str, Any] = {}
        if self.backoff is not None:
            kept["backoff"] = self.backoff.model_dump()
        if self.timeout is not None:
            kept["timeout"] = self.timeout
        if self.removeOnComplete is not False:
            kept["removeOnComplete"] = self.removeOnComplete
        if self.removeOnFail is not False:
            kept["removeOnFail"] = self.removeOnFail
        return kept


class PriorityFactors(Strict):
    userTier: Literal["enterprise", "premium", "standard", "free"] | None = None
    urgency: Literal["critical", "high", "normal", "low"] | None = None
    businessImpact: Literal["revenue", "customer", "operational", "internal"] | None = None
    deadline: AwareDatetime | None = None


JobName = Annotated[str, Field(min_length=1, max_length=128)]


def check_queue_name(queue: str) -> str:
    if not QUEUE_NAME.match(queue):
        raise ValueError("queue names are 1 to 64 letters, digits, '_', '.' or '-'")
    return queue
