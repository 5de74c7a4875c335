"""Streaming enqueue for any language: jobs as lines of JSON in one long-lived
request, answered by one line per job, in order, each written once its job is
committed.

A producer keeps the request open and writes a job whenever it has one; the lines
that arrive together are stored together (one transaction, the bulk path), so a
single connection carries what would take many requests, without waiting for one
answer before sending the next job. A line the appliance refuses is answered with
its error and the others go on; a store that cannot write answers every line of
its batch with that error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiohttp import web

from ..errors import QueueAppError, ValidationFailed
from ..jsonfast import dumps_bytes
from ..service import QueueService, added_ids
from ..telemetry import TraceContext
from .common import config_of, queue_of, service_of, trace_of, validated
from .errors import code_of
from .models import AddJobBody
from .rules import ADDS
from .spec import QUEUE, Api

api = Api("jobs")

NDJSON = "application/x-ndjson"
IN_FLIGHT = 4  # batches being stored at once; reading waits beyond that (backpressure)


@api.endpoint("POST", "/queues/jobs/stream", ADDS,
              "Add jobs as lines of JSON (each an AddJobBody) in one long-lived request; the answer "
              'streams one line per job, in order, after its commit: {"id": "42"}, or {"error": {...}} '
              "for a refused line (the others go on).",
              ok=None, status=200, query=(QUEUE,), errors=(429,), content_type=NDJSON,
              body_content=NDJSON)
async def stream_jobs(request: web.Request) -> web.StreamResponse:
    queue = queue_of(request)
    if not request.body_exists:
        message = "a body of jobs, one JSON object a line, is required"
        raise ValidationFailed(message, [{"field": None, "message": message}])
    service = service_of(request)
    longest = config_of(request).max_body_bytes  # a line is bounded like a body
    trace = trace_of(request)  # each batch stored is a send of the producer's trace
    response = web.StreamResponse(status=200, headers={"Content-Type": NDJSON})
    await response.prepare(request)
    pending: deque[asyncio.Task[list[bytes]]] = deque()

    async def answer_until(left: int) -> None:
        while len(pending) > left:
            await response.write(b"".join(await pending.popleft()))

    lines = Lines(longest)
    try:
        while chunk := await request.content.readany():
            batch = lines.feed(chunk)
            if any(line.strip() for line in batch):
                pending.append(asyncio.ensure_future(_store(service, queue, batch, longest, trace)))
            await answer_until(IN_FLIGHT)
        if (last := lines.rest).strip():
            pending.append(asyncio.ensure_future(_store(service, queue, [last], longest, trace)))
        await answer_until(0)
        await response.write_eof()
    except ConnectionError:
        # The producer left: what it sent is stored all the same (a job is committed
        # whether or not its answer arrives), then the middleware notes the leaving.
        await asyncio.gather(*pending, return_exceptions=True)
        raise
    return response


class Lines:
    """Splits the body into lines as it arrives. A line longer than ``longest`` is
    handed on as it stands (to be answered with its error) and the rest of it,
    until its newline, is dropped."""

    def __init__(self, longest: int) -> None:
        self.longest = longest
        self.rest = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skipping:
            end = chunk.find(b"\n")
            if end < 0:
                return []
            chunk, self._skipping = chunk[end + 1:], False
        *lines, self.rest = (self.rest + chunk).split(b"\n")
        if len(self.rest) > self.longest:
            lines.append(self.rest)
            self.rest, self._skipping = b"", True
        return lines


async def _store(service: QueueService, queue: str, lines: list[bytes], longest: int,
                 trace: TraceContext | None) -> list[bytes]:
    """The answer lines for ``lines`` (blank ones have none)."""
    answers: list[bytes | None] = []
    jobs, places = [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            body = _parse(line, longest)
            jobs.append(service.build_job(body.name, body.data, body.options, body.priorityFactors, queue))
            places.append(len(answers))
            answers.append(None)
        except QueueAppError as exc:
            answers.append(_error(exc))
    if jobs:
        try:
            added = await service.add_jobs(jobs, trace)
        except QueueAppError as exc:
            for place in places:
                answers[place] = _error(exc)
        else:
            for place, job_id in zip(places, added_ids(added), strict=True):
                answers[place] = b'{"id":"%d"}\n' % job_id
    return [a for a in answers if a is not None]


def _parse(line: bytes, longest: int) -> AddJobBody:
    if len(line) > longest:
        raise ValidationFailed(f"a line is longer than max_body_bytes ({longest})")
    return validated(line, AddJobBody.model_validate_json, what="line")


def _error(exc: QueueAppError) -> bytes:
    body: dict[str, Any] = {"error": {"code": code_of(exc)[1], "message": exc.message, "details": exc.details}}
    return dumps_bytes(body) + b"\n"
