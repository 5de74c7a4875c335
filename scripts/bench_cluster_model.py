"""A scale model of a cluster on one machine (scripts/bench --cluster-model).

Two cores cannot show three nodes beating one when the nodes, PostgreSQL and the
load share them: adding a node adds no CPU. Here each node runs in a CPU budget of
its own (a cgroup v1 ``cpu`` quota, ``--node-cores``, 0.25 of a core by default),
as a host of its own would, and the PostgreSQL server in a larger one
(``--postgres-cores``, 0.75); the load (the bench's HTTP load generator and the
leasing worker processes) runs outside both. Adding a node then adds CPU, so 1, 2
and 3 nodes say how the cluster scales until the database's budget is the limit.

Per configuration and scenario (bench_cluster.py: enqueue, leased workers, in-process
handlers): jobs/s, the CPU each part spent per 1,000 jobs, and how often each
budget ran out (the share of its quota periods throttled): a budget throttled most
of the time is what limits the rate. From PostgreSQL's CPU per job follows what one
PostgreSQL core buys.

Needs root and the cgroup v1 ``cpu`` controller at /sys/fs/cgroup/cpu."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Any

CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
NODES = (1, 2, 3)
WORKERS = 6  # leasing worker processes: a whole number per node for 1, 2 and 3 nodes


class Budgets:
    """CPU quotas under one parent group, removed (their processes moved back to
    the root group) at the end."""

    def __init__(self) -> None:
        if not (CGROUP / "cgroup.procs").exists() or not os.access(CGROUP, os.W_OK):
            raise SystemExit("the cluster model needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu")
        self.root = CGROUP / f"queueapp-model-{os.getpid()}"
        self.root.mkdir()
        self.groups: dict[str, Path] = {}

    def group(self, name: str, cores: float) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text(str(int(cores * PERIOD_US)))
        self.groups[name] = path
        return path

    def put(self, name: str, pid: int) -> None:
        """``pid`` (all its threads) into the group; processes it forks later follow."""
        (self.groups[name] / "cgroup.procs").write_text(str(pid))

    def throttling(self) -> dict[str, tuple[int, int]]:
        """(periods, throttled periods) of each group so far."""
        found = {}
        for name, path in self.groups.items():
            stat = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
            found[name] = (int(stat["nr_periods"]), int(stat["nr_throttled"]))
        return found

    def close(self) -> None:
        for path in list(self.groups.values()):
            for pid in (path / "cgroup.procs").read_text().split():
                try:
                    (CGROUP / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # gone meanwhile
            path.rmdir()
        self.root.rmdir()


def _throttled_share(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, float]:
    shares = {}
    for name, (periods, throttled) in after.items():
        spent = periods - before.get(name, (0, 0))[0]
        if spent:
            shares[name] = round((throttled - before.get(name, (0, 0))[1]) / spent, 2)
    return shares


def run(args: Any, bench: Any) -> dict[str, Any]:
    import bench_cluster

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pg import postgres_server

    budgets = Budgets()
    scenarios = {"handlers": bench_cluster._handlers, "workers": bench_cluster._workers,
                 "enqueue": bench_cluster._enqueue}
    found: dict[str, dict[int, list[dict[str, Any]]]] = {name: {n: [] for n in NODES} for name in scenarios}
    try:
        budgets.group("postgres", args.postgres_cores)
        for index in range(max(NODES)):
            budgets.group(f"node{index + 1}", args.node_cores)
        with postgres_server() as server:
            postmaster, backends = bench_cluster.server_processes(server.data)
            for pid in (postmaster, *backends):
                budgets.put("postgres", pid)

            def place(index: int, pid: int) -> None:
                budgets.put(f"node{index + 1}", pid)

            for run_index in range(args.repeat):
                for name, measure in scenarios.items():
                    for count in NODES:
                        print(f"... model {name} with {count} node(s), run {run_index + 1}", file=sys.stderr,
                              flush=True)
                        extra = {"workers": WORKERS} if name == "workers" else {}
                        before = budgets.throttling()
                        figures = measure(bench, server, count, args, run_index, place=place, **extra)
                        shares = _throttled_share(before, budgets.throttling())
                        figures["throttled"] = {k: v for k, v in shares.items()
                                                if k == "postgres" or int(k.removeprefix("node")) <= count}
                        found[name][count].append(figures)
    finally:
        budgets.close()
    result: dict[str, Any] = {"node_cores": args.node_cores, "postgres_cores": args.postgres_cores}
    for name, by_count in found.items():
        medians = {}
        for count, runs in by_count.items():
            middle = sorted(runs, key=lambda r: r["jobs_per_s"])[len(runs) // 2]  # the median run, whole
            medians[f"{count}_nodes"] = {**middle, "jobs_per_s": round(statistics.median(r["jobs_per_s"]
                                                                                          for r in runs))}
        one = medians["1_nodes"]["jobs_per_s"]
        pg_cost = medians[f"{max(NODES)}_nodes"].get("postgres_cpu_per_1000_jobs_s")
        result[name] = {**medians,
                        "scaling": {f"{n}_nodes": round(medians[f"{n}_nodes"]["jobs_per_s"] / one, 2) for n in NODES},
                        "jobs_per_postgres_core_s": round(1000 / pg_cost) if pg_cost else None}
    return {"what": f"scale model: each node in {args.node_cores} core, PostgreSQL in {args.postgres_cores} core"
                    " (cgroup CPU quotas), the load outside; 1, 2 and 3 nodes", **result}
