"""Routes of the external-worker protocol: lease, heartbeat, complete, fail, release."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import QueueAppError
from ..retry import Failure
from ..traces import kept_stack
from .common import config_of, job_id_of, ok, parse, queue_of, service_of
from .errors import code_of
from .models import (
    CompleteBody,
    CompleteManyBody,
    CompleteManyOut,
    FailBody,
    HeartbeatBody,
    HeartbeatOut,
    JobOut,
    LeaseBody,
    LeaseOut,
    LogAppendedOut,
    LogBody,
    ReleaseBody,
)
from .present import heartbeat_out, job_out, leased_out
from .rules import JOBS, WORK, WORKS, Rule
from .spec import QUEUE, Api

api = Api("workers")


def _with_the_lease(operation: str) -> dict[str, Any]:
    """An OpenAPI link: ``operation`` on the first leased job, with its lease token."""
    return {"operationId": operation, "parameters": {"id": "$response.body#/jobs/0/id"},
            "requestBody": {"leaseToken": "$response.body#/jobs/0/leaseToken"},
            "description": f"{operation} the first job leased, with its lease token"}


@api.endpoint("POST", "/queues/jobs/lease", Rule(WORK),
              "Lease due jobs for an external worker, highest priority first; long-polls with waitMs.",
              body=LeaseBody, ok=LeaseOut, query=(QUEUE,), errors=(503,), body_required=False,
              links={op.title(): _with_the_lease(op) for op in ("heartbeat", "complete", "fail", "release")})
async def lease(request: web.Request) -> web.Response:
    queue = queue_of(request)
    body = await parse(request, LeaseBody, optional=True)
    wait_ms = min(body.waitMs, config_of(request).long_poll_max_ms)
    jobs = await service_of(request).workers.lease(queue, body.names, body.max, body.leaseMs, wait_ms,
                                                   alive=lambda: _connected(request),
                                                   worker=body.worker or request.remote)
    trace = service_of(request).tracing.attempt_context
    return ok({"jobs": [leased_out(j, trace(j)) for j in jobs]})


def _connected(request: web.Request) -> bool:
    """False once the client has closed its connection (a long poll it gave up on)."""
    transport = request.transport
    return transport is not None and not transport.is_closing()


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/heartbeat", WORKS, "Extend a lease and report progress.",
              body=HeartbeatBody, ok=HeartbeatOut, errors=(404, 409, 503))
async def heartbeat(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, HeartbeatBody)
    job = await service_of(request).workers.heartbeat(job_id, body.leaseToken, body.progress, body.leaseMs)
    return ok(heartbeat_out(job))


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/log", WORKS,
              "Append lines to a leased job's log (kept with the job, its newest 1,000 lines).",
              body=LogBody, ok=LogAppendedOut, errors=(404, 409, 503))
async def append_log(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, LogBody)
    return ok({"lastSeq": await service_of(request).workers.log(job_id, body.leaseToken, body.lines)})


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/complete", WORKS, "Complete a leased job with its result.",
              body=CompleteBody, ok=JobOut, errors=(404, 409, 503))
async def complete(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, CompleteBody)
    return ok(job_out(await service_of(request).workers.complete(job_id, body.leaseToken, body.result)))


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/fail", WORKS,
              "Fail a leased job's attempt: it retries with backoff unless retry is false or attempts are spent.",
              body=FailBody, ok=JobOut, errors=(404, 409, 503))
async def fail(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, FailBody)
    failure = Failure(body.error, body.retry, body.retryAfterMs, stack=kept_stack(body.stack))
    return ok(job_out(await service_of(request).workers.fail(job_id, body.leaseToken, failure)))


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/release", WORKS,
              "Hand a leased job back without counting the attempt (a worker shutting down).",
              body=ReleaseBody, ok=JobOut, errors=(404, 409, 503))
async def release(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, ReleaseBody)
    return ok(job_out(await service_of(request).workers.release(job_id, body.leaseToken)))


@api.endpoint("POST", "/queues/jobs/complete", Rule(WORK, JOBS),
              "Complete many leased jobs in one request; each answers on its own.",
              body=CompleteManyBody, ok=CompleteManyOut, errors=(503,))
async def complete_many(request: web.Request) -> web.Response:
    body = await parse(request, CompleteManyBody)
    workers = service_of(request).workers
    outcomes = await workers.complete_many([(int(item.id), item.leaseToken, item.result) for item in body.jobs])
    results = []
    for item, outcome in zip(body.jobs, outcomes, strict=True):
        if isinstance(outcome, QueueAppError):
            error = {"code": code_of(outcome)[1], "message": outcome.message}
            results.append({"id": item.id, "ok": False, "error": error})
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results.append({"id": item.id, "ok": True, "state": str(outcome.state)})
    return ok({"results": results})
