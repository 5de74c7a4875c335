"""What a caller may say about a job, validated: the API's ``options`` and
``priorityFactors`` objects. Shared by the HTTP API and the Python library."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .cron import check_cron, check_zone, time_zones


def segment_pattern(allowed: str, allowed_but_dot: str) -> str:
    """A pattern of names made of the characters ``allowed`` (a class's body),
    except "." and "..": a browser resolves such a path segment away (``/queues/
    groups/../pause`` is ``/queues/pause``), so a name that may ever stand in a URL's
    path is never one. Written without look-ahead, which pydantic's engine lacks."""
    c, n = f"[{allowed}]", f"[{allowed_but_dot}]"
    return rf"^(?:{n}{c}*|\.{n}{c}*|\.\.{c}+)$"


QUEUE_NAME = re.compile(segment_pattern("A-Za-z0-9_.-", "A-Za-z0-9_-"))
MAX_QUEUE_NAME = 64
MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000  # ten years: beyond that it is a mistake
# A lease, however it is given (the lease_ms setting, a lease or heartbeat's leaseMs):
# a second at least (a worker must be able to answer), a day at most.
MIN_LEASE_MS, MAX_LEASE_MS = 1000, 24 * 3600 * 1000

# The latest time a job may be due: the dispatcher packs due times into 42 bits.
LATEST_RUN_AT = 4_102_444_800_000  # 2100-01-01T00:00:00Z

def _whole(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer, and so do we; "3" stays a string and is
    refused (strict mode)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole)

Ms = Annotated[int, Field(ge=0, le=MAX_DELAY_MS), WHOLE]


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


MAX_KEEP = 1_000_000  # removeOnComplete/removeOnFail as a count: keep at most this many

Keep = bool | Annotated[int, Field(ge=0, le=MAX_KEEP), WHOLE]


HeldBy = Literal["waiting", "delayed", "active"]
# http(s)://host[:port][/path?query]: a host name or an IPv4 address, no user info.
CALLBACK_URL = r"^https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?([/?#][^\s]*)?$"


# A group key: printable, no control characters, short enough to be a path segment,
# and not one a browser would resolve away ("." or "..").
GROUP_KEY = segment_pattern("^\\x00-\\x1f\\x7f/", "^\\x00-\\x1f\\x7f/.")
GroupKey = Annotated[str, Field(min_length=1, max_length=128, pattern=GROUP_KEY)]


class UniqueOptions(Strict):
    """At most one job of a key at a time: while a job with ``key`` is in one of
    ``states``, or finished less than ``ttlMs`` ago, a new enqueue with that key
    creates nothing. ``mode`` says what it does instead: ``reject`` answers the kept
    job; ``replace`` gives a waiting or delayed kept job the new data; ``debounce``
    also moves its run time to the new job's (now + delay)."""

    key: Annotated[str, Field(min_length=1, max_length=255)]
    ttlMs: Annotated[int, Field(ge=0, le=MAX_DELAY_MS), WHOLE] = 0
    mode: Literal["reject", "replace", "debounce"] = "reject"
    states: Annotated[list[HeldBy], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: list(get_args(HeldBy)))


class Telemetry(Strict):
    """The trace a job belongs to (W3C Trace Context), kept with it and handed to its
    workers; the producer's ``traceparent`` header sets it when the options do not."""

    traceparent: Annotated[str, Field(pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")]
    tracestate: Annotated[str, Field(max_length=512)] | None = None


class JobOptions(Strict):
    priority: Annotated[int, Field(ge=1, le=5), WHOLE] | None = None
    attempts: Annotated[int, Field(ge=1, le=100), WHOLE] | None = None
    delay: Ms = 0
    backoff: BackoffOptions | None = None
    timeout: Annotated[int, Field(ge=1, le=MAX_DELAY_MS), WHOLE] | None = None
    jobId: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    removeOnComplete: Keep = False
    removeOnFail: Keep = False
    unique: UniqueOptions | None = None
    # Not started within this long of its enqueue: the job ends expired instead.
    expireInMs: Annotated[int, Field(ge=1, le=MAX_DELAY_MS), WHOLE] | None = None
    # Runs once these jobs have completed: ids, or in a bulk "#n", the n-th job of it.
    dependsOn: Annotated[list[Annotated[str, Field(pattern=r"^#?[0-9]{1,15}$")]],
                         Field(min_length=1, max_length=100)] | None = None
    allowDependencyFailure: bool = False
    # Flow control: the key (a tenant, an account) whose limits the job counts under.
    group: GroupKey | None = None
    # Told the outcome (POST, signed) when the job completes or fails for good.
    callbackUrl: Annotated[str, Field(max_length=2048, pattern=CALLBACK_URL)] | None = None
    # The trace it belongs to (default: the request's traceparent header, if any).
    telemetry: Telemetry | None = None

    def stored(self) -> dict[str, Any]:
        """The options kept with the job (what governs it after enqueue): those given,
        in this order, and none left at its default."""
        kept: dict[str, Any] = {
            "backoff": None if self.backoff is None else self.backoff.model_dump(),
            "timeout": self.timeout,
            "removeOnComplete": None if self.removeOnComplete is False else self.removeOnComplete,
            "removeOnFail": None if self.removeOnFail is False else self.removeOnFail,
            "unique": None if self.unique is None else self.unique.model_dump(),
            "expireInMs": self.expireInMs,
            "callbackUrl": self.callbackUrl,
            "dependsOn": self.dependsOn,
            "allowDependencyFailure": True if self.allowDependencyFailure else None,
            "group": self.group,
            "telemetry": None if self.telemetry is None else self.telemetry.model_dump(exclude_none=True),
        }
        return {key: value for key, value in kept.items() if value is not None}


class PriorityFactors(Strict):
    userTier: Literal["enterprise", "premium", "standard", "free"] | None = None
    urgency: Literal["critical", "high", "normal", "low"] | None = None
    businessImpact: Literal["revenue", "customer", "operational", "internal"] | None = None
    deadline: AwareDatetime | None = None


JobName = Annotated[str, Field(min_length=1, max_length=128)]


def is_queue_name(queue: object) -> bool:
    return isinstance(queue, str) and len(queue) <= MAX_QUEUE_NAME and QUEUE_NAME.match(queue) is not None


def check_queue_name(queue: str) -> str:
    if not is_queue_name(queue):
        raise ValueError("queue names are 1 to 64 letters, digits, '_', '.' or '-', and not '.' or '..'")
    return queue


SCHEDULE_NAME = segment_pattern("A-Za-z0-9_.:-", "A-Za-z0-9_:-")
ScheduleName = Annotated[str, Field(min_length=1, max_length=128, pattern=SCHEDULE_NAME)]


class ScheduleSpec(Strict):
    """A recurring schedule as a caller describes it."""

    # Exactly one of cron and everyMs, said in the JSON Schema too.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"oneOf": [
        {"required": ["cron"], "properties": {"cron": {"type": "string"}, "everyMs": {"type": "null"}}},
        {"required": ["everyMs"], "properties": {"everyMs": {"type": "integer"}, "cron": {"type": "null"}}},
    ]})

    name: ScheduleName
    jobName: JobName | None = None  # default: the schedule's name
    data: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions = Field(default_factory=JobOptions)
    cron: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    timezone: Annotated[str, Field(min_length=1, max_length=64,
                                   json_schema_extra=lambda schema: schema.update(enum=list(time_zones())))] = "UTC"
    everyMs: Annotated[int, Field(ge=100, le=MAX_DELAY_MS), WHOLE] | None = None
    missed: Literal["skip", "all"] = "skip"
    overlap: bool = True
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("options")
    @classmethod
    def _no_job_id(cls, value: JobOptions) -> JobOptions:
        if value.jobId is not None:
            raise ValueError("a schedule names its runs' jobs itself (\"<schedule>@<time>\"); drop options.jobId")
        if value.delay:
            raise ValueError("a schedule's runs start when due; drop options.delay")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.everyMs is None):
            raise ValueError("give exactly one of cron and everyMs")
        return self
