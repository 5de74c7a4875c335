"""Routes for liveness, queues, their metrics and health, the self-audit and the
OpenAPI description."""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
from ..model import JobState
from .auth import principal_of
from .common import config_of, ok, parse, queue_of, service_of
from .keys import OPENAPI
from .models import (
    AuditOut,
    CleanBody,
    DocumentOut,
    HealthOut,
    LivezOut,
    MetricsOut,
    NodesOut,
    PausedOut,
    QueuesOut,
    RemovedOut,
)
from .present import health_out
from .rules import ANYONE, CHANGES, EVERY, NONE, OWN, READ, READS, UNGUARDED, Rule
from .spec import QUEUE, Api

api = Api("queues")


@api.endpoint("GET", "/livez", UNGUARDED, "200 while the process serves (no auth).", ok=LivezOut)
async def livez(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


@api.endpoint("GET", "/queues", Rule(READ, OWN),
              "Every queue with its counts, paused flag and health (status and issues); for an API key limited to"
              " some queues, those.",
              ok=QueuesOut)
async def list_queues(request: web.Request) -> web.Response:
    service = service_of(request)
    queues = []
    health = service.health_of_all()
    who = principal_of(request)
    for name, paused, counts in service.queue_counts():
        if not who.may_touch(name):
            continue
        report = health.get(name) or service.health(name)
        queues.append({"name": name, "paused": paused, "counts": {str(s): counts.get(s, 0) for s in JobState},
                       "status": report.status, "issues": report.issues})
    return ok({"queues": queues})


@api.endpoint("POST", "/queues/pause", CHANGES,
              "Pause a queue: active jobs finish, no new job starts. Survives restarts.",
              ok=PausedOut, query=(QUEUE,), errors=(503,))
async def pause(request: web.Request) -> web.Response:
    queue = queue_of(request)
    await service_of(request).pause(queue)
    return ok({"queue": queue, "paused": True})


@api.endpoint("POST", "/queues/resume", CHANGES, "Resume a paused queue.", ok=PausedOut, query=(QUEUE,), errors=(503,))
async def resume(request: web.Request) -> web.Response:
    queue = queue_of(request)
    await service_of(request).resume(queue)
    return ok({"queue": queue, "paused": False})


@api.endpoint("POST", "/queues/clean", CHANGES, "Remove finished jobs older than grace ms.",
              body=CleanBody, ok=RemovedOut, query=(QUEUE,), errors=(503,), body_required=False)
async def clean(request: web.Request) -> web.Response:
    queue = queue_of(request)
    body = await parse(request, CleanBody, optional=True)
    removed = await service_of(request).clean(body.grace, body.status, body.limit, queue=queue)
    return ok({"removed": removed})


@api.endpoint("GET", "/queues/metrics", READS, "The queue's counts, throughput (jobs/min) and mean processing time.",
              ok=MetricsOut, query=(QUEUE,))
async def metrics(request: web.Request) -> web.Response:
    return ok(service_of(request).get_queue_metrics(queue_of(request)))


@api.endpoint("GET", "/queues/health", READS, "Health against the thresholds; 503 when critical.",
              ok=HealthOut, extra_ok={503: HealthOut}, query=(QUEUE,))
async def health(request: web.Request) -> web.Response:
    report = service_of(request).health(queue_of(request))
    return ok(health_out(report), 503 if report.status == "critical" else 200)


@api.endpoint("GET", "/queues/nodes", Rule(READ, EVERY),
              "The nodes serving the database: this one, the leader, and every node seen in the last 5 s with "
              "its last heartbeat (in a cluster; one appliance alone answers with itself only as null).",
              ok=NodesOut)
async def nodes(request: web.Request) -> web.Response:
    return ok(service_of(request).nodes())


@api.endpoint("GET", "/debug/audit", Rule(READ, EVERY),
              "Self-audit: compare the appliance's memory with its table (404 unless audit_interval_ms is set).",
              ok=AuditOut, errors=(404, 503))
async def audit(request: web.Request) -> web.Response:
    if not config_of(request).audit_interval_ms:
        raise NotFound("the self-audit is off: start the appliance with audit_interval_ms above 0")
    problems = await service_of(request).audit()
    return ok({"ok": not problems, "problems": problems})


@api.endpoint("GET", "/openapi.json", Rule(ANYONE, NONE), "This description, generated from the code.", ok=DocumentOut)
async def openapi(request: web.Request) -> web.Response:
    return ok(request.app[OPENAPI])
