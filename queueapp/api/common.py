"""What every route module uses: the answer, the service and config of the app, and
the parsing of queue names, bodies, ids and query parameters (400 on anything bad)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..config import Config
from ..enqueue import DEFAULT_QUEUE, valid_queue, validation_details
from ..errors import NotFound, ValidationFailed
from ..jsonfast import UNREAD, check_finite_json, dumps_bytes, loads_finite
from ..service import QueueService
from ..telemetry import TraceContext, parse_traceparent
from .keys import CONFIG, SERVICE

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def ok(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps_bytes(body), content_type="application/json")


def service_of(request: web.Request) -> QueueService:
    return request.app[SERVICE]


def config_of(request: web.Request) -> Config:
    return request.app[CONFIG]


def trace_of(request: web.Request) -> TraceContext | None:
    """The producer's trace (W3C traceparent and tracestate headers); one that is not
    well formed is none, as Trace Context says."""
    header = request.headers.get("traceparent")
    return None if header is None else parse_traceparent(header, request.headers.get("tracestate"))


def queue_of(request: web.Request) -> str:
    return valid_queue(request.query.get("queue", DEFAULT_QUEUE))


async def parse(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    return await parse_with(request, model.model_validate_json, optional=optional)


async def parse_with(
    request: web.Request, validate_json: Callable[[bytes], T], *, optional: bool = False,
    quick: Callable[[Any], T | None] | None = None,
) -> T:
    """The body, checked by ``validate_json`` (a model's or a TypeAdapter's). ``quick``
    may accept the parsed JSON first, by cheaper tests; what it returns None for
    goes to ``validate_json``."""
    raw = await request.read()
    if optional and not raw.strip():
        raw = b"{}"
    parsed = loads_finite(raw)
    if parsed is not UNREAD and quick is not None and (accepted := quick(parsed)) is not None:
        return accepted
    return validated(raw, validate_json, finite=parsed is not UNREAD)


def validated(raw: bytes, validate_json: Callable[[bytes], T], *, what: str = "request body",
              finite: bool = False) -> T:
    """``raw`` checked by ``validate_json``; ValidationFailed naming the first fault
    of ``what``. ``finite``: the text is already known to hold only finite numbers."""
    if not finite:
        try:
            check_finite_json(raw)
        except ValueError as exc:
            message = f"invalid {what}: {exc}; JSON numbers must be finite"
            raise ValidationFailed(message, [{"field": None, "message": message}]) from None
    try:
        return validate_json(raw)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0]
        where = f" at {first['field']}" if first["field"] else ""
        raise ValidationFailed(f"invalid {what}{where}: {first['message']}", details) from None


def job_id_of(request: web.Request) -> int:
    """The route's ``{id:[0-9]+}``: ASCII digits; more than 15 is no job of ours."""
    text = request.match_info["id"]
    if len(text) > 15:
        raise NotFound(f"no job with id {text}")
    return int(text)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        message = f"{name} must be a whole number from {low} to {high}"
        raise ValidationFailed(message, [{"field": name, "message": message}])
    return value


def query_name(request: web.Request) -> str | None:
    """The ``name`` query parameter: a job name, 1 to 128 characters."""
    names = request.query.getall("name", [])
    for name in names:
        if not 1 <= len(name) <= 128:
            message = "name must be a job name of 1 to 128 characters"
            raise ValidationFailed(message, [{"field": "name", "message": message}])
    return names[0] if names else None


def query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of ``choices`` (None when absent)."""
    value = request.query.get(name)
    if value is not None and value not in choices:
        message = f"{name} must be one of {', '.join(choices)}"
        raise ValidationFailed(message, [{"field": name, "message": message}])
    return value
