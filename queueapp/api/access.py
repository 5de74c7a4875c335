"""Routes for API keys: an admin of every queue makes one for a service (its secret
is answered once), lists them, rotates a secret and revokes a key. A key takes effect,
and stops, at once (api/auth.py, api/rules.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from ..access import EVERY_QUEUE, ID_CHARS, KEY_NAME, MAX_GRACE_S, MAX_KEY_QUEUES, MAX_NOTE_CHARS, ApiKey, shown
from ..clock import from_datetime, to_iso
from ..errors import Conflict, NotFound
from ..options import QUEUE_NAME, WHOLE, Strict
from ..service_keys import NewKey
from .auth import principal_of
from .common import config_of, ok, parse, service_of
from .models import DueTime, Open
from .rules import APPLIANCE
from .spec import Api

api = Api("access")

Role = Literal["enqueue", "work", "read", "admin"]
QueueOrEvery = Annotated[str, Field(pattern=rf"{QUEUE_NAME.pattern}|^\*$", max_length=64)]


class KeyBody(Strict):
    name: Annotated[str, Field(pattern=KEY_NAME)]
    # enqueue: add jobs; work: lease and report on jobs; read: every read; admin: everything
    roles: Annotated[list[Role], Field(min_length=1, max_length=4)]
    # the queues it may touch, or ["*"] for every queue (those made later too)
    queues: Annotated[list[QueueOrEvery], Field(min_length=1, max_length=MAX_KEY_QUEUES)]
    # when it stops working (none: never)
    expiresAt: DueTime | None = None
    note: Annotated[str, Field(max_length=MAX_NOTE_CHARS)] = ""


class RotateBody(Strict):
    # how long the secret before stays good, for services to take the new one
    graceSeconds: Annotated[int, Field(ge=0, le=MAX_GRACE_S), WHOLE] = 0


class KeyOut(Open):
    id: str
    name: str
    # how the secret begins: a leaked secret says which key it is
    prefix: str
    roles: list[Role]
    queues: list[str]
    note: str
    state: Literal["active", "expired", "revoked"]
    createdAt: str
    createdBy: str
    expiresAt: str | None
    revokedAt: str | None
    rotatedAt: str | None
    # while a rotation's grace lasts, the secret before it works until then
    previousSecretUntil: str | None


class NewKeyOut(KeyOut):
    # shown once: the appliance keeps only its hash
    secret: str


class KeysOut(Open):
    keys: list[KeyOut]


def _key_out(key: ApiKey, now: int) -> dict[str, object]:
    grace = key.previous_until if key.previous_until is not None and key.previous_until > now else None
    return {"id": key.id, "name": key.name, "prefix": shown(key.id), "roles": list(key.roles),
            "queues": [EVERY_QUEUE] if key.queues is None else list(key.queues), "note": key.note,
            "state": key.state(now), "createdAt": to_iso(key.created_at), "createdBy": key.created_by,
            "expiresAt": to_iso(key.expires_at), "revokedAt": to_iso(key.revoked_at),
            "rotatedAt": to_iso(key.rotated_at), "previousSecretUntil": to_iso(grace)}


def _new_key_out(request: web.Request, made: NewKey) -> dict[str, object]:
    return {**_key_out(made.key, service_of(request).clock.now_ms()), "secret": made.secret}


def _key_id(request: web.Request) -> str:
    """The route's key id: 12 letters and digits (any other is no key of ours)."""
    key_id = request.match_info["key_id"]
    if len(key_id) != ID_CHARS:
        raise NotFound(f"no API key with id {key_id[:20]}")
    return key_id


def _with_the_key(operation: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": {"key_id": "$response.body#/id"},
            "description": f"{operation} the key just made"}


@api.endpoint("POST", "/queues/keys", APPLIANCE,
              "Make an API key for a service: its roles, the queues it may touch, an expiry. The secret is in this "
              "answer only.", body=KeyBody, ok=NewKeyOut, status=201, errors=(409, 503),
              links={name.title(): _with_the_key(f"{name}_key" if name != "get" else "get_key_info")
                     for name in ("get", "rotate", "revoke")})
async def create_key(request: web.Request) -> web.Response:
    body = await parse(request, KeyBody)
    if not config_of(request).token:
        raise Conflict("this appliance has no token: every request may do anything, and a key would limit nothing."
                       " Set token first.")
    queues = None if EVERY_QUEUE in body.queues else list(body.queues)
    made = await service_of(request).keys.create(
        body.name, list(body.roles), queues, None if body.expiresAt is None else from_datetime(body.expiresAt),
        body.note, principal_of(request).name)
    return ok(_new_key_out(request, made), 201)


@api.endpoint("GET", "/queues/keys", APPLIANCE, "Every API key, revoked and expired ones too, oldest first "
              "(never a secret).", ok=KeysOut)
async def list_keys(request: web.Request) -> web.Response:
    service = service_of(request)
    now = service.clock.now_ms()
    return ok({"keys": [_key_out(k, now) for k in service.keys.all()]})


KEY_ROUTE = "/queues/keys/{key_id:[A-Za-z0-9]+}"


@api.endpoint("GET", KEY_ROUTE, APPLIANCE, "One API key.", ok=KeyOut, errors=(404,))
async def get_key_info(request: web.Request) -> web.Response:
    service = service_of(request)
    return ok(_key_out(service.keys.get(_key_id(request)), service.clock.now_ms()))


@api.endpoint("DELETE", KEY_ROUTE, APPLIANCE,
              "Revoke an API key: its next request is refused (on every node of a cluster within a second).",
              ok=KeyOut, errors=(404, 503))
async def revoke_key(request: web.Request) -> web.Response:
    service = service_of(request)
    key = await service.keys.revoke(_key_id(request), principal_of(request).name)
    return ok(_key_out(key, service.clock.now_ms()))


@api.endpoint("POST", KEY_ROUTE + "/rotate", APPLIANCE,
              "A new secret for the key (in this answer only); the one before stops now, or after graceSeconds.",
              body=RotateBody, ok=NewKeyOut, errors=(404, 503), body_required=False)
async def rotate_key(request: web.Request) -> web.Response:
    body = await parse(request, RotateBody, optional=True)
    made = await service_of(request).keys.rotate(_key_id(request), body.graceSeconds, principal_of(request).name)
    return ok(_new_key_out(request, made))
