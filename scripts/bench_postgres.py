"""The postgres scenario of scripts/bench: the same appliance on PostgreSQL and on
SQLite, in the same run, on the same machine: HTTP enqueue (64 connections), bulk
enqueue (1,000 jobs a request) and processing by 4 leasing worker processes; then
1, 2 and 3 nodes of a cluster on one database (bench_cluster.py).

The PostgreSQL server is started for the run as the tests start theirs
(tests/pg.py: initdb in a temporary folder, fsync on, synchronous_commit on), on
the same 2 cores as the appliance and the load: what limits each is said in the
figures' "limits"."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(work: Path, args: Any, bench: Any) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from pg import postgres_server

    stores: dict[str, dict[str, Any]] = {}
    default = bench.DATABASE
    with postgres_server() as server:
        made = iter(range(10**6))
        for store in ("sqlite", "postgres"):
            if store == "postgres":
                bench.DATABASE = lambda _work, _name: server.create_database(f"bench_{next(made)}")
            try:
                stores[store] = {
                    "enqueue_jobs_per_s": bench.enqueue_runs(work, args, f"{store}-enqueue")["jobs_per_s"],
                    "bulk_jobs_per_s": bench.bulk_runs(work, args, f"{store}-bulk", "ids")["jobs_per_s"],
                    "workers_jobs_per_s": bench.workers_runs(work, args, f"{store}-workers")["jobs_per_s"],
                }
            finally:
                bench.DATABASE = default
        import bench_cluster

        cluster = None if args.postgres_one_node else bench_cluster.run(args, bench, server)
    ratios = {key: round(stores["postgres"][key] / stores["sqlite"][key], 2) for key in stores["sqlite"]}
    return {"what": "one node on PostgreSQL (server on the same machine) beside SQLite, same run: enqueue,"
                    " bulk, 4 leasing workers; then 1, 2 and 3 cluster nodes on one database", **stores,
            "postgres_to_sqlite": ratios, "cluster": cluster}
