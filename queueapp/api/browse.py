"""Routes for looking through a queue and acting on many jobs: search, actions,
failures grouped by message, the metrics history."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from ..clock import to_iso
from ..errors import ValidationFailed
from ..history import WINDOWS
from ..model import JobState
from ..options import Strict
from ..search import ORDERS, JobSearch, cursor_text, parse_cursor
from ..service_browse import MAX_ACTION, MAX_IDS, make_search
from .common import ok, parse, query_choice, query_int, query_name, queue_of, service_of
from .models import JobPageOut, Open
from .present import jobs_out
from .rules import CHANGES, READS
from .spec import JOB_NAME, QUEUE, Api, Query, int_query

api = Api("operator")

MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# Said as milliseconds; an ISO 8601 time (2026-11-28T09:00:00Z) is read too.
_TIME = {"type": "integer", "minimum": 0, "maximum": MAX_TIME_MS}
_STATES = tuple(s.value for s in JobState)
ERROR_GROUP = re.compile(r"[0-9a-f]{16}")
# A job id, or for a finished state's pages its finish time and id ("1795852800000.4711").
CURSOR = {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,15})?$"}
FILTERS = (
    QUEUE,
    Query("state", "Only jobs in this state.", {"type": "string", "enum": list(_STATES)}),
    Query("name", "Only jobs of this name.", JOB_NAME),
    Query("q", 'Search: a job id, a jobId key, data.field = VALUE, or data.field contains "text" '
               "(only white space: no search).",
          {"type": "string", "minLength": 1, "maxLength": 500}),
    Query("from", "Only jobs created at or after this time (ms since the epoch, or ISO 8601).", _TIME),
    Query("to", "Only jobs created at or before this time (ms since the epoch, or ISO 8601).", _TIME),
    Query("error", "Only jobs whose last error message starts with this text.",
          {"type": "string", "minLength": 1, "maxLength": 1000}),
    Query("errorGroup", "Only jobs whose last error is of this group (errorGroup of GET /queues/jobs/failed/groups).",
          {"type": "string", "pattern": "^[0-9a-f]{16}$"}),
)


def query_time(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        if text.isascii() and text.isdigit() and len(text) <= 15:
            value = int(text)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            value = int(parsed.timestamp() * 1000)
    except (ValueError, OverflowError):
        value = -1
    if not 0 <= value <= MAX_TIME_MS:
        message = f"{name} must be an ISO 8601 time or milliseconds since the epoch"
        raise ValidationFailed(message, [{"field": name, "message": message}])
    return value


def search_of(request: web.Request, *, cursor: tuple[int, ...] | None = None, limit: int = 100,
              order: str = "asc") -> JobSearch:
    """The filters every search and action takes (FILTERS)."""
    error = request.query.get("error")
    if error is not None and not 1 <= len(error) <= 1000:
        message = "error must be 1 to 1000 characters (the start of a longer message)"
        raise ValidationFailed(message, [{"field": "error", "message": message}])
    group = request.query.get("errorGroup")
    if group is not None and not ERROR_GROUP.fullmatch(group):
        message = "errorGroup is 16 hex digits, as GET /queues/jobs/failed/groups answers it"
        raise ValidationFailed(message, [{"field": "errorGroup", "message": message}])
    return make_search(
        queue_of(request), state=query_choice(request, "state", _STATES), name=query_name(request),
        q=request.query.get("q"), created_from=query_time(request, "from"), created_to=query_time(request, "to"),
        order=order, cursor=cursor, limit=limit, error=error, error_group=group,
    )


@api.endpoint("GET", "/queues/jobs", READS,
              "A page of jobs in id order (order=desc: newest first); pass nextCursor as cursor for the next. "
              "A data condition reads at most 50,000 rows a page and says how many in scanned.",
              ok=JobPageOut, query=(*FILTERS,
                                    Query("order", "asc (default): oldest first; desc: newest first.",
                                          {"type": "string", "enum": list(ORDERS)}),
                                    int_query("limit", "Page size (default 100).", 1, 1000),
                                    Query("cursor", "nextCursor of the previous page.", CURSOR)))
async def list_jobs(request: web.Request) -> web.Response:
    order = query_choice(request, "order", ORDERS) or "asc"
    search = search_of(request, order=order, limit=query_int(request, "limit", 100, 1, 1000),
                       cursor=cursor_of(request.query.get("cursor")))
    page = await service_of(request).browse.search(search)
    body: dict[str, Any] = {**jobs_out(page.jobs), "nextCursor": cursor_text(page.next_cursor)}
    if page.scanned is not None:
        body["scanned"] = page.scanned
    return ok(body)


def cursor_of(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return parse_cursor(text)
    except ValueError as exc:
        raise ValidationFailed(str(exc), [{"field": "cursor", "message": str(exc)}]) from None


class ActionBody(Strict):
    action: Literal["retry", "cancel", "promote", "delete"]
    ids: list[Annotated[str, Field(pattern=r"^[0-9]{1,15}$")]] | None = Field(
        None, max_length=MAX_IDS, description="These jobs (ids); else the filters of the query string choose them.")
    dryRun: bool = Field(False, description="Change nothing; answer how many jobs would change, over every call.")
    cursor: str | None = Field(None, pattern=CURSOR["pattern"],
                               description="nextCursor of the previous call, to go on.")


class ActionOut(Open):
    action: str
    changed: int
    ids: list[str]
    matched: int | None
    nextCursor: str | None


@api.endpoint("POST", "/queues/jobs/actions", CHANGES,
              f"Retry, cancel, promote or delete jobs in one transaction: the listed ids, or up to {MAX_ACTION:,} "
              "jobs the filters find (nextCursor: call again with it for more). Only jobs in states the action "
              "applies to change; an active job is never touched. dryRun counts first.",
              body=ActionBody, ok=ActionOut, query=FILTERS, errors=(503,))
async def act(request: web.Request) -> web.Response:
    search = search_of(request)
    body = await parse(request, ActionBody)
    ids = None if body.ids is None else [int(i) for i in body.ids]
    after = cursor_of(body.cursor)
    outcome = await service_of(request).browse.act(body.action, search, ids, dry_run=body.dryRun, after=after)
    return ok({"action": outcome.action, "changed": outcome.changed, "ids": [str(i) for i in outcome.ids],
               "matched": outcome.matched, "nextCursor": cursor_text(outcome.next_cursor)})


class FailureGroupOut(Open):
    # The group's name (filter jobs and actions with errorGroup); null for jobs that
    # failed before groups were kept, grouped by their exact message.
    errorGroup: str | None
    # The newest message of the group, and its fingerprint: the message with ids,
    # numbers, addresses and tokens folded.
    error: str | None
    fingerprint: str | None
    count: int
    firstSeen: str | None
    lastSeen: str | None
    names: list[str]


class FailureGroupsOut(Open):
    groups: list[FailureGroupOut]


@api.endpoint("GET", "/queues/jobs/failed/groups", READS,
              "Failed jobs grouped by their error's fingerprint (ids, numbers, tokens folded), the commonest first.",
              ok=FailureGroupsOut, query=(QUEUE, int_query("limit", "How many groups (default 50).", 1, 500)))
async def failure_groups(request: web.Request) -> web.Response:
    groups = await service_of(request).browse.failure_groups(queue_of(request), query_int(request, "limit", 50, 1, 500))
    return ok({"groups": [{**g, "firstSeen": to_iso(g["firstSeen"]), "lastSeen": to_iso(g["lastSeen"])}
                          for g in groups]})


class HistoryPoint(Open):
    start: str
    enqueued: int
    completed: int
    failed: int
    meanMs: float | None
    p95Ms: float | None


class HistoryOut(Open):
    queue: str
    window: str
    stepMs: int
    points: list[HistoryPoint]


@api.endpoint("GET", "/queues/metrics/history", READS,
              "Per-queue counts over 1h (by minute), 24h (by 10 minutes) or 7d (by hour): enqueued, completed, "
              "failed, mean and p95 processing ms. Kept in the database; the current minute from memory.",
              ok=HistoryOut, query=(QUEUE, Query("window", "1h (default), 24h or 7d.",
                                                 {"type": "string", "enum": list(WINDOWS)})))
async def history(request: web.Request) -> web.Response:
    queue = queue_of(request)
    window = query_choice(request, "window", tuple(WINDOWS)) or "1h"
    points = await service_of(request).browse.chart(queue, window)
    return ok({"queue": queue, "window": window, "stepMs": WINDOWS[window][1],
               "points": [{**p, "start": to_iso(p["start"])} for p in points]})


class RunningJobOut(Open):
    id: str
    name: str
    startedAt: str | None
    heartbeatAt: str | None
    leaseExpiresAt: str | None
    inProcess: bool
    stuck: bool
    node: str | None
    # who runs it: the name a worker leased it under (its address when it gave
    # none), or "appliance" for the appliance's own handlers
    worker: str | None


class RunningOut(Open):
    jobs: list[RunningJobOut]


@api.endpoint("GET", "/queues/jobs/running", READS,
              "Active jobs from the dispatcher's memory, oldest first: heartbeat, lease expiry (null: runs in "
              "the appliance), stuck or not, and in a cluster the node that claimed it.", ok=RunningOut,
              query=(QUEUE,))
async def running(request: web.Request) -> web.Response:
    found = service_of(request).running_jobs(queue_of(request))
    return ok({"jobs": [{"id": str(a.id), "name": a.name, "startedAt": to_iso(a.started_at),
                         "heartbeatAt": to_iso(a.heartbeat_at), "leaseExpiresAt": to_iso(a.lease_expires_at),
                         "inProcess": a.in_process, "stuck": stuck, "node": a.node, "worker": a.worker}
                        for a, stuck in found]})
