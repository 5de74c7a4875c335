"""run_handler: a job's timeout, and a handler's own TimeoutError, told apart."""

from __future__ import annotations

import asyncio

from queueapp.model import Job, JobState
from queueapp.workers.registry import JobContext, run_handler


def _context() -> JobContext:
    job = Job(1, "q", "n", JobState.ACTIVE, 3, {}, {}, 3, 1, 0, None, None, [], None, 0, 0, 0, None, "t")

    async def progress(value: object) -> None:
        return None

    return JobContext(job, progress)


async def test_a_handler_past_its_timeout_is_timed_out():
    async def slow(ctx: JobContext) -> None:
        await asyncio.Event().wait()

    outcome = await run_handler(slow, _context(), 20)
    assert outcome.error == "timed out after 20 ms"


async def test_a_handlers_own_timeout_error_is_an_ordinary_failure_with_or_without_a_timeout():
    async def gives_up(ctx: JobContext) -> None:
        raise TimeoutError("upstream took too long")

    for timeout_ms in (None, 60_000):
        outcome = await run_handler(gives_up, _context(), timeout_ms)
        assert outcome.error == "TimeoutError: upstream took too long", outcome


async def test_a_handler_without_a_timeout_returns_its_result():
    async def quick(ctx: JobContext) -> dict:
        return {"ok": True}

    assert (await run_handler(quick, _context(), None)).result == {"ok": True}
