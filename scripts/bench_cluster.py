"""The cluster part of ``scripts/bench --postgres``: 1, 2 and 3 ``queueapp serve
--cluster on`` nodes on one PostgreSQL server, all on this machine, measured the
same way as one appliance (the load spread evenly over the nodes):

* enqueue: POST /queues/jobs, 64 connections in all;
* bulk: 1,000 jobs a request, 4 connections in all;
* workers: 100,000 stored jobs leased and completed by 4 worker processes;
* handlers: 50,000 stored no-op jobs run by the nodes' own handlers (concurrency
  64 per node).

Beside each rate, the CPU seconds the nodes and the PostgreSQL server spent per
1,000 jobs: on a machine where they do not share two cores, a rate is bounded by
cores / cost per job of whichever is busiest, which is what the figures predict."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HANDLERS = "bench_handlers"  # scripts/bench_handlers.py: the no-op handler
NODES = (1, 2, 3)


def _ticks(pid: int, children: bool) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return used / os.sysconf("SC_CLK_TCK")


def server_processes(data: Path) -> tuple[int, list[int]]:
    """A PostgreSQL server's postmaster and the processes it runs now (its backends)."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return postmaster, children


def server_cpu(data: Path) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster with the backends it
    reaped, and the backends alive now."""
    postmaster, children = server_processes(data)
    total = _ticks(postmaster, children=True)
    for pid in children:
        try:
            total += _ticks(pid, children=False)
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


class Cluster:
    """``count`` nodes on one fresh database; the CPU their work costs is measured
    from ``mark`` to ``spent``."""

    def __init__(self, bench: Any, server: Any, name: str, count: int, *args: str,
                 place: Callable[[int, int], None] | None = None) -> None:
        self.server = server
        self.db = server.create_database(name)
        subprocess.run([sys.executable, "-m", "queueapp", "migrate", "--db", self.db], check=True,
                       capture_output=True)
        self.nodes = [bench.Server(self.db, "--cluster", "on", *args) for _ in range(count)]
        for index, node in enumerate(self.nodes):  # into its CPU budget (bench_cluster_model.py)
            if place is not None:
                place(index, node.proc.pid)
        self.urls = [n.url for n in self.nodes]
        self.mark()

    def mark(self) -> None:
        self._nodes_at = sum(_ticks(n.proc.pid, False) for n in self.nodes)
        self._pg_at = server_cpu(self.server.data)

    def spent(self) -> dict[str, float]:
        return {"nodes_cpu_s": round(sum(_ticks(n.proc.pid, False) for n in self.nodes) - self._nodes_at, 2),
                "postgres_cpu_s": round(server_cpu(self.server.data) - self._pg_at, 2)}

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _spread(bench: Any, urls: list[str], path: str, connections: int, seconds: int, **body: Any) -> float:
    """One load generator per node at once, the connections shared out; requests/s in all."""
    found: list[float] = []
    share = max(1, connections // len(urls))

    def one(url: str) -> None:
        found.append(bench.load(url + path, connections=share, seconds=seconds, **body)["requests_per_s"])

    threads = [threading.Thread(target=one, args=(url,)) for url in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(found)


def _fill(bench: Any, url: str, total: int, name: str) -> None:
    import json
    import urllib.request

    for lo in range(0, total, 1000):
        body = {"jobs": [{"name": name, "data": {"i": k}} for k in range(lo, lo + 1000)]}
        req = urllib.request.Request(url + "/queues/jobs/bulk?return=ids", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()


def _completed(db: str) -> int:
    import asyncio

    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(db)
        try:
            return await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'completed'")
        finally:
            await conn.close()

    return asyncio.run(count())


def _per_thousand(spent: dict[str, float], jobs: float) -> dict[str, float]:
    return {f"{k.removesuffix('_s')}_per_1000_jobs_s": round(v * 1000 / jobs, 3) for k, v in spent.items() if jobs}


def _enqueue(bench: Any, server: Any, count: int, args: Any, run: int, **placed: Any) -> dict[str, Any]:
    cluster = Cluster(bench, server, f"cl_enqueue_{count}_{run}", count, **placed)
    try:
        rate = _spread(bench, cluster.urls, "/queues/jobs", 64, args.seconds, body=bench.JOB_BODY)
        return {"jobs_per_s": rate, **_per_thousand(cluster.spent(), rate * args.seconds)}
    finally:
        cluster.stop()


def _bulk(bench: Any, server: Any, count: int, args: Any, run: int, **placed: Any) -> dict[str, Any]:
    cluster = Cluster(bench, server, f"cl_bulk_{count}_{run}", count, **placed)
    body = {"jobs": [{"name": "resize", "data": {"i": i, "w": 640}} for i in range(1000)]}
    try:
        rate = _spread(bench, cluster.urls, "/queues/jobs/bulk?return=ids", 4, args.seconds, body=body) * 1000
        return {"jobs_per_s": rate, **_per_thousand(cluster.spent(), rate * args.seconds)}
    finally:
        cluster.stop()


def _workers(bench: Any, server: Any, count: int, args: Any, run: int, workers: int = 4,
             **placed: Any) -> dict[str, Any]:
    total = 100_000 if not args.quick else 20_000
    cluster = Cluster(bench, server, f"cl_workers_{count}_{run}", count, **placed)
    try:
        _fill(bench, cluster.urls[0], total, "w")
        cluster.mark()
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", bench.WORKER, cluster.urls[i % count], str(total)],
                                  stdout=subprocess.PIPE, text=True) for i in range(workers)]
        done = sum(int(p.communicate(timeout=900)[0]) for p in procs)
        rate = done / (time.perf_counter() - started)
        return {"jobs_per_s": rate, **_per_thousand(cluster.spent(), done)}
    finally:
        cluster.stop()


def _handlers(bench: Any, server: Any, count: int, args: Any, run: int, **placed: Any) -> dict[str, Any]:
    import urllib.request

    total = 50_000 if not args.quick else 10_000
    cluster = Cluster(bench, server, f"cl_handlers_{count}_{run}", count, "--handlers", HANDLERS,
                      "--concurrency", "64", **placed)
    try:
        server_pause = urllib.request.Request(cluster.urls[0] + "/queues/pause", method="POST")
        urllib.request.urlopen(server_pause, timeout=30).read()  # store them all first, then run them
        _fill(bench, cluster.urls[0], total, "noop")
        cluster.mark()
        started = time.perf_counter()
        urllib.request.urlopen(urllib.request.Request(cluster.urls[0] + "/queues/resume", method="POST"),
                               timeout=30).read()
        while _completed(cluster.db) < total:
            time.sleep(0.05)  # a child process's progress: nothing to wait on but the table
        rate = total / (time.perf_counter() - started)
        return {"jobs_per_s": rate, **_per_thousand(cluster.spent(), total)}
    finally:
        cluster.stop()


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: round(statistics.median(r[key] for r in runs), 3 if "per_1000" in key else None)
            for key in runs[0]}


def run(args: Any, bench: Any, server: Any) -> dict[str, Any]:
    """Every scenario with 1, 2 and 3 nodes, medians of ``args.repeat`` runs, nodes
    alternating within each repeat so that drift on a noisy machine hits all alike."""
    scenarios = {"enqueue": _enqueue, "bulk": _bulk, "workers": _workers, "handlers": _handlers}
    found: dict[str, dict[int, list[dict[str, Any]]]] = {name: {n: [] for n in NODES} for name in scenarios}
    for run_index in range(args.repeat):
        for name, measure in scenarios.items():
            for count in NODES:
                print(f"... cluster {name} with {count} node(s), run {run_index + 1}", file=sys.stderr, flush=True)
                found[name][count].append(measure(bench, server, count, args, run_index))
    result: dict[str, Any] = {}
    for name, by_count in found.items():
        medians = {f"{n}_nodes": _median(runs) for n, runs in by_count.items()}
        one = medians["1_nodes"]["jobs_per_s"]
        result[name] = {**medians, "scaling": {f"{n}_nodes": round(medians[f"{n}_nodes"]["jobs_per_s"] / one, 2)
                                               for n in NODES}}
    return result
