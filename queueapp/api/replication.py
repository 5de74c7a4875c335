"""Routes a standby follows the database's copy by (replicate_to): the folder's
generations and their files' sizes, and a file's bytes from an offset. The files only
grow, and a snapshot is listed once whole, so a follower fetches what it lacks."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import Field

from ..clock import to_iso
from ..errors import ValidationFailed
from ..options import WHOLE, Strict
from .common import config_of, ok, parse, query_int, service_of
from .models import Open, ReplicaOut
from .rules import APPLIANCE
from .spec import Api, Query, int_query

api = Api("replication")

GENERATION = Query("generation", "A generation's name, as GET /queues/replication lists it.",
                   {"type": "string", "pattern": r"^[0-9]{16}-[0-9a-f]{6}$"}, required=True)
PATH = Query("path", "The file: snapshot.db, manifest.json, commits or wal/NNNNNNNN.wal.",
             {"type": "string", "pattern": r"^(snapshot\.db|manifest\.json|commits|wal/[0-9]{8}\.wal)$"},
             required=True)
MAX_OFFSET = 2**53
_GENERATION = re.compile(r"[0-9]{16}-[0-9a-f]{6}")


class ReplicaFileOut(Open):
    path: str
    size: Annotated[int, Field(ge=0)]


class GenerationOut(Open):
    name: str
    files: list[ReplicaFileOut]


class StandbyOut(Open):
    name: str
    # where its copy stands: a generation, and the bytes of its commit lines it holds
    generation: str
    commitsBytes: int
    seenAt: str | None


class ReplicationOut(Open):
    replica: ReplicaOut
    # how many standbys must hold a change before it is answered (sync_standbys)
    syncStandbys: int
    # since when changes are answered without them (standby_lost = degrade), or null
    degradedSince: str | None
    standbys: list[StandbyOut]
    generations: list[GenerationOut]


class StandbyBody(Strict):
    # who it is (default: its address)
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x20-\x7e]+$")]
    generation: Annotated[str, Field(pattern=r"^[0-9]{16}-[0-9a-f]{6}$")]
    commitsBytes: Annotated[int, Field(ge=0, le=2**53), WHOLE]


AFTER = Query("after", "A standby's position, <generation>:<bytes of its commit lines>: with waitMs, the "
              "answer waits until the copy has moved on from it.",
              {"type": "string", "pattern": r"^[0-9]{16}-[0-9a-f]{6}:[0-9]{1,15}$"})


@api.endpoint("GET", "/queues/replication", APPLIANCE,
              "The database's copy (replicate_to): how it is doing, the standbys that follow it, and each "
              "generation's files with their sizes now, for a standby to fetch what it lacks (404 when the "
              "appliance does not replicate).",
              ok=ReplicationOut, errors=(404,),
              query=(AFTER, int_query("waitMs", "With after: how long to wait for the copy to move on (a long "
                                                "poll; at most long_poll_max_ms).", 0, 30_000)))
async def replication(request: web.Request) -> web.Response:
    wait_ms = min(query_int(request, "waitMs", 0, 0, 30_000), config_of(request).long_poll_max_ms)
    after = request.query.get("after")
    position = None
    if after is not None:
        generation, _, size = after.rpartition(":")
        if not (_GENERATION.fullmatch(generation) and size.isdigit() and len(size) <= 15):
            message = "after is <generation>:<bytes>, as a standby holds them"
            raise ValidationFailed(message, [{"field": "after", "message": message}])
        position = (generation, int(size))
    return ok(await service_of(request).replication(position, wait_ms))


@api.endpoint("POST", "/queues/replication/standby", APPLIANCE,
              "A standby says where its copy stands, on its disk: the changes sync_standbys waits for are "
              "answered once enough standbys hold them.", body=StandbyBody, ok=StandbyOut, errors=(404,))
async def standby_holds(request: web.Request) -> web.Response:
    body = await parse(request, StandbyBody)
    service = service_of(request)
    service.standby_holds(body.name, body.generation, body.commitsBytes)
    return ok({"name": body.name, "generation": body.generation, "commitsBytes": body.commitsBytes,
               "seenAt": to_iso(service.clock.now_ms())})


@api.endpoint("GET", "/queues/replication/file", APPLIANCE,
              "A file of the copy from an offset: at most 4 MiB of it (fewer at its end).",
              ok=None, content_type="application/octet-stream",
              query=(GENERATION, PATH, int_query("offset", "Bytes to skip (default 0).", 0, MAX_OFFSET)),
              errors=(404,))
async def replica_file(request: web.Request) -> web.Response:
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    generation, path = request.query.get("generation", ""), request.query.get("path", "")
    data = await service_of(request).replica_bytes(generation, path, offset)
    return web.Response(body=data, content_type="application/octet-stream")
