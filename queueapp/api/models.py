"""Request bodies of the HTTP API, validated by pydantic (strict, no unknown fields)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Required

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from ..options import MAX_DELAY_MS, MAX_LEASE_MS, MIN_LEASE_MS, WHOLE, JobName, JobOptions, PriorityFactors, Strict
from ..retry import MAX_RETRY_AFTER_MS
from ..traces import MAX_LOG_LINE_CHARS, MAX_LOG_LINES_A_CALL, MAX_STACK_CHARS_IN

MAX_BULK = 10_000


class AddJobBody(Strict):
    name: JobName
    data: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions = Field(default_factory=JobOptions)
    priorityFactors: PriorityFactors | None = None


class BulkBody(Strict):
    jobs: Annotated[list[AddJobBody], Field(min_length=1, max_length=MAX_BULK)]


class BulkItem(TypedDict, total=False):
    """One job of a bulk body as plain data: the shape of AddJobBody, whose options
    the builder then parses once per distinct options object. Ten thousand model
    objects per request cost more than storing the jobs."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    name: Required[JobName]
    data: dict[str, Any]
    options: dict[str, Any]
    priorityFactors: dict[str, Any] | None


class _BulkPlain(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    jobs: Annotated[list[BulkItem], Field(min_length=1, max_length=MAX_BULK)]


# Validates what BulkBody describes (the OpenAPI document shows BulkBody).
BULK_PLAIN: TypeAdapter[_BulkPlain] = TypeAdapter(_BulkPlain)
_ITEM_KEYS = frozenset(BulkItem.__annotations__)


def plain_bulk(body: Any) -> _BulkPlain | None:
    """``body`` (parsed JSON) when it is a bulk body of the usual shape, checked with
    type tests that cost a fraction of BULK_PLAIN's; None when BULK_PLAIN must decide
    (it accepts everything this does, and names what is wrong with the rest)."""
    if type(body) is not dict or len(body) != 1:
        return None
    jobs = body.get("jobs")
    if type(jobs) is not list or not 1 <= len(jobs) <= MAX_BULK:
        return None
    for item in jobs:
        if type(item) is not dict:
            return None
        name = item.get("name")
        if type(name) is not str or not 1 <= len(name) <= 128:
            return None
        if len(item) > 1 and not (
            item.keys() <= _ITEM_KEYS and type(item.get("data", _EMPTY)) is dict
            and type(item.get("options", _EMPTY)) is dict
            and (item.get("priorityFactors") is None or type(item["priorityFactors"]) is dict)
        ):
            return None
    return body  # type: ignore[return-value]


_EMPTY: dict[str, Any] = {}


# Due times are kept to years before 2100 (see options.LATEST_RUN_AT): said in the schema.
DueTime = Annotated[AwareDatetime, Field(json_schema_extra={"pattern": r"^(19|20)[0-9]{2}-"})]


class ScheduleBody(Strict):
    name: JobName
    data: dict[str, Any] = Field(default_factory=dict)
    scheduledTime: DueTime
    options: JobOptions = Field(default_factory=JobOptions)
    priorityFactors: PriorityFactors | None = None


# A worker's name, as it gives it when it leases (host and process, say): printable.
WorkerName = Annotated[str, Field(min_length=1, max_length=200, pattern="^[^\\x00-\\x1f\\x7f]+$")]


class LeaseBody(Strict):
    names: Annotated[list[JobName], Field(min_length=1, max_length=100)] | None = None
    max: Annotated[int, Field(ge=1, le=1000), WHOLE] = 1
    leaseMs: Annotated[int, Field(ge=MIN_LEASE_MS, le=MAX_LEASE_MS), WHOLE] | None = None
    waitMs: Annotated[int, Field(ge=0, le=30_000), WHOLE] = 0
    # Kept with each job leased as who ran its attempt (default: the caller's address).
    worker: WorkerName | None = None


LeaseToken = Annotated[str, Field(min_length=1, max_length=200)]


Progress = Annotated[int, Field(ge=0, le=100), WHOLE] | Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class HeartbeatBody(Strict):
    leaseToken: LeaseToken
    progress: Progress | dict[str, Any] | None = None
    leaseMs: Annotated[int, Field(ge=MIN_LEASE_MS, le=MAX_LEASE_MS), WHOLE] | None = None


class CompleteBody(Strict):
    leaseToken: LeaseToken
    result: Any = None


class FailBody(Strict):
    leaseToken: LeaseToken
    error: Annotated[str, Field(min_length=1, max_length=10_000)] = "failed"
    retry: bool = True
    # Retry after this long instead of the job's backoff (say, an upstream's Retry-After).
    retryAfterMs: Annotated[int, Field(ge=0, le=MAX_RETRY_AFTER_MS), WHOLE] | None = None
    # The error's stack trace, kept with the attempt (redacted; its frames nearest the
    # failure kept when longer than the appliance keeps).
    stack: Annotated[str, Field(min_length=1, max_length=MAX_STACK_CHARS_IN)] | None = None


class LogBody(Strict):
    leaseToken: LeaseToken
    # Lines after the job's log, each at most MAX_LOG_LINE_CHARS characters (a
    # client cuts longer ones); the job keeps its newest MAX_JOB_LOG_LINES.
    lines: Annotated[list[Annotated[str, Field(max_length=MAX_LOG_LINE_CHARS)]],
                     Field(min_length=1, max_length=MAX_LOG_LINES_A_CALL)]


class ReleaseBody(Strict):
    leaseToken: LeaseToken


class CleanBody(Strict):
    grace: Annotated[int, Field(ge=0, le=MAX_DELAY_MS), WHOLE] = 0
    status: Literal["completed", "failed", "cancelled", "expired"] = "completed"
    limit: Annotated[int, Field(ge=1, le=1_000_000), WHOLE] | None = None


class CompleteItem(Strict):
    id: Annotated[str, Field(pattern=r"^\d{1,15}$")]
    leaseToken: LeaseToken
    result: Any = None


class CompleteManyBody(Strict):
    jobs: Annotated[list[CompleteItem], Field(min_length=1, max_length=1000)]


# -- responses (documented in /openapi.json and checked by the tests) ----------------


class Open(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobErrorEntry(Open):
    attempt: int
    message: str
    at: str
    # The failed attempt's stack trace, when its worker sent one.
    stack: str | None = None
    # When the attempt began (an attempt that failed before starting has none).
    startedAt: str | None = None
    # Who ran the attempt (JobOut.worker).
    worker: str | None = None


class JobOut(Open):
    id: str
    queue: str
    name: str
    data: dict[str, Any]
    state: Literal["waiting", "delayed", "blocked", "active", "completed", "failed", "cancelled", "expired"]
    priority: Annotated[int, Field(ge=1, le=5)]
    attempts: int
    attemptsMade: int
    progress: Any
    result: Any
    error: str | None
    errors: list[JobErrorEntry]
    createdAt: str
    runAt: str
    startedAt: str | None
    finishedAt: str | None
    jobId: str | None
    options: dict[str, Any]
    # Who ran the latest attempt: the name its worker leased it under (the worker's
    # address when it gave none), or "appliance" for the appliance's own handlers.
    worker: str | None


class LeasedJobOut(JobOut):
    leaseToken: str
    # When the lease runs out unless a heartbeat extends it (a worker times its
    # heartbeats by it).
    leaseExpiresAt: str | None
    # The W3C trace context to run this attempt under (null: the job has no trace):
    # the attempt's span when the appliance traces, else the producer's.
    traceparent: str | None
    tracestate: str | None


class HeartbeatOut(JobOut):
    leaseExpiresAt: str | None


class LogAppendedOut(Open):
    # The number of the job's last line now (lines are numbered from 1, and the
    # newest {MAX_JOB_LOG_LINES} are kept).
    lastSeq: int


class LogLineOut(Open):
    seq: int
    at: str
    line: str


class JobLogOut(Open):
    """The job's log lines after ``after``, in order; ``lastSeq``: the number of the
    last line answered (give it as ``after`` to read on)."""

    lines: list[LogLineOut]
    lastSeq: int


class JobsOut(Open):
    jobs: list[JobOut]


class BulkOut(Open):
    """The jobs (default), or with ``?return=ids`` only their ids, in request order."""

    jobs: list[JobOut] | None = None
    ids: list[str] | None = None


class JobPageOut(Open):
    jobs: list[JobOut]
    nextCursor: str | None
    scanned: int | None = None


class LeaseOut(Open):
    jobs: list[LeasedJobOut]


class CompleteResult(Open):
    id: str
    ok: bool
    state: str | None = None
    error: dict[str, Any] | None = None


class CompleteManyOut(Open):
    results: list[CompleteResult]


class MetricsOut(Open):
    queueName: str
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    paused: int
    total: int
    throughput: int
    avgProcessingTime: int


class ReplicaOut(Open):
    """The database's copy (replicate_to)."""

    folder: str
    mode: Literal["async", "sync"]
    generation: str
    # how far behind the copy on the folder's disk is (0: it has every commit)
    lagMs: int
    failing: bool
    error: str | None
    commits: int
    lastShippedAt: str | None
    lastSyncedAt: str | None


class HealthOut(Open):
    status: Literal["healthy", "warning", "critical"]
    issues: list[str]
    metrics: MetricsOut
    timestamp: str
    # present when the database is replicated
    replica: ReplicaOut | None = None


class PausedOut(Open):
    queue: str
    paused: bool


class RemovedOut(Open):
    removed: int


class QueueOut(Open):
    name: str
    paused: bool
    counts: dict[str, int]
    status: Literal["healthy", "warning", "critical"]
    issues: list[str]


class QueuesOut(Open):
    queues: list[QueueOut]


class LivezOut(Open):
    status: str


class ErrorBody(Open):
    code: str
    message: str
    details: list[Any]


class ErrorOut(Open):
    error: ErrorBody


class DocumentOut(BaseModel):
    """A JSON document whose shape is its own standard's (the OpenAPI description)."""

    model_config = ConfigDict(extra="allow")


class ScheduleOut(Open):
    queue: str
    name: str
    jobName: str
    data: dict[str, Any]
    options: dict[str, Any]
    cron: str | None
    timezone: str
    everyMs: int | None
    missed: Literal["skip", "all"]
    overlap: bool
    enabled: bool
    nextRunAt: str | None
    lastRunAt: str | None
    lastJobId: str | None
    createdAt: str
    updatedAt: str
    description: str
    upcoming: list[str]


class SchedulesOut(Open):
    schedules: list[ScheduleOut]


class AuditOut(Open):
    ok: bool
    problems: list[str]


class NodeOut(Open):
    id: str
    startedAt: str | None
    seenAt: str | None
    leader: bool
    # The node's wall clock minus the database's, at its last reading (None: a node
    # that does not read the database's clock). Shared deadlines never use it.
    skewMs: int | None = None


class NodesOut(Open):
    node: str | None
    cluster: bool
    leader: str | None
    nodes: list[NodeOut]
