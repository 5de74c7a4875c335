"""The HTTP API: one route table per module, added to an app explicitly, and the
OpenAPI description generated from every route's declarations."""

from __future__ import annotations

from aiohttp import web

from . import access, audit, browse, groups, jobs, ndjson, queues, replication, schedules, streams, workers
from .keys import OPENAPI
from .rules import RULES
from .spec import Endpoint, openapi_document

MODULES = (queues, groups, jobs, browse, ndjson, workers, schedules, streams, audit, access, replication)


def endpoints() -> list[Endpoint]:
    return [e for module in MODULES for e in module.api.endpoints]


def add_routes(app: web.Application, auth: bool) -> None:
    for module in MODULES:
        app.add_routes(module.api.routes)
    app[OPENAPI] = openapi_document(endpoints(), auth)
    app[RULES] = {e.handler: e.access for e in endpoints()}
