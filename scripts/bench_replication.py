"""What copying every commit to a folder costs (scripts/bench --only replication):
HTTP enqueue (64 connections), HTTP bulk (1,000 jobs a request) and 50,000
in-process no-op jobs, with replication off, async and sync to a folder on the same
disk, medians of --repeat, each beside off in the same run."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("off", "async", "sync")
BULK = {"jobs": [{"name": "resize", "data": {"i": i, "w": 640}} for i in range(1000)]}

RUN = Path(__file__).resolve().parent / "inprocess_run.py"


def _args(work: Path, what: str, mode: str, i: int) -> tuple[str, ...]:
    if mode == "off":
        return ()
    return ("--replicate-to", str(work / f"replica-{what}-{mode}-{i}"), "--replication", mode)


def _inprocess(work: Path, mode: str, i: int, total: int) -> float:
    db = work / f"replication-inprocess-{mode}-{i}.db"
    extra = () if mode == "off" else ("--replicate-to", str(work / f"replica-inprocess-{mode}-{i}"),
                                      "--replication", mode)
    out = subprocess.run([sys.executable, str(RUN), str(db), str(total), *extra], capture_output=True, text=True,
                         timeout=900, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["jobs_per_s"]


def run(work: Path, args: Any, server_class: Any, load: Any, job_body: dict) -> dict:
    figures: dict[str, list[float]] = {f"{what}_{mode}": [] for what in ("enqueue", "bulk", "inprocess")
                                       for mode in MODES}
    total = 50_000 if not args.quick else 10_000
    for i in range(args.repeat):
        for mode in MODES:
            server = server_class(work / f"replication-enqueue-{mode}-{i}.db", "--durability", "full",
                                  *_args(work, "enqueue", mode, i))
            figures[f"enqueue_{mode}"].append(load(server.url + "/queues/jobs", connections=64,
                                                   seconds=args.seconds, body=job_body)["requests_per_s"])
            server.stop()
            server = server_class(work / f"replication-bulk-{mode}-{i}.db", "--durability", "full",
                                  *_args(work, "bulk", mode, i))
            figures[f"bulk_{mode}"].append(load(server.url + "/queues/jobs/bulk?return=ids", connections=4,
                                                seconds=args.seconds, body=BULK)["requests_per_s"] * 1000)
            server.stop()
            figures[f"inprocess_{mode}"].append(_inprocess(work, mode, i, total))
        for folder in work.glob("replica-*"):
            shutil.rmtree(folder, ignore_errors=True)
    median = {k: round(statistics.median(v)) for k, v in figures.items()}
    ratios = {f"{what}_{mode}_ratio": round(median[f"{what}_{mode}"] / median[f"{what}_off"], 3)
              for what in ("enqueue", "bulk", "inprocess") for mode in ("async", "sync")}
    return {"what": "replication to a folder on the same disk: HTTP enqueue (64 connections), bulk (1,000 a "
                    "request) and 50,000 in-process no-op jobs, off against async and sync",
            **median, **ratios, "runs": args.repeat}
