"""One in-process run for scripts/bench's scenarios that vary the appliance around it
(bench_tracing.py, bench_replication.py): TOTAL no-op jobs enqueued first, then run
by handlers at concurrency 256 on a database with durability full; prints
{"jobs_per_s": ...}.

    python scripts/inprocess_run.py DB TOTAL [--traceparent TP] [--otel-endpoint URL]
                                             [--replicate-to DIR --replication MODE]"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from queueapp import HandlerRegistry, QueueService, SqliteStore
from queueapp.cli import tune_interpreter
from queueapp.model import NewJob


async def main(args: argparse.Namespace) -> None:
    tracing = {}
    if args.otel_endpoint:
        from queueapp.telemetry_otel import OtelTracing

        tracing = {"tracing": OtelTracing(args.otel_endpoint + "/v1/traces")}
    registry, done, count = HandlerRegistry(), asyncio.Event(), 0

    async def noop(job: object) -> None:
        nonlocal count
        count += 1
        if count == args.total:
            done.set()

    registry.register("noop", noop)
    store = SqliteStore(args.db, "full", replicate_to=args.replicate_to, replication=args.replication)
    service = QueueService(store, registry=registry, concurrency=256, **tracing)
    await service.start()
    await service.pause()
    options = {"telemetry": {"traceparent": args.traceparent}} if args.traceparent else {}
    for lo in range(0, args.total, 10_000):
        now = service.clock.now_ms()
        await service.dispatcher.add([NewJob("default", "noop", {}, 3, 1, now, options)
                                      for _ in range(lo, min(lo + 10_000, args.total))])
    started = time.perf_counter()
    await service.resume()
    await done.wait()
    print(json.dumps({"jobs_per_s": args.total / (time.perf_counter() - started)}))
    await service.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("total", type=int)
    parser.add_argument("--traceparent")
    parser.add_argument("--otel-endpoint")
    parser.add_argument("--replicate-to")
    parser.add_argument("--replication", default="async")
    tune_interpreter()  # as queueapp serve does
    try:
        import uvloop

        uvloop.run(main(parser.parse_args()))
    except ImportError:
        asyncio.run(main(parser.parse_args()))
