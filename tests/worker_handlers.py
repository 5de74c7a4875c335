"""Handlers that `queueapp worker` loads in the tests (PYTHONPATH=tests)."""

import asyncio
import hashlib

from queueapp import registry


@registry.handler("crunch")
async def crunch(job):
    """Real work in slices: a chain of sha256 rounds, yielding to the loop between
    slices so that heartbeats and a stop request get through."""
    digest = job.data["seed"].encode()
    for _ in range(job.data.get("slices", 20)):
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        await asyncio.sleep(0)
    await job.progress(100)
    return {"digest": digest.hex()}


def expected_digest(seed: str, slices: int = 20) -> str:
    digest = seed.encode()
    for _ in range(slices * 2000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@registry.handler("traced-charge")
async def traced_charge(job):
    """Fails its first attempt, completes its second; each attempt makes a span of its
    own (the OpenTelemetry API's current span is the worker's, so it is its child)."""
    from opentelemetry import trace

    with trace.get_tracer("tests.handlers").start_as_current_span("charge card"):
        if job.attempt == 1:
            raise RuntimeError("card declined")
    return {"charged": True, "traceparent": job.traceparent}
