"""Routes for recurring schedules."""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
from ..options import ScheduleSpec
from .models import RemovedOut, ScheduleOut, SchedulesOut
from .routes import ok, parse, queue_of, routes, service_of
from .spec import QUEUE, endpoint


def _name(request: web.Request) -> str:
    return request.match_info["name"]


@endpoint(routes, "POST", "/queues/schedules",
          "Create a recurring schedule (cron in a time zone, or everyMs); the same name replaces it.",
          body=ScheduleSpec, ok=ScheduleOut, status=201, query=(QUEUE,), errors=(413, 503))
async def save_schedule(request: web.Request) -> web.Response:
    queue = queue_of(request)
    spec = await parse(request, ScheduleSpec)
    schedule = await service_of(request).save_schedule(spec, queue)
    return ok(schedule.to_dict(), 201)


@endpoint(routes, "GET", "/queues/schedules", "The queue's schedules.", ok=SchedulesOut, query=(QUEUE,))
async def list_schedules(request: web.Request) -> web.Response:
    schedules = await service_of(request).store.list_schedules(queue_of(request))
    return ok({"schedules": [s.to_dict() for s in schedules]})


@endpoint(routes, "GET", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}", "One schedule.", ok=ScheduleOut,
          query=(QUEUE,), errors=(404,))
async def get_schedule(request: web.Request) -> web.Response:
    queue, name = queue_of(request), _name(request)
    schedule = await service_of(request).store.get_schedule(queue, name)
    if schedule is None:
        raise NotFound(f"no schedule {name!r} in queue {queue!r}")
    return ok(schedule.to_dict())


@endpoint(routes, "DELETE", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}", "Remove a schedule (its jobs stay).",
          ok=RemovedOut, query=(QUEUE,), errors=(404, 503))
async def delete_schedule(request: web.Request) -> web.Response:
    await service_of(request).scheduler.remove(queue_of(request), _name(request))
    return ok({"removed": 1})


@endpoint(routes, "POST", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}/pause", "Stop a schedule from firing.",
          ok=ScheduleOut, query=(QUEUE,), errors=(404, 503))
async def pause_schedule(request: web.Request) -> web.Response:
    schedule = await service_of(request).scheduler.set_enabled(queue_of(request), _name(request), False)
    return ok(schedule.to_dict())


@endpoint(routes, "POST", "/queues/schedules/{name:[A-Za-z0-9_.:-]+}/resume",
          "Let a paused schedule fire again, from its next time after now.",
          ok=ScheduleOut, query=(QUEUE,), errors=(404, 503))
async def resume_schedule(request: web.Request) -> web.Response:
    schedule = await service_of(request).scheduler.set_enabled(queue_of(request), _name(request), True)
    return ok(schedule.to_dict())
