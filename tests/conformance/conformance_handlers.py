"""The conformance suite's job types for the Python worker (``queueapp worker
--handlers conformance_handlers``). Each handler appends what it did to the file
named by CONFORMANCE_REPORT, one JSON object a line (see README.md)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from queueapp.workers import registry
from queueapp.workers.registry import JobContext, UnrecoverableError


def report(event: str, job: JobContext, **extra: Any) -> None:
    line = {"event": event, "id": job.id, "name": job.name, "attempt": job.attempt, "pid": os.getpid(),
            "at": int(time.time() * 1000), **extra}
    with open(os.environ["CONFORMANCE_REPORT"], "a") as out:  # one write per line: lines never interleave
        out.write(json.dumps(line) + "\n")


def reported(fn: Any) -> Any:
    async def run(job: JobContext) -> Any:
        report("start", job)
        try:
            result = await fn(job)
        except Exception as exc:
            report("fail", job, error=str(exc))
            raise
        report("done", job)
        return result

    run.__name__ = fn.__name__
    return run


@registry.handler("echo")
@reported
async def echo(job: JobContext) -> Any:
    return job.data


@registry.handler("fail-twice")
@reported
async def fail_twice(job: JobContext) -> Any:
    if job.attempt <= 2:
        raise RuntimeError(f"attempt {job.attempt} failed")
    return {"attempt": job.attempt}


@registry.handler("fail-final")
@reported
async def fail_final(job: JobContext) -> Any:
    raise UnrecoverableError("card declined")


@registry.handler("slow")
@reported
async def slow(job: JobContext) -> Any:
    await asyncio.sleep(job.data["ms"] / 1000)
    return {"slept": job.data["ms"]}


@registry.handler("progress")
@reported
async def progress(job: JobContext) -> Any:
    await job.progress(50)
    await asyncio.sleep(job.data["ms"] / 1000)
    return "done"


@registry.handler("log")
@reported
async def write_log(job: JobContext) -> Any:
    await job.log("first line", "second\nthird")
    await job.log("x" * 2500)
    return "logged"


def deep_inside() -> None:
    raise ValueError("deep failure")


@registry.handler("throws-with-stack")
@reported
async def throws_with_stack(job: JobContext) -> Any:
    deep_inside()
