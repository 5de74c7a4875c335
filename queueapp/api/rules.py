"""What each route needs of its caller: a role, and the right to the queues it
touches. Every route declares its ``Rule`` where it is defined (spec.py refuses one
without); this middleware checks it for every request, after auth says who it is.

Roles: ``enqueue`` adds jobs; ``work`` is the worker protocol (lease, heartbeat,
progress, log, complete, fail, release); ``read`` is every read; ``admin`` is all of
them and every other change. The token is an admin of every queue, the read token
a reader of every queue.

Queues: a key limited to some queues may only name those (``queue``), and a job it
names by id must be in one of them: a job of another queue answers 404, as if there
were none. What spans every queue (the cluster's nodes, /metrics, the self-audit, the
keys) needs a key of every queue; the list of queues answers only the key's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..access import ADMIN, ENQUEUE, READ, WORK, Principal
from ..enqueue import DEFAULT_QUEUE
from ..errors import NotFound
from .auth import forbidden, principal_of
from .common import job_id_of, service_of, validated
from .models import CompleteManyBody

ANYONE = "anyone"  # any caller auth let in
PUBLIC = "public"  # no credentials needed (liveness)

# Which queues a route touches:
QUEUE = "queue"  # the `queue` parameter's (default: default)
QUEUE_OR_EVERY = "queue or every"  # the `queue` parameter's; every queue without it
JOB = "job"  # the queue of the job of the path's id
JOBS = "jobs"  # the queues of the jobs the body names by id
EVERY = "every"  # every queue: a key of every queue only
OWN = "own"  # answers only what the caller's queues hold
NONE = "none"  # no queue's


@dataclass(frozen=True, slots=True)
class Rule:
    role: str  # ENQUEUE, WORK, READ, ADMIN, ANYONE or PUBLIC
    queues: str = QUEUE

    def as_openapi(self) -> dict[str, str]:
        return {"role": self.role, "queues": self.queues}


# The rules most routes take.
ADDS = Rule(ENQUEUE)
WORKS = Rule(WORK, JOB)
READS = Rule(READ)
READS_JOB = Rule(READ, JOB)
CHANGES = Rule(ADMIN)
CHANGES_JOB = Rule(ADMIN, JOB)
APPLIANCE = Rule(ADMIN, EVERY)  # a change to the appliance itself (its keys)
UNGUARDED = Rule(PUBLIC, NONE)

RULES = web.AppKey("rules", dict)  # handler -> Rule, for every route of the API


def may_touch(request: web.Request, queue: str) -> bool:
    return principal_of(request).may_touch(queue)


def rules_middleware() -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        rule: Rule | None = request.app[RULES].get(request.match_info.handler)
        if rule is None or rule.role == PUBLIC:  # the dashboard's own pages, or no route at all
            return await handler(request)
        who = principal_of(request)
        if rule.role != ANYONE and not who.may(rule.role):
            return forbidden(_lacks(who, rule.role))
        if not who.every_queue:
            refused = await _outside(request, who, rule.queues)
            if refused is not None:
                return forbidden(refused)
        return await handler(request)

    return check


def _lacks(who: Principal, role: str) -> str:
    if who.roles == frozenset({READ}) and who.key_id is None:
        return "the read-only token may look but not change anything"
    return f"{who.name} may not {_DOING[role]}: it has the role{'s' * (len(who.roles) != 1)}" \
           f" {', '.join(sorted(who.roles)) or 'of nobody'}"


_DOING = {ENQUEUE: "add jobs (role enqueue)", WORK: "work jobs (role work)", READ: "read (role read)",
          ADMIN: "change this (role admin)"}


async def _outside(request: web.Request, who: Principal, queues: str) -> str | None:
    """Why a caller limited to some queues may not make this request (None: it may).
    A job outside its queues raises NotFound, as a missing one does."""
    if queues == QUEUE or (queues == QUEUE_OR_EVERY and "queue" in request.query):
        queue = request.query.get("queue", DEFAULT_QUEUE)
        return None if who.may_touch(queue) else f"{who.name} may not touch queue {queue!r}"
    if queues in (EVERY, QUEUE_OR_EVERY):
        return f"{who.name} is limited to some queues; this spans every queue"
    if queues == JOB:
        await _job_in_reach(request, who, job_id_of(request))
    elif queues == JOBS:
        body = validated(await request.read(), CompleteManyBody.model_validate_json)
        for item in body.jobs:
            await _job_in_reach(request, who, int(item.id))
    return None


async def _job_in_reach(request: web.Request, who: Principal, job_id: int) -> None:
    queue = await service_of(request).queue_of_job(job_id)
    if queue is not None and not who.may_touch(queue):
        raise NotFound(f"no job with id {job_id}")
