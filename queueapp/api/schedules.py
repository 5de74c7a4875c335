"""Routes for recurring schedules."""

from __future__ import annotations

from aiohttp import web

from ..options import ScheduleSpec
from .common import ok, parse, queue_of, service_of
from .models import JobOut, RemovedOut, ScheduleOut, SchedulesOut
from .present import job_out, schedule_out
from .rules import CHANGES, READS
from .spec import QUEUE, Api

api = Api("schedules")


def _name(request: web.Request) -> str:
    return request.match_info["name"]


@api.endpoint("POST", "/queues/schedules", CHANGES,
          "Create a recurring schedule (cron in a time zone, or everyMs); the same name replaces it.",
          body=ScheduleSpec, ok=ScheduleOut, status=201, query=(QUEUE,), errors=(413, 503))
async def save_schedule(request: web.Request) -> web.Response:
    queue = queue_of(request)
    spec = await parse(request, ScheduleSpec)
    schedule = await service_of(request).schedules.save(spec, queue)
    return ok(schedule_out(schedule), 201)


@api.endpoint("GET", "/queues/schedules", READS, "The queue's schedules.", ok=SchedulesOut, query=(QUEUE,))
async def list_schedules(request: web.Request) -> web.Response:
    schedules = await service_of(request).schedules.list(queue_of(request))
    return ok({"schedules": [schedule_out(s) for s in schedules]})


@api.endpoint("GET", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}", READS, "One schedule.", ok=ScheduleOut,
          query=(QUEUE,), errors=(404,))
async def get_schedule(request: web.Request) -> web.Response:
    queue, name = queue_of(request), _name(request)
    return ok(schedule_out(await service_of(request).schedules.get(queue, name)))


@api.endpoint("DELETE", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}", CHANGES, "Remove a schedule (its jobs stay).",
          ok=RemovedOut, query=(QUEUE,), errors=(404, 503))
async def delete_schedule(request: web.Request) -> web.Response:
    await service_of(request).schedules.remove(queue_of(request), _name(request))
    return ok({"removed": 1})


@api.endpoint("POST", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}/pause", CHANGES, "Stop a schedule from firing.",
          ok=ScheduleOut, query=(QUEUE,), errors=(404, 503))
async def pause_schedule(request: web.Request) -> web.Response:
    schedule = await service_of(request).schedules.set_enabled(queue_of(request), _name(request), False)
    return ok(schedule_out(schedule))


@api.endpoint("POST", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}/resume", CHANGES,
          "Let a paused schedule fire again, from its next time after now.",
          ok=ScheduleOut, query=(QUEUE,), errors=(404, 503))
async def resume_schedule(request: web.Request) -> web.Response:
    schedule = await service_of(request).schedules.set_enabled(queue_of(request), _name(request), True)
    return ok(schedule_out(schedule))


@api.endpoint("POST", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}/run", CHANGES,
              "Run the schedule once now, besides its rule (which goes on unchanged).",
              ok=JobOut, status=201, query=(QUEUE,), errors=(404, 429, 503))
async def run_schedule(request: web.Request) -> web.Response:
    job = await service_of(request).schedules.run_now(queue_of(request), _name(request))
    return ok(job_out(job), 201)
