"""HTTP routes: parse and validate, call the service, answer JSON.

Every route that changes state answers only after the change is committed.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..clock import from_datetime, to_iso
from ..errors import NotFound, QueueAppError, ValidationFailed
from ..jsonfast import check_finite_json, dumps_bytes
from ..model import Job, JobState
from ..options import check_queue_name
from ..retry import Failure
from ..service import DEFAULT_QUEUE, QueueService, validation_details
from .models import (
    AddJobBody,
    AuditOut,
    BulkBody,
    CleanBody,
    CompleteBody,
    CompleteManyBody,
    CompleteManyOut,
    DocumentOut,
    FailBody,
    HealthOut,
    HeartbeatBody,
    HeartbeatOut,
    JobOut,
    JobPageOut,
    JobsOut,
    LeaseBody,
    LeaseOut,
    LivezOut,
    MetricsOut,
    PausedOut,
    QueuesOut,
    ReleaseBody,
    RemovedOut,
    ScheduleBody,
)
from .spec import JOB_NAME, QUEUE, Query, endpoint, int_query, openapi_document

M = TypeVar("M", bound=BaseModel)

routes = web.RouteTableDef()


# -- helpers ----------------------------------------------------------------------------


def ok(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps_bytes(body), content_type="application/json")


def service_of(request: web.Request) -> QueueService:
    return request.app["service"]


def queue_of(request: web.Request) -> str:
    queue = request.query.get("queue", DEFAULT_QUEUE)
    try:
        return check_queue_name(queue)
    except ValueError as exc:
        raise ValidationFailed(str(exc), [{"field": "queue", "message": str(exc)}]) from None


async def parse(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    raw = await request.read()
    if optional and not raw.strip():
        raw = b"{}"
    try:
        check_finite_json(raw)
    except ValueError as exc:
        message = f"invalid request body: {exc}; JSON numbers must be finite"
        raise ValidationFailed(message, [{"field": None, "message": message}]) from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0]
        where = f" at {first['field']}" if first["field"] else ""
        raise ValidationFailed(f"invalid request body{where}: {first['message']}", details) from None


def job_id_of(request: web.Request) -> int:
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
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


def jobs_body(jobs: list[Job]) -> dict[str, Any]:
    return {"jobs": [j.to_dict() for j in jobs]}


# -- liveness and queues ----------------------------------------------------------------


@endpoint(routes, "GET", "/livez", "200 while the process serves (no auth).", ok=LivezOut)
async def livez(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


@endpoint(routes, "GET", "/queues", "Every queue with its counts and paused flag.", ok=QueuesOut)
async def list_queues(request: web.Request) -> web.Response:
    service = service_of(request)
    dispatcher = service.dispatcher
    queues = []
    for name in sorted(dispatcher.queues):
        counts = dispatcher.metrics.of(name).counts
        queues.append(
            {"name": name, "paused": dispatcher.queues[name].paused,
             "counts": {str(state): counts[state] for state in JobState}}
        )
    return ok({"queues": queues})


@endpoint(routes, "POST", "/queues/pause", "Pause a queue: active jobs finish, no new job starts. Survives restarts.",
          ok=PausedOut, query=(QUEUE,), errors=(503,))
async def pause(request: web.Request) -> web.Response:
    queue = queue_of(request)
    await service_of(request).pause(queue)
    return ok({"queue": queue, "paused": True})


@endpoint(routes, "POST", "/queues/resume", "Resume a paused queue.", ok=PausedOut, query=(QUEUE,), errors=(503,))
async def resume(request: web.Request) -> web.Response:
    queue = queue_of(request)
    await service_of(request).resume(queue)
    return ok({"queue": queue, "paused": False})


@endpoint(routes, "POST", "/queues/clean", "Remove finished jobs older than grace ms.",
          body=CleanBody, ok=RemovedOut, query=(QUEUE,), errors=(503,), body_required=False)
async def clean(request: web.Request) -> web.Response:
    queue = queue_of(request)
    body = await parse(request, CleanBody, optional=True)
    removed = await service_of(request).clean(body.grace, body.status, body.limit, queue=queue)
    return ok({"removed": removed})


# -- metrics and health -------------------------------------------------------------------


@endpoint(routes, "GET", "/queues/metrics", "The queue's counts, throughput (jobs/min) and mean processing time.",
          ok=MetricsOut, query=(QUEUE,))
async def metrics(request: web.Request) -> web.Response:
    return ok(service_of(request).get_queue_metrics(queue_of(request)))


@endpoint(routes, "GET", "/queues/health", "Health against the thresholds; 503 when critical.",
          ok=HealthOut, extra_ok={503: HealthOut}, query=(QUEUE,))
async def health(request: web.Request) -> web.Response:
    report = request.app["monitor"].check(queue_of(request))
    return ok(report.to_dict(), 503 if report.status == "critical" else 200)


# -- enqueue ------------------------------------------------------------------------------


@endpoint(routes, "POST", "/queues/jobs", "Add a job. 200 with the kept job when options.jobId was already used.",
          body=AddJobBody, ok=JobOut, status=201, extra_ok={200: JobOut}, query=(QUEUE,),
          errors=(413, 429, 503))
async def add_job(request: web.Request) -> web.Response:
    queue = queue_of(request)  # a bad queue name is reported before the body
    return await _add_one(request, queue, await parse(request, AddJobBody), None)


async def _add_one(
    request: web.Request, queue: str, body: AddJobBody | ScheduleBody, run_at: int | None
) -> web.Response:
    """201 and the new job, or 200 and the job already kept under its jobId."""
    service = service_of(request)
    new = service.build_job(body.name, body.data, body.options, body.priorityFactors,
                            queue, run_at)
    added = (await service.dispatcher.add([new]))[0]
    return ok(added.job.to_dict(), 201 if added.created else 200)


@endpoint(routes, "POST", "/queues/jobs/bulk", "Add up to 10,000 jobs, all or none, in one transaction.",
          body=BulkBody, ok=JobsOut, status=201, query=(QUEUE,), errors=(413, 429, 503))
async def add_bulk(request: web.Request) -> web.Response:
    queue = queue_of(request)
    body = await parse(request, BulkBody)
    service = service_of(request)
    new = [service.build_job(j.name, j.data, j.options, j.priorityFactors, queue) for j in body.jobs]
    added = await service.dispatcher.add(new)
    return ok({"jobs": [a.job.to_dict() for a in added]}, 201)


@endpoint(routes, "POST", "/queues/jobs/schedule", "Add a job that runs at scheduledTime (a past time runs at once).",
          body=ScheduleBody, ok=JobOut, status=201, extra_ok={200: JobOut}, query=(QUEUE,),
          errors=(413, 429, 503))
async def schedule_job(request: web.Request) -> web.Response:
    queue = queue_of(request)  # a bad queue name is reported before the body
    body = await parse(request, ScheduleBody)
    return await _add_one(request, queue, body, from_datetime(body.scheduledTime))


# -- reading jobs -------------------------------------------------------------------------


@endpoint(routes, "GET", "/queues/jobs", "A page of jobs in id order; pass nextCursor as cursor for the next.",
          ok=JobPageOut, query=(QUEUE, Query("state", "Only jobs in this state.",
                                             {"type": "string", "enum": [s.value for s in JobState]}),
                                Query("name", "Only jobs of this name.", JOB_NAME),
                                int_query("limit", "Page size (default 100).", 1, 1000),
                                int_query("cursor", "nextCursor of the previous page.", 0, 2**48)))
async def list_jobs(request: web.Request) -> web.Response:
    queue = queue_of(request)
    state_text = request.query.get("state")
    try:
        state = None if state_text is None else JobState(state_text)
    except ValueError:
        message = f"state must be one of {', '.join(s.value for s in JobState)}"
        raise ValidationFailed(message, [{"field": "state", "message": message}]) from None
    limit = query_int(request, "limit", 100, 1, 1000)
    cursor = query_int(request, "cursor", 0, 0, 2**48)
    name = query_name(request)
    jobs = await service_of(request).store.list_jobs(queue, state, name, limit, cursor)
    next_cursor = str(jobs[-1].id) if len(jobs) == limit else None
    return ok({**jobs_body(jobs), "nextCursor": next_cursor})


@endpoint(routes, "GET", "/queues/jobs/failed", "Failed (dead-letter) jobs, newest failure first.",
          ok=JobsOut, query=(QUEUE, int_query("limit", "How many (default 10).", 1, 1000)))
async def failed_jobs(request: web.Request) -> web.Response:
    queue = queue_of(request)
    limit = query_int(request, "limit", 10, 1, 1000)
    return ok(jobs_body(await service_of(request).get_failed_jobs(limit, queue=queue)))


@endpoint(routes, "GET", "/queues/jobs/stuck", "Active jobs without a heartbeat for longer than the stuck threshold.",
          ok=JobsOut, query=(QUEUE,))
async def stuck_jobs(request: web.Request) -> web.Response:
    service = service_of(request)
    queue = queue_of(request)
    jobs = []
    for job_id in request.app["monitor"].stuck_ids(queue, service.clock.now_ms()):
        job = await service.store.get_job(job_id)
        if job is not None and job.state is JobState.ACTIVE:
            jobs.append(job)
    return ok(jobs_body(jobs))


@endpoint(routes, "POST", "/queues/jobs/complete", "Complete many leased jobs in one request; each answers on its own.",
          body=CompleteManyBody, ok=CompleteManyOut, errors=(503,))
async def complete_many(request: web.Request) -> web.Response:
    body = await parse(request, CompleteManyBody)
    dispatcher = service_of(request).dispatcher
    outcomes = await asyncio.gather(
        *(dispatcher.complete(int(item.id), item.leaseToken, item.result) for item in body.jobs),
        return_exceptions=True,
    )
    results = []
    for item, outcome in zip(body.jobs, outcomes, strict=True):
        if isinstance(outcome, QueueAppError):
            error = {"code": outcome.code, "message": outcome.message}
            results.append({"id": item.id, "ok": False, "error": error})
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results.append({"id": item.id, "ok": True, "state": str(outcome.state)})
    return ok({"results": results})


@endpoint(routes, "GET", "/debug/audit",
          "Self-audit: compare the appliance's memory with its table (404 unless audit_interval_ms is set).",
          ok=AuditOut, errors=(404, 503))
async def audit(request: web.Request) -> web.Response:
    if not request.app["config"].audit_interval_ms:
        raise NotFound("the self-audit is off: start the appliance with audit_interval_ms above 0")
    problems = await service_of(request).dispatcher.audit()
    return ok({"ok": not problems, "problems": problems})


@endpoint(routes, "GET", "/openapi.json", "This description, generated from the code.", ok=DocumentOut)
async def openapi(request: web.Request) -> web.Response:
    return ok(openapi_document(bool(request.app["config"].token)))


@endpoint(routes, "GET", "/queues/jobs/{id:[0-9]+}", "One job.", ok=JobOut, errors=(404,))
async def get_job(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    job = await service_of(request).store.get_job(job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return ok(job.to_dict())


@endpoint(routes, "DELETE", "/queues/jobs/{id:[0-9]+}",
          "Cancel a job: waiting or delayed ones at once, an active one is stopped.",
          ok=JobOut, errors=(404, 409, 503))
async def cancel_job(request: web.Request) -> web.Response:
    return ok((await service_of(request).cancel_job(job_id_of(request))).to_dict())


@endpoint(routes, "POST", "/queues/jobs/{id:[0-9]+}/retry",
          "Put a failed or cancelled job back to waiting with fresh attempts.",
          ok=JobOut, errors=(404, 409, 503))
async def retry_job(request: web.Request) -> web.Response:
    return ok((await service_of(request).retry_job(job_id_of(request))).to_dict())


# -- external workers ---------------------------------------------------------------------


@endpoint(routes, "POST", "/queues/jobs/lease",
          "Lease due jobs for an external worker, highest priority first; long-polls with waitMs.",
          body=LeaseBody, ok=LeaseOut, query=(QUEUE,), errors=(503,), body_required=False)
async def lease(request: web.Request) -> web.Response:
    queue = queue_of(request)
    body = await parse(request, LeaseBody, optional=True)
    service = service_of(request)
    lease_ms = body.leaseMs or service.dispatcher.default_lease_ms
    wait_ms = min(body.waitMs, request.app["config"].long_poll_max_ms)
    jobs = await service.dispatcher.lease(queue, body.names, body.max, lease_ms, wait_ms,
                                          alive=lambda: _connected(request))
    return ok({"jobs": [{**j.to_dict(), "leaseToken": j.lease_token} for j in jobs]})


@endpoint(routes, "POST", "/queues/jobs/{id:[0-9]+}/heartbeat", "Extend a lease and report progress.",
          body=HeartbeatBody, ok=HeartbeatOut, errors=(404, 409, 503))
async def heartbeat(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, HeartbeatBody)
    job = await service_of(request).dispatcher.heartbeat(job_id, body.leaseToken, body.progress, body.leaseMs)
    return ok({**job.to_dict(), "leaseExpiresAt": to_iso(job.lease_expires_at)})


@endpoint(routes, "POST", "/queues/jobs/{id:[0-9]+}/complete", "Complete a leased job with its result.",
          body=CompleteBody, ok=JobOut, errors=(404, 409, 503))
async def complete(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, CompleteBody)
    job = await _finish_or_explain(request, job_id, body.leaseToken, result=body.result)
    return ok(job.to_dict())


@endpoint(routes, "POST", "/queues/jobs/{id:[0-9]+}/fail",
          "Fail a leased job's attempt: it retries with backoff unless retry is false or attempts are spent.",
          body=FailBody, ok=JobOut, errors=(404, 409, 503))
async def fail(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, FailBody)
    job = await _finish_or_explain(request, job_id, body.leaseToken, error=body.error,
                                   retry=body.retry, retry_after_ms=body.retryAfterMs)
    return ok(job.to_dict())


@endpoint(routes, "POST", "/queues/jobs/{id:[0-9]+}/release",
          "Hand a leased job back without counting the attempt (a worker shutting down).",
          body=ReleaseBody, ok=JobOut, errors=(404, 409, 503))
async def release(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    body = await parse(request, ReleaseBody)
    service = service_of(request)
    await _known(service, job_id)
    return ok((await service.dispatcher.release(job_id, body.leaseToken)).to_dict())


def _connected(request: web.Request) -> bool:
    """False once the client has closed its connection (a long poll it gave up on)."""
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _finish_or_explain(
    request: web.Request, job_id: int, token: str, *, result: Any = None,
    error: str | None = None, retry: bool = True, retry_after_ms: int | None = None,
) -> Job:
    service = service_of(request)
    await _known(service, job_id)
    if error is None:
        return await service.dispatcher.complete(job_id, token, result)
    return await service.dispatcher.fail(job_id, token, Failure(error, retry, retry_after_ms))


async def _known(service: QueueService, job_id: int) -> None:
    """404 for an id that was never a job (a stale token on a real job is a 409)."""
    if job_id not in service.dispatcher.active and await service.store.get_job(job_id) is None:
        raise NotFound(f"no job with id {job_id}")
