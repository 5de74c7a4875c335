"""Request bodies of the HTTP API, validated by pydantic (strict, no unknown fields)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from ..options import JobName, JobOptions, PriorityFactors, Strict

MAX_BULK = 10_000


class AddJobBody(Strict):
    name: JobName
    data: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions = Field(default_factory=JobOptions)
    priorityFactors: PriorityFactors | None = None


class BulkBody(Strict):
    jobs: Annotated[list[AddJobBody], Field(min_length=1, max_length=MAX_BULK)]


class ScheduleBody(Strict):
    name: JobName
    data: dict[str, Any] = Field(default_factory=dict)
    scheduledTime: AwareDatetime
    options: JobOptions = Field(default_factory=JobOptions)
    priorityFactors: PriorityFactors | None = None


class LeaseBody(Strict):
    names: Annotated[list[JobName], Field(min_length=1, max_length=100)] | None = None
    max: Annotated[int, Field(ge=1, le=1000)] = 1
    leaseMs: Annotated[int, Field(ge=1000, le=24 * 3600 * 1000)] | None = None
    waitMs: Annotated[int, Field(ge=0, le=30_000)] = 0


LeaseToken = Annotated[str, Field(min_length=1, max_length=200)]


class HeartbeatBody(Strict):
    leaseToken: LeaseToken
    progress: Annotated[int, Field(ge=0, le=100)] | float | dict[str, Any] | None = None
    leaseMs: Annotated[int, Field(ge=1000, le=24 * 3600 * 1000)] | None = None


class CompleteBody(Strict):
    leaseToken: LeaseToken
    result: Any = None


class FailBody(Strict):
    leaseToken: LeaseToken
    error: Annotated[str, Field(min_length=1, max_length=10_000)] = "failed"
    retry: bool = True


class CleanBody(Strict):
    grace: Annotated[int, Field(ge=0)] = 0
    status: Literal["completed", "failed", "cancelled"] = "completed"
    limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
