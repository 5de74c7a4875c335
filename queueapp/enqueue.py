"""Validated input to a job to store: priority from the explicit option or the
factors, attempts from the priority unless given, the due time, and the data of a
job type that has a validator. Used alike by the service (library and API) and the
scheduler; anything wrong raises ValidationFailed before anything is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .clock import Clock, from_datetime
from .errors import ValidationFailed
from .jsonfast import dumps_bytes
from .model import DEFAULT_ATTEMPTS, NewJob, Unique
from .options import LATEST_RUN_AT, JobOptions, PriorityFactors, check_queue_name
from .priority import calculate_priority

DEFAULT_QUEUE = "default"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Checks a job type's data: raises ValueError for data its handler could never accept.
DataCheck = Callable[[str, dict[str, Any]], None]


def validation_details(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic errors as the API's ``details``: the field path and what is wrong."""
    return [
        {"field": ".".join(str(p) for p in (*prefix, *e["loc"])) or None,
         "message": e["msg"].removeprefix("Value error, ")}
        for e in exc.errors(include_url=False)
    ]


def valid_queue(name: str) -> str:
    """The queue name, or ValidationFailed naming the ``queue`` field."""
    try:
        return check_queue_name(name)
    except ValueError as exc:
        raise ValidationFailed(str(exc), [{"field": "queue", "message": str(exc)}]) from None


def check_name(name: Any, data: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise ValidationFailed("name must be a string of 1 to 128 characters")
    if data is not None and not isinstance(data, dict):
        raise ValidationFailed("data must be a JSON object")


def parse_options(
    options: dict[str, Any] | JobOptions | None,
    factors: dict[str, Any] | PriorityFactors | None = None,
) -> tuple[JobOptions, PriorityFactors | None]:
    try:
        if not isinstance(options, JobOptions):
            options = JobOptions.model_validate(options or {})
        if factors is not None and not isinstance(factors, PriorityFactors):
            factors = PriorityFactors.model_validate(factors)
    except ValidationError as exc:
        raise ValidationFailed("invalid job options", validation_details(exc)) from None
    return options, factors


class JobBuilder:
    def __init__(self, clock: Clock, check_data: DataCheck) -> None:
        self.clock = clock
        self.check_data = check_data

    def build(
        self,
        name: str,
        data: dict[str, Any] | None,
        options: JobOptions,
        factors: PriorityFactors | None = None,
        queue: str = DEFAULT_QUEUE,
        run_at: int | None = None,
    ) -> NewJob:
        """A job to store, from input already parsed (ValidationFailed for data its
        type refuses, or a due time past the last one kept)."""
        self._check_data(name, data or {})
        now = self.clock.now_ms()
        priority = options.priority
        if priority is None and factors is not None:
            priority = calculate_priority(
                user_tier=factors.userTier,
                urgency=factors.urgency,
                business_impact=factors.businessImpact,
                deadline_ms=None if factors.deadline is None else from_datetime(factors.deadline),
                now_ms=now,
            )
        priority = int(priority or 3)
        if run_at is not None and run_at >= LATEST_RUN_AT:
            message = "a job's time must be before 2100-01-01T00:00:00Z"
            raise ValidationFailed(message, [{"field": "scheduledTime", "message": message}])
        return NewJob(
            queue=queue,
            name=name,
            data=data or {},
            priority=priority,
            attempts=options.attempts or DEFAULT_ATTEMPTS[priority],
            run_at=run_at if run_at is not None else now + options.delay,
            options=options.stored(),
            job_key=options.jobId,
            unique=unique_of(options),
            expire_at=None if options.expireInMs is None else now + options.expireInMs,
            depends_on=tuple(options.dependsOn or ()),
        )

    def build_many(self, items: list[dict[str, Any]], queue: str) -> list[NewJob]:
        """Jobs of a bulk body (plain data shaped as BulkItem). A bulk usually repeats
        one options object, so each distinct one is parsed once, not once per job."""
        templates: dict[bytes, tuple[JobOptions, NewJob]] = {}
        built = []
        now = self.clock.now_ms()
        check = self.check_data
        for index, item in enumerate(items):
            raw = item.get("options")
            key = dumps_bytes(raw) if raw else b""
            template = templates.get(key)
            if template is None:
                options = _parse_at(JobOptions, key or b"{}", ("jobs", index, "options"))
                template = templates[key] = (options, self._shape(options, now))
            options, shape = template
            name, data = item["name"], item.get("data") or {}
            factors = item.get("priorityFactors")
            if factors is not None:  # the priority depends on the job: the one-job way
                parsed = _parse_at(PriorityFactors, dumps_bytes(factors), ("jobs", index, "priorityFactors"))
                built.append(_at_item(index, self.build, name, data, options, parsed, queue))
                continue
            try:
                check(name, data)
            except ValueError as exc:
                raise _told_at(index, _data_refused(name, exc)) from None
            # The options dict is shared by the jobs alike: nothing changes a job's options.
            built.append(NewJob(queue, name, data, shape.priority, shape.attempts, shape.run_at,
                                shape.options, shape.job_key, shape.unique, shape.expire_at, shape.depends_on))
        return built

    def _check_data(self, name: str, data: dict[str, Any]) -> None:
        try:
            self.check_data(name, data)
        except ValueError as exc:
            raise _data_refused(name, exc) from None

    @staticmethod
    def _shape(options: JobOptions, now: int) -> NewJob:
        """What an options object makes of every job that carries it."""
        priority = int(options.priority or 3)
        return NewJob("", "", {}, priority, options.attempts or DEFAULT_ATTEMPTS[priority],
                      now + options.delay, options.stored(), options.jobId, unique_of(options),
                      None if options.expireInMs is None else now + options.expireInMs,
                      tuple(options.dependsOn or ()))


def unique_of(options: JobOptions) -> Unique | None:
    u = options.unique
    return None if u is None else Unique(u.key, u.ttlMs, u.mode, tuple(dict.fromkeys(u.states)))


def _parse_at(model: type[M], raw: bytes, where: tuple[Any, ...]) -> M:
    """The model from JSON (as the request said it: strict, with JSON's own types)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _failure(validation_details(exc, where)) from None


def _data_refused(name: str, exc: ValueError) -> ValidationFailed:
    return ValidationFailed(f"invalid data for a {name} job: {exc}", [{"field": "data", "message": str(exc)}])


def _at_item(index: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a ValidationFailed it raises told as being about ``jobs.<index>``."""
    try:
        return fn(*args)
    except ValidationFailed as exc:
        raise _told_at(index, exc) from None


def _told_at(index: int, exc: ValidationFailed) -> ValidationFailed:
    """``exc`` as an error of the bulk body's ``jobs.<index>``."""
    details = [{**d, "field": ".".join(p for p in (f"jobs.{index}", d.get("field")) if p)}
               for d in exc.details] or [{"field": f"jobs.{index}", "message": exc.message}]
    return _failure(details)


def _failure(details: list[dict[str, Any]]) -> ValidationFailed:
    first = details[0]
    return ValidationFailed(f"invalid request body at {first['field']}: {first['message']}", details)
