"""Each route declares its request and response models where it is defined; the
OpenAPI document at ``/openapi.json`` is generated from those declarations, so the
description cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..options import QUEUE_NAME
from .models import ErrorOut


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


QUEUE = Query("queue", "Queue name, [A-Za-z0-9_.-]{1,64}. Default: default.",
              {"type": "string", "pattern": QUEUE_NAME.pattern})
JOB_NAME = {"type": "string", "minLength": 1, "maxLength": 128}
# Path parameters, by name: what a route's {name} may be (the route's own pattern too).
PATH_PARAMS = {
    "id": ("Job id.", {"type": "string", "pattern": r"^[0-9]{1,15}$"}),
    "name": ("Schedule name.", {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,128}$"}),
}
_ROUTE_REGEX = re.compile(r"\{(\w+):[^}]+\}")


def int_query(name: str, description: str, low: int, high: int) -> Query:
    return Query(name, description, {"type": "integer", "minimum": low, "maximum": high})

ERROR_TEXT = {
    400: "Invalid input: nothing was changed.",
    401: "Missing or wrong bearer token.",
    404: "No such job (or route).",
    409: "The job is not in a state that allows this, or the lease token is stale.",
    413: "Request body larger than max_body_bytes.",
    429: "Enqueue rate limit exceeded; see Retry-After.",
    503: "The store cannot take writes (disk full, read-only): nothing was stored.",
}


@dataclass
class Endpoint:
    method: str
    path: str
    summary: str
    body: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    query: tuple[Query, ...]
    errors: tuple[int, ...]
    handler: Callable[..., Any] = field(repr=False)
    content_type: str = "application/json"
    body_required: bool = True


ENDPOINTS: list[Endpoint] = []


def endpoint(
    routes: web.RouteTableDef,
    method: str,
    path: str,
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    ok: type[BaseModel] | None = None,
    status: int = 200,
    extra_ok: dict[int, type[BaseModel] | None] | None = None,
    query: tuple[Query, ...] = (),
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
    body_required: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``handler`` for ``method path`` and describe it. ``path`` may give a
    parameter its pattern (``{id:[0-9]+}``), so that ``/queues/jobs/bulk`` is never
    taken for a job id; the description shows it as ``{id}``."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        routes.route(method, path)(handler)
        responses = {status: ok, **(extra_ok or {})}
        all_errors = tuple(sorted(set(errors) | ({400} if body or query else set())))
        ENDPOINTS.append(Endpoint(
            method, _ROUTE_REGEX.sub(r"{\1}", path), summary, body, responses, query, all_errors,
            handler, content_type, body_required,
        ))
        return handler

    return register


def openapi_document(auth: bool) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for e in ENDPOINTS:
        if e.body:
            models.add(e.body)
        models.update(m for m in e.responses.values() if m)
    keyed: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "validation" if _is_body(m) else "serialization") for m in models
    ]
    refs, schema = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, refs, auth)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",  # JSON Schema 2020-12, as pydantic writes it
        "info": {
            "title": "queueapp",
            "version": __version__,
            "description": "A job queue appliance: priorities, retries, delayed and scheduled "
            "jobs, durable in SQLite. Every 2xx answer to a change means it is committed.",
        },
        "paths": paths,
        "components": {"schemas": schema.get("$defs", {})},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def _is_body(model: type[BaseModel]) -> bool:
    return any(e.body is model for e in ENDPOINTS)


def _ref(model: type[BaseModel], refs: dict[Any, Any]) -> dict[str, Any]:
    mode = "validation" if _is_body(model) else "serialization"
    return refs[(model, mode)]


def _operation(e: Endpoint, refs: dict[Any, Any], auth: bool) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": e.summary, "operationId": e.handler.__name__}
    params = [
        {"name": q.name, "in": "query", "required": q.required, "description": q.description,
         "schema": q.schema}
        for q in e.query
    ]
    for name, (description, schema) in PATH_PARAMS.items():
        if "{" + name + "}" in e.path:
            params.append({"name": name, "in": "path", "required": True,
                           "description": description, "schema": schema})
    if params:
        op["parameters"] = params
    if e.body:
        op["requestBody"] = {
            "required": e.body_required,
            "content": {"application/json": {"schema": _ref(e.body, refs)}},
        }
    responses: dict[str, Any] = {}
    for status, model in e.responses.items():
        content = {e.content_type: {"schema": _ref(model, refs) if model else {"type": "string"}}}
        responses[str(status)] = {"description": "Success", "content": content}
    errors = set(e.errors) | ({401} if auth and e.path != "/livez" else set())
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorOut, refs)}},
        }
    op["responses"] = responses
    if auth and e.path != "/livez":
        op["security"] = [{"bearer": []}]
    return op
