"""The audit trail: every operator change that succeeded, whoever asked for it and
however (the dashboard, the CLI, the API), kept with who (``admin`` or ``read`` for
the tokens, ``key:<name>`` for an API key), how, from where, in which queue, what, and how many jobs it changed; and
``GET /queues/audit`` to read it.

Recorded by a middleware after the change is committed and answered with 2xx, so
that no route has to remember to: a route is audited by being named in ``AUDITED``.
A failure to record is logged and does not undo or fail the change. Producers' and
workers' traffic (enqueue, lease, complete...) is not an operator's and is not kept.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from ..clock import to_iso
from ..service import AuditEntry
from .auth import SESSION_COOKIE, principal_of
from .common import ok, query_int, queue_of, service_of
from .models import Open
from .rules import QUEUE_OR_EVERY, READ, Rule
from .spec import QUEUE, Api, Query, int_query

log = logging.getLogger("queueapp.audit")
api = Api("operator")

# The routes (their handlers' names, the operationIds) whose success an operator's
# change is, and the word the trail keeps for each ("act" says its own action).
AUDITED = {
    "retry_job": "retry", "cancel_job": "cancel", "promote_job": "promote", "act": "act",
    "pause": "pause queue", "resume": "resume queue", "clean": "clean",
    "save_schedule": "save schedule", "delete_schedule": "delete schedule", "pause_schedule": "pause schedule",
    "resume_schedule": "resume schedule", "run_schedule": "run schedule",
    "set_policy": "set group policy", "drop_policy": "drop group policy", "set_key": "set group key",
    "forget_key": "forget group key", "pause_key": "pause group key", "resume_key": "resume group key",
    "create_key": "create API key", "revoke_key": "revoke API key", "rotate_key": "rotate API key",
}
_APPLIANCE_WIDE = frozenset({"create API key", "revoke API key", "rotate API key"})  # of no queue
CLI_AGENT = "queueapp-cli/"
MAX_ID = 10**15 - 1
MAX_DETAIL_CHARS = 2_000


@web.middleware
async def audit_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(request)
    name = getattr(request.match_info.handler, "__name__", "")
    if name in AUDITED and request.method not in ("GET", "HEAD") and 200 <= response.status < 300:
        try:
            await service_of(request).record_audit(await _entry(request, response, name))
        except Exception:  # the change is made and answered; the trail must not undo it
            log.exception("an operator change was not recorded in the audit trail",
                          extra={"event": "audit.failed", "route": name})
    return response


async def _entry(request: web.Request, response: web.StreamResponse, name: str) -> AuditEntry:
    answer = _json(getattr(response, "body", None))
    body = _json(await request.read())  # read by the route already: kept by aiohttp
    action = AUDITED[name]
    detail: dict[str, Any] = {}
    target = (request.match_info.get("id") or request.match_info.get("name") or request.match_info.get("key")
              or request.match_info.get("key_id"))
    changed = 1 if target else None
    if name == "act":
        action = str(body.get("action", "act"))
        ids = body.get("ids")
        filters = {k: v for k, v in request.query.items() if k != "queue"}
        target = f"{len(ids)} ids" if isinstance(ids, list) else _filter_text(filters)
        detail = {"ids": ids[:100]} if isinstance(ids, list) else {"filters": filters}
        if body.get("dryRun"):
            return _made(request, f"{action} (dry run)", target, answer.get("matched"), detail, answer)
        changed = answer.get("changed")
    elif name in ("clean", "delete_schedule"):
        changed = answer.get("removed")
        detail = {k: body[k] for k in ("grace", "status", "limit") if k in body}
    elif name in ("create_key", "revoke_key", "rotate_key"):
        target = f"{answer.get('name')} ({answer.get('id')})"
        detail = {k: answer[k] for k in ("roles", "queues", "expiresAt") if k in answer}
        if "graceSeconds" in body:
            detail["graceSeconds"] = body["graceSeconds"]
    elif name in ("save_schedule", "set_policy", "set_key", "pause_key"):
        detail = {k: v for k, v in body.items() if k not in ("data",)}
        target = target or body.get("name")
    return _made(request, action, target, changed, detail, answer)


def _made(request: web.Request, action: str, target: Any, changed: Any,
          detail: dict[str, Any], answer: dict[str, Any]) -> AuditEntry:
    text = json.dumps(detail, default=str)
    if len(text) > MAX_DETAIL_CHARS:
        detail = {"truncated": text[:MAX_DETAIL_CHARS]}
    return AuditEntry(
        at=service_of(request).clock.now_ms(), actor=principal_of(request).name, via=_via(request),
        address=request.remote, queue=None if action in _APPLIANCE_WIDE else (
            request.query.get("queue") or answer.get("queue") or "default"),
        action=action, target=None if target is None else str(target)[:200],
        changed=changed if isinstance(changed, int) and not isinstance(changed, bool) else None, detail=detail,
    )


def _via(request: web.Request) -> str:
    """How the change was asked for: the dashboard (a session, or its pages' header on
    an appliance without a token), the CLI (its User-Agent), else the API."""
    if "Authorization" not in request.headers and SESSION_COOKIE in request.cookies:
        return "dashboard"
    if request.headers.get("X-Queueapp-Client") == "dashboard":
        return "dashboard"
    return "cli" if request.headers.get("User-Agent", "").startswith(CLI_AGENT) else "api"


def _filter_text(filters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(filters.items())) or "every job of the queue"


def _json(raw: Any) -> dict[str, Any]:
    try:
        found = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


class AuditEntryOut(Open):
    id: str
    at: str
    # who: admin (the token), read (the read token), key:<name> (an API key), or
    # open when no token guards the appliance
    actor: str
    # dashboard, cli or api
    via: str
    address: str | None
    queue: str | None
    action: str
    target: str | None
    changed: int | None
    detail: dict[str, Any]


class AuditTrailOut(Open):
    entries: list[AuditEntryOut]
    # give as `before` for older entries; null on the last page
    nextBefore: str | None


@api.endpoint("GET", "/queues/audit", Rule(READ, QUEUE_OR_EVERY),
              "The audit trail: operator changes (retry, cancel, delete, promote, pause, resume, clean, schedules, "
              "groups) from the dashboard, the CLI or the API, newest first.",
              ok=AuditTrailOut,
              query=(Query("queue", "Only changes in this queue (default: every queue).", QUEUE.schema),
                     int_query("limit", "How many entries (default 100).", 1, 1000),
                     int_query("before", "nextBefore of the previous page.", 1, MAX_ID)))
async def audit_trail(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 1, 1000)
    before = query_int(request, "before", 0, 1, MAX_ID) if "before" in request.query else None
    queue = queue_of(request) if "queue" in request.query else None
    found = await service_of(request).audit_trail(queue, before, limit)
    entries = [{"id": str(e.id), "at": to_iso(e.at), "actor": e.actor, "via": e.via, "address": e.address,
                "queue": e.queue, "action": e.action, "target": e.target, "changed": e.changed, "detail": e.detail}
               for e in found]
    return ok({"entries": entries, "nextBefore": entries[-1]["id"] if len(entries) == limit else None})
