"""Routes that add, read, cancel and retry jobs."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from ..clock import from_datetime, to_iso
from ..errors import NotFound
from ..service import added_ids, added_jobs
from .common import job_id_of, ok, parse, parse_with, query_choice, query_int, queue_of, service_of, trace_of
from .models import (
    BULK_PLAIN,
    AddJobBody,
    BulkBody,
    BulkOut,
    JobLogOut,
    JobOut,
    JobsOut,
    Open,
    ScheduleBody,
    plain_bulk,
)
from .present import job_out, jobs_out
from .rules import ADDS, CHANGES_JOB, READS, READS_JOB
from .spec import QUEUE, Api, Query, int_query

api = Api("jobs")


@api.endpoint("POST", "/queues/jobs", ADDS, "Add a job. 200 with the kept job when options.jobId was already used.",
              body=AddJobBody, ok=JobOut, status=201, extra_ok={200: JobOut}, query=(QUEUE,),
              errors=(404, 413, 429, 503))
async def add_job(request: web.Request) -> web.Response:
    queue = queue_of(request)  # a bad queue name is reported before the body
    return await _add_one(request, queue, await parse(request, AddJobBody), None)


async def _add_one(
    request: web.Request, queue: str, body: AddJobBody | ScheduleBody, run_at: int | None
) -> web.Response:
    """201 and the new job, or 200 and the job already kept under its jobId."""
    service = service_of(request)
    new = service.build_job(body.name, body.data, body.options, body.priorityFactors, queue, run_at)
    added = (await service.add_jobs([new], trace_of(request)))[0]
    return ok(job_out(added.job), 201 if added.created else 200)


RETURN = Query("return", "jobs (default): the stored jobs; ids: only their ids, in request order "
               "(a smaller, quicker answer).", {"type": "string", "enum": ["jobs", "ids"]})


@api.endpoint("POST", "/queues/jobs/bulk", ADDS, "Add up to 10,000 jobs, all or none, in one transaction.",
              body=BulkBody, ok=BulkOut, status=201, query=(QUEUE, RETURN), errors=(404, 413, 429, 503))
async def add_bulk(request: web.Request) -> web.Response:
    queue = queue_of(request)
    answer = query_choice(request, "return", ("jobs", "ids"))
    body = await parse_with(request, BULK_PLAIN.validate_json, quick=plain_bulk)
    service = service_of(request)
    items = cast(list[dict[str, Any]], body["jobs"])  # BulkItem is a dict of that shape
    added = await service.add_jobs(service.build_jobs(items, queue), trace_of(request))
    if answer == "ids":
        return ok({"ids": [str(job_id) for job_id in added_ids(added)]}, 201)
    return ok(jobs_out(added_jobs(added)), 201)


@api.endpoint("POST", "/queues/jobs/schedule", ADDS, "Add a job that runs at scheduledTime (a past time runs at once).",
              body=ScheduleBody, ok=JobOut, status=201, extra_ok={200: JobOut}, query=(QUEUE,),
              errors=(404, 413, 429, 503))
async def schedule_job(request: web.Request) -> web.Response:
    queue = queue_of(request)  # a bad queue name is reported before the body
    body = await parse(request, ScheduleBody)
    return await _add_one(request, queue, body, from_datetime(body.scheduledTime))


@api.endpoint("GET", "/queues/jobs/failed", READS, "Failed (dead-letter) jobs, newest failure first.",
              ok=JobsOut, query=(QUEUE, int_query("limit", "How many (default 10).", 1, 1000)))
async def failed_jobs(request: web.Request) -> web.Response:
    queue = queue_of(request)
    limit = query_int(request, "limit", 10, 1, 1000)
    return ok(jobs_out(await service_of(request).get_failed_jobs(limit, queue=queue)))


@api.endpoint("GET", "/queues/jobs/stuck", READS,
              "Active jobs without a heartbeat for longer than the stuck threshold.",
              ok=JobsOut, query=(QUEUE,))
async def stuck_jobs(request: web.Request) -> web.Response:
    return ok(jobs_out(await service_of(request).stuck_jobs(queue_of(request))))


@api.endpoint("GET", "/queues/jobs/{id:[0-9]+}", READS_JOB, "One job.", ok=JobOut, errors=(404,))
async def get_job(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    job = await service_of(request).get_job(job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return ok(job_out(job))


@api.endpoint("GET", "/queues/jobs/{id:[0-9]+}/logs", READS_JOB,
              "A job's log lines after the line numbered `after`, in order.",
              ok=JobLogOut, errors=(404,),
              query=(int_query("after", "Answer the lines numbered after this (default 0: from the first).", 0,
                               2**31 - 1),
                     int_query("limit", "How many lines (default 1000).", 1, 1000)))
async def job_log(request: web.Request) -> web.Response:
    job_id = job_id_of(request)
    after = query_int(request, "after", 0, 0, 2**31 - 1)
    lines = await service_of(request).job_log(job_id, after, query_int(request, "limit", 1000, 1, 1000))
    return ok({"lines": [{"seq": s, "at": to_iso(at), "line": text} for s, at, text in lines],
               "lastSeq": lines[-1].seq if lines else after})


class DependentOut(Open):
    id: str
    name: str
    state: str


class DependentsOut(Open):
    """The jobs waiting on this one (its dependents: their options.dependsOn names
    it); deleting or cancelling it fails them, unless they allow a failed dependency."""

    jobs: list[DependentOut]


@api.endpoint("GET", "/queues/jobs/{id:[0-9]+}/dependents", READS_JOB,
              "The jobs waiting on this one (options.dependsOn).",
              ok=DependentsOut, errors=(404,))
async def job_dependents(request: web.Request) -> web.Response:
    found = await service_of(request).job_dependents(job_id_of(request))
    return ok({"jobs": [{"id": str(i), "name": name, "state": state} for i, name, state in found]})


@api.endpoint("DELETE", "/queues/jobs/{id:[0-9]+}", CHANGES_JOB,
              "Cancel a job: waiting or delayed ones at once, an active one is stopped.",
              ok=JobOut, errors=(404, 409, 503))
async def cancel_job(request: web.Request) -> web.Response:
    return ok(job_out(await service_of(request).cancel_job(job_id_of(request))))


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/retry", CHANGES_JOB,
              "Put a failed or cancelled job back to waiting with fresh attempts.",
              ok=JobOut, errors=(404, 409, 503))
async def retry_job(request: web.Request) -> web.Response:
    return ok(job_out(await service_of(request).retry_job(job_id_of(request))))


@api.endpoint("POST", "/queues/jobs/{id:[0-9]+}/promote", CHANGES_JOB,
              "Run a delayed job now (its delay, time or retry backoff is cut short).",
              ok=JobOut, errors=(404, 409, 503))
async def promote_job(request: web.Request) -> web.Response:
    return ok(job_out(await service_of(request).promote_job(job_id_of(request))))
