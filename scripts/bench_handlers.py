"""The no-op handler the cluster bench's nodes load (--handlers bench_handlers)."""

from queueapp import registry


@registry.handler("noop")
async def noop(job):
    return None
