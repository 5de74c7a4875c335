"""Routes a standby follows the database's copy by (replicate_to): the folder's
generations and their files' sizes, and a file's bytes from an offset. The files only
grow, and a snapshot is listed once whole, so a follower fetches what it lacks."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from .common import ok, query_int, service_of
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


class ReplicaFileOut(Open):
    path: str
    size: Annotated[int, Field(ge=0)]


class GenerationOut(Open):
    name: str
    files: list[ReplicaFileOut]


class ReplicationOut(Open):
    replica: ReplicaOut
    generations: list[GenerationOut]


@api.endpoint("GET", "/queues/replication", APPLIANCE,
              "The database's copy (replicate_to): how it is doing, and each generation's files with their "
              "sizes now, for a standby to fetch what it lacks (404 when the appliance does not replicate).",
              ok=ReplicationOut, errors=(404,))
async def replication(request: web.Request) -> web.Response:
    return ok(await service_of(request).replication())


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
