"""Handlers the defect tests load into a real ``queueapp serve`` (--handlers)."""

import asyncio

from queueapp import registry


@registry.handler("slow")
async def slow(job):
    """Runs until cancelled or for data.seconds."""
    await asyncio.sleep(job.data.get("seconds", 3600))
    return {"slept": True}


@registry.handler("infinite-progress")
async def infinite_progress(job):
    await job.progress(float("inf"))
    return "unreachable"


@registry.handler("quick")
async def quick(job):
    return {"ok": True}
