"""Routes for group flow control: a queue's group policy (the limits of every key),
a key's own limits, pausing a key, and what each key is doing."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, TypeAdapter, ValidationError

from ..clock import to_iso
from ..errors import ValidationFailed
from ..flow import GroupLimits
from ..options import MAX_DELAY_MS, WHOLE, GroupKey, Strict
from ..service_groups import GroupsView, KeyView
from .common import ok, parse, query_int, queue_of, service_of
from .models import Open
from .rules import CHANGES, READS
from .spec import QUEUE, Api, int_query

api = Api("groups")


class RateBody(Strict):
    max: Annotated[int, Field(ge=1, le=1_000_000), WHOLE]
    perMs: Annotated[int, Field(ge=1, le=86_400_000), WHOLE]


class LimitsBody(Strict):
    """Limits of a group key: at most ``concurrency`` of its jobs active at once, at
    most ``rate.max`` of them started in any window of ``rate.perMs``. A limit left
    out (or null) is no limit."""

    concurrency: Annotated[int, Field(ge=1, le=100_000), WHOLE] | None = None
    rate: RateBody | None = None

    def limits(self) -> GroupLimits:
        if self.rate is None:
            return GroupLimits(self.concurrency)
        return GroupLimits(self.concurrency, self.rate.max, self.rate.perMs)


class PauseBody(Strict):
    durationMs: Annotated[int, Field(ge=1, le=MAX_DELAY_MS), WHOLE] | None = None


class RateOut(Open):
    max: int
    perMs: int


class LimitsOut(Open):
    concurrency: int | None
    rate: RateOut | None


class AgingOut(Open):
    everyMs: int
    maxLevels: int


class GroupKeyOut(Open):
    key: str
    limits: LimitsOut
    custom: bool
    paused: bool
    pausedUntil: str | None
    active: int
    waiting: int


class GroupsOut(Open):
    queue: str
    policy: LimitsOut
    aging: AgingOut | None
    keys: list[GroupKeyOut]
    totalKeys: int


_KEY: TypeAdapter[str] = TypeAdapter(GroupKey)
KEY_ROUTE = "/queues/groups/{key:[^/]+}"


def _key(request: web.Request) -> str:
    try:
        return _KEY.validate_python(request.match_info["key"])
    except ValidationError:
        message = "a group key is 1 to 128 characters, without '/' or control characters, and not '.' or '..'"
        raise ValidationFailed(message, [{"field": "key", "message": message}]) from None


def limits_out(limits: GroupLimits) -> dict[str, Any]:
    rate = None if limits.rate_max is None else {"max": limits.rate_max, "perMs": limits.rate_per_ms}
    return {"concurrency": limits.concurrency, "rate": rate}


def key_out(view: KeyView) -> dict[str, Any]:
    return {"key": view.key, "limits": limits_out(view.limits), "custom": view.custom, "paused": view.paused,
            "pausedUntil": to_iso(view.paused_until), "active": view.active, "waiting": view.waiting}


def groups_out(view: GroupsView) -> dict[str, Any]:
    aging = None if view.aging is None else {"everyMs": view.aging.every_ms, "maxLevels": view.aging.max_levels}
    return {"queue": view.queue, "policy": limits_out(view.limits), "aging": aging,
            "keys": [key_out(k) for k in view.keys], "totalKeys": view.total_keys}


@api.endpoint("GET", "/queues/groups", READS,
              "The queue's group policy, its aging, and its keys (waiting, running or with settings of their own;"
              " the most waiting first).",
              ok=GroupsOut, query=(QUEUE, int_query("limit", "How many keys (default 100).", 1, 1000)))
async def list_groups(request: web.Request) -> web.Response:
    queue = queue_of(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    return ok(groups_out(await service_of(request).groups.view(queue, limit)))


@api.endpoint("GET", "/queues/groups/policy", READS, "The queue's group policy (answered as GET /queues/groups).",
              ok=GroupsOut, query=(QUEUE, int_query("limit", "How many keys (default 100).", 1, 1000)))
async def get_policy(request: web.Request) -> web.Response:
    return await list_groups(request)


@api.endpoint("PUT", "/queues/groups/policy", CHANGES,
              "Set the limits of every group key of the queue (stored; wins over [queues.NAME.groups]).",
              body=LimitsBody, ok=GroupsOut, query=(QUEUE,), errors=(503,))
async def set_policy(request: web.Request) -> web.Response:
    queue = queue_of(request)
    body = await parse(request, LimitsBody)
    return ok(groups_out(await service_of(request).groups.set_policy(queue, body.limits())))


@api.endpoint("DELETE", "/queues/groups/policy", CHANGES,
              "Drop the stored policy: the config file's [queues.NAME.groups] applies again.",
              ok=GroupsOut, query=(QUEUE,), errors=(503,))
async def drop_policy(request: web.Request) -> web.Response:
    return ok(groups_out(await service_of(request).groups.set_policy(queue_of(request), None)))


@api.endpoint("GET", KEY_ROUTE, READS, "One group key: its limits, pause, active and waiting jobs.",
              ok=GroupKeyOut, query=(QUEUE,))
async def get_key(request: web.Request) -> web.Response:
    queue, key = queue_of(request), _key(request)
    return ok(key_out(await service_of(request).groups.key(queue, key)))


@api.endpoint("PUT", KEY_ROUTE, CHANGES, "Give one group key limits of its own (instead of the queue's policy).",
              body=LimitsBody, ok=GroupKeyOut, query=(QUEUE,), errors=(503,))
async def set_key(request: web.Request) -> web.Response:
    queue, key = queue_of(request), _key(request)
    body = await parse(request, LimitsBody)
    return ok(key_out(await service_of(request).groups.set_key(queue, key, body.limits())))


@api.endpoint("DELETE", KEY_ROUTE, CHANGES,
              "Drop a key's own limits and pause: the queue's policy applies to it again.",
              ok=GroupKeyOut, query=(QUEUE,), errors=(404, 503))
async def forget_key(request: web.Request) -> web.Response:
    queue, key = queue_of(request), _key(request)
    return ok(key_out(await service_of(request).groups.forget(queue, key)))


@api.endpoint("POST", KEY_ROUTE + "/pause", CHANGES,
              "Start no job of this key (for durationMs, or until resumed); its running jobs go on.",
              body=PauseBody, ok=GroupKeyOut, query=(QUEUE,), errors=(503,), body_required=False)
async def pause_key(request: web.Request) -> web.Response:
    queue, key = queue_of(request), _key(request)
    body = await parse(request, PauseBody, optional=True)
    return ok(key_out(await service_of(request).groups.pause(queue, key, body.durationMs)))


@api.endpoint("POST", KEY_ROUTE + "/resume", CHANGES, "Let a paused key's jobs start again.",
              ok=GroupKeyOut, query=(QUEUE,), errors=(503,))
async def resume_key(request: web.Request) -> web.Response:
    queue, key = queue_of(request), _key(request)
    return ok(key_out(await service_of(request).groups.resume(queue, key)))
