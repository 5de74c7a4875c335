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

from ..options import GROUP_KEY, MAX_QUEUE_NAME, QUEUE_NAME, SCHEDULE_NAME
from ..version import __version__
from .models import ErrorOut
from .rules import PUBLIC, Rule


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


QUEUE = Query("queue", "Queue name: 1 to 64 of [A-Za-z0-9_.-], not '.' or '..'. Default: default.",
              {"type": "string", "minLength": 1, "maxLength": MAX_QUEUE_NAME, "pattern": QUEUE_NAME.pattern})
JOB_NAME = {"type": "string", "minLength": 1, "maxLength": 128}
# Path parameters, by name: what a route's {name} may be (the route's own pattern too).
PATH_PARAMS = {
    "id": ("Job id.", {"type": "string", "pattern": r"^[0-9]{1,15}$"}),
    "name": ("Schedule name.", {"type": "string", "minLength": 1, "maxLength": 128, "pattern": SCHEDULE_NAME}),
    "key": ("Group key (options.group), URL-encoded.",
            {"type": "string", "minLength": 1, "maxLength": 128, "pattern": GROUP_KEY}),
    "key_id": ("API key id (its secret's first part after qak_).", {"type": "string", "pattern": r"^[A-Za-z0-9]{12}$"}),
}
_ROUTE_REGEX = re.compile(r"\{(\w+):[^}]+\}")


def int_query(name: str, description: str, low: int, high: int) -> Query:
    return Query(name, description, {"type": "integer", "minimum": low, "maximum": high})

# The areas of the API, in the order a reader meets them: each operation is tagged with
# its module's, so that a generated client groups its methods the same way.
TAGS = {
    "queues": "Queues: pause and resume, metrics, health, cleanup; a cluster's nodes, the self-audit, liveness"
              " and this description.",
    "jobs": "Jobs: add (one, bulk, a stream of lines), read, cancel, retry, promote.",
    "workers": "External workers: lease jobs, heartbeat, complete, fail, release.",
    "schedules": "Recurring jobs: cron or every N ms, with a policy for missed runs.",
    "groups": "Group flow control (options.group): a queue's policy, keys' limits and pauses.",
    "operator": "The operator's desk: search, actions on many jobs, failure groups, history.",
    "observability": "Prometheus metrics and the job event stream (Server-Sent Events).",
    "access": "API keys: one for each service, with the roles and queues it needs; rotate and revoke at once.",
    "replication": "The database's copy (replicate_to), for a standby on another host to follow.",
}
# Who may call an operation is said by its x-queueapp-access: the role it needs and
# which queues it touches (api/rules.py).
BEARER = {"type": "http", "scheme": "bearer",
          "description": "The token (every operation), the read_token (reads only), or an API key (qak_...) whose "
                         "roles and queues allow the operation: see each operation's x-queueapp-access."}


ERROR_TEXT = {
    400: "Invalid input, or a Host the appliance does not answer to (allowed_hosts): nothing was changed.",
    401: "Missing or wrong bearer token.",
    403: "The caller's roles or queues do not allow this (the read-only token changes nothing); a browser page"
         " of another origin may change nothing.",
    404: "No such job (or route).",
    409: "The job is not in a state that allows this, or the lease token is stale.",
    413: "Request body larger than max_body_bytes.",
    429: "The enqueue rate limit, or too many failed attempts to log in from this address; see Retry-After.",
    503: "The store cannot take writes (disk full, read-only): nothing was stored.",
}


@dataclass
class Endpoint:
    method: str
    path: str
    access: Rule  # the role and queues a caller needs (rules.py)
    summary: str
    body: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    query: tuple[Query, ...]
    errors: tuple[int, ...]
    handler: Callable[..., Any] = field(repr=False)
    content_type: str = "application/json"
    body_required: bool = True
    body_content: str | None = None  # a body that is not one JSON document (NDJSON, say)
    # OpenAPI links of the success answer: which operations take what it returned
    # (a leased job's id and token), so that a client or a stateful fuzzer can follow.
    links: dict[str, Any] | None = None
    tag: str = ""  # the area it belongs to (its module's), for generated clients and readers


