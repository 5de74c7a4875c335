"""The TypeScript client and worker against BullMQ, for ``scripts/bench --only
typescript``: in the same run, on the same machine,

- one Node process making 64 concurrent ``QueueClient.add()`` calls, against BullMQ's
  ``queue.add()`` from 64 concurrent callers;
- one Node process's ``Worker`` at concurrency 50 on no-op jobs, against BullMQ's
  ``Worker`` at concurrency 50;

BullMQ on a local Redis with ``appendfsync always`` (an acknowledged job on disk, as
with queueapp's default ``durability = full``). Medians of ``--repeat`` runs each.
The packages are built first when they are not (scripts/build-typescript); BullMQ is
npm-installed into the run's throwaway folder.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
SCRIPT = Path(__file__).parent / "bench_typescript.js"
N = 20_000


def _node(*args: str) -> dict[str, Any]:
    out = subprocess.run(["node", *args], capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(work: Path, args: Any, bench: Any) -> dict[str, Any]:
    import bench_peers

    if not (ROOT / "clients" / "typescript" / "client" / "dist" / "index.js").exists():
        subprocess.run([str(ROOT / "scripts" / "build-typescript")], check=True, capture_output=True, timeout=900)
    mine: dict[str, list[int]] = {"add": [], "worker": []}
    for i in range(args.repeat):
        for mode in mine:
            server = bench.Server(work / f"ts-{mode}-{i}.db", "--durability", "full")
            try:
                mine[mode].append(_node(str(SCRIPT), mode, server.url, "", str(N))["jobs_per_s"])
            finally:
                server.stop()
    theirs: dict[str, list[int]] = {"add": [], "worker": []}
    folder = work / "bullmq"
    folder.mkdir(exist_ok=True)
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "bullmq", "ioredis"], cwd=str(folder),
                   check=True, capture_output=True, timeout=600)
    (folder / "bench.js").write_text(bench_peers.BULLMQ)
    version = json.loads((folder / "node_modules" / "bullmq" / "package.json").read_text())["version"]
    for _ in range(args.repeat):
        redis = bench_peers.Redis(work)
        try:
            out = _node(str(folder / "bench.js"), str(redis.port), str(N))
        finally:
            redis.stop()
        theirs["add"].append(out["enqueue_per_s"])
        theirs["worker"].append(out["process_per_s"])
    median = {k: int(statistics.median(v)) for k, v in mine.items()}
    peer = {k: int(statistics.median(v)) for k, v in theirs.items()}
    return {
        "what": f"@queueapp/client from one Node process ({N:,} jobs, durability full) vs BullMQ {version}"
                " on Redis with appendfsync always, same run",
        "add_64_callers_jobs_per_s": median["add"], "bullmq_add_64_callers_jobs_per_s": peer["add"],
        "add_ratio_to_bullmq": round(median["add"] / peer["add"], 2),
        "worker_c50_jobs_per_s": median["worker"], "bullmq_worker_c50_jobs_per_s": peer["worker"],
        "worker_ratio_to_bullmq": round(median["worker"] / peer["worker"], 2),
        "runs": {"mine": mine, "bullmq": theirs},
    }
