"""Handlers the cluster test loads into every real ``queueapp serve`` node
(--handlers): each run is appended to the file named by CLUSTER_LOG as one line
written at once (O_APPEND), with the job's id and name and the node's process id."""

import asyncio
import json
import os

from queueapp import registry


def _note(job) -> None:
    line = json.dumps({"id": int(job.id), "name": job.name, "pid": os.getpid(), "attempt": job.attempt}) + "\n"
    fd = os.open(os.environ["CLUSTER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@registry.handler("local")
async def local(job):
    _note(job)
    await asyncio.sleep(job.data.get("ms", 2) / 1000)
    return {"pid": os.getpid()}


@registry.handler("beat")
async def beat(job):
    _note(job)
    return {"pid": os.getpid()}