class Api:
    """One module's routes and their descriptions. A route declares its request and
    response models where it is defined; ``/openapi.json`` is generated from them.
    ``tag``: the area the module's routes belong to (one of TAGS)."""

    def __init__(self, tag: str) -> None:
        assert tag in TAGS, f"an area of the API is one of {sorted(TAGS)}"
        self.tag = tag
        self.routes = web.RouteTableDef()
        self.endpoints: list[Endpoint] = []

    def endpoint(
        self,
        method: str,
        path: str,
        access: Rule,
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
        body_content: str | None = None,
        links: dict[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``handler`` for ``method path`` and describe it. ``path`` may give a
        parameter its pattern (``{id:[0-9]+}``), so that ``/queues/jobs/bulk`` is never
        taken for a job id; the description shows it as ``{id}``. ``access``: who may
        call it (every route says; rules.py checks)."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.route(method, path)(handler)
            responses = {status: ok, **(extra_ok or {})}
            all_errors = tuple(sorted(set(errors) | ({400} if body or query else set())))
            self.endpoints.append(Endpoint(
                method, _ROUTE_REGEX.sub(r"{\1}", path), access, summary, body, responses, query, all_errors,
                handler, content_type, body_required, body_content, links, self.tag,
            ))
            return handler

        return register


def openapi_document(endpoints: list[Endpoint], auth: bool) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for e in endpoints:
        if e.body:
            models.add(e.body)
        models.update(m for m in e.responses.values() if m)
    bodies = {e.body for e in endpoints if e.body}
    keyed: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "validation" if m in bodies else "serialization") for m in models
    ]
    refs, schema = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
    paths: dict[str, Any] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, refs, auth, bodies)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",  # JSON Schema 2020-12, as pydantic writes it
        "info": {
            "title": "queueapp",
            "version": __version__,
            "description": "A job queue appliance: priorities, retries, delayed and scheduled "
            "jobs, durable in SQLite. Every 2xx answer to a change means it is committed.",
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {"schemas": schema.get("$defs", {})},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": BEARER}
    return doc


def _error_statuses(e: Endpoint, auth: bool) -> list[int]:
    """A route's own errors, and those the middlewares give before it runs: 400 for a
    host name not allowed (every route but /livez); under auth 401, 403 (the caller's
    roles or queues) and 429 (failed attempts to log in); 403 for a change from a
    browser page of another origin; 413 for a body over max_body_bytes (every route
    that reads one: the size is checked first)."""
    errors = set(e.errors)
    guarded = auth and e.access.role != PUBLIC
    if e.access.role != PUBLIC:
        errors.add(400)
    if guarded:
        errors |= {401, 403, 429}
    if e.method not in ("GET", "HEAD"):
        errors.add(403)
    if e.body or e.body_content:
        errors.add(413)
    return sorted(errors)


def _operation(e: Endpoint, refs: dict[Any, Any], auth: bool, bodies: set[Any]) -> dict[str, Any]:
    def _ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation" if model in bodies else "serialization")]

    op: dict[str, Any] = {"summary": e.summary, "operationId": e.handler.__name__, "tags": [e.tag],
                          "x-queueapp-access": e.access.as_openapi()}
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
    if e.body_content:
        # Lines of text: said as text/plain too, which every client (and fuzzer) can send.
        op["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": {"type": "string", "minLength": 1}}
                        for kind in (e.body_content, "text/plain")},
        }
    if e.body:
        op["requestBody"] = {
            "required": e.body_required,
            "content": {"application/json": {"schema": _ref(e.body)}},
        }
    op["responses"] = _responses(e, auth, _ref)
    if auth and e.access.role != PUBLIC:
        op["security"] = [{"bearer": []}]
    return op


def _responses(e: Endpoint, auth: bool, ref: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
    """Every answer a route can give: its successes (with their links) and errors."""
    responses: dict[str, Any] = {}
    for status, model in e.responses.items():
        content = {e.content_type: {"schema": ref(model) if model else {"type": "string"}}}
        responses[str(status)] = {"description": "Success", "content": content}
        if e.links:
            responses[str(status)]["links"] = e.links
    for status in _error_statuses(e, auth):
        responses[str(status)] = {
            "description": ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": ref(ErrorOut)}},
        }
    return responses
