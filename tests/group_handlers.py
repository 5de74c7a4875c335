"""Handlers the group tests load into a real ``queueapp serve`` (--handlers): each
start and finish is appended to the file named by GROUP_LOG, as one line written
at once (O_APPEND), with the system-wide monotonic clock the test process shares."""

import asyncio
import json
import os
import time

from queueapp import registry


def _note(event: str, job) -> None:
    line = json.dumps({"event": event, "id": job.id, "group": job.group,
                       "at": time.monotonic_ns()}) + "\n"
    fd = os.open(os.environ["GROUP_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@registry.handler("local-step")
async def local_step(job):
    _note("start", job)
    await asyncio.sleep(job.data.get("ms", 3) / 1000)
    _note("finish", job)
    return {"ok": True}


@registry.handler("tick")
async def tick(job):
    return {"ok": True}
