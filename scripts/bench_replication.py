"""What copying every commit costs (scripts/bench --only replication): HTTP enqueue
(64 connections), HTTP bulk (1,000 jobs a request) and 50,000 in-process no-op jobs,
with replication off, async and sync to a folder on the same disk; and HTTP enqueue
and bulk with a standby (queueapp standby, another process on the same host)
following that folder, asynchronous and synchronous (sync_standbys = 1). Medians of
--repeat, each beside off in the same run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("off", "async", "sync")
STANDBY_MODES = ("standby_async", "standby_sync")
BULK = {"jobs": [{"name": "resize", "data": {"i": i, "w": 640}} for i in range(1000)]}

RUN = Path(__file__).resolve().parent / "inprocess_run.py"


def _args(work: Path, what: str, mode: str, i: int) -> tuple[str, ...]:
    if mode == "off":
        return ()
    if mode in STANDBY_MODES:
        return ("--replicate-to", str(work / f"replica-{what}-{mode}-{i}"), "--sync-standbys",
                "1" if mode == "standby_sync" else "0")
    return ("--replicate-to", str(work / f"replica-{what}-{mode}-{i}"), "--replication", mode)


class Following:
    """A standby process following ``url`` into a folder of ``work``, until stopped;
    started once the primary lists it and waits for nobody missing."""

    def __init__(self, work: Path, url: str, name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "queueapp", "standby", "--primary", url, "--to",
                                      str(work / f"standby-{name}"), "--name", name], cwd=str(ROOT),
                                     env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            with urllib.request.urlopen(url + "/queues/replication", timeout=10) as answer:
                listing = json.loads(answer.read())
            if listing["standbys"] and listing["degradedSince"] is None:
                return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the standby did not follow the primary")
            time.sleep(0.05)  # another process's progress: nothing to wait on but its report

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
    figures: dict[str, list[float]] = {f"{what}_{mode}": [] for what in ("enqueue", "bulk")
                                       for mode in MODES + STANDBY_MODES}
    figures |= {f"inprocess_{mode}": [] for mode in MODES}
    total = 50_000 if not args.quick else 10_000
    for i in range(args.repeat):
        for mode in MODES + STANDBY_MODES:
            for what, path, connections, body, scale in (
                    ("enqueue", "/queues/jobs", 64, job_body, 1),
                    ("bulk", "/queues/jobs/bulk?return=ids", 4, BULK, 1000)):
                server = server_class(work / f"replication-{what}-{mode}-{i}.db", "--durability", "full",
                                      *_args(work, what, mode, i))
                follower = Following(work, server.url, f"{what}-{mode}-{i}") if mode in STANDBY_MODES else None
                figures[f"{what}_{mode}"].append(load(server.url + path, connections=connections,
                                                      seconds=args.seconds, body=body)["requests_per_s"] * scale)
                if follower is not None:
                    follower.stop()
                server.stop()
            if mode in MODES:
                figures[f"inprocess_{mode}"].append(_inprocess(work, mode, i, total))
        for folder in [*work.glob("replica-*"), *work.glob("standby-*")]:
            shutil.rmtree(folder, ignore_errors=True)
    median = {k: round(statistics.median(v)) for k, v in figures.items()}
    ratios = {f"{what}_{mode}_ratio": round(median[f"{what}_{mode}"] / median[f"{what}_off"], 3)
              for what in ("enqueue", "bulk", "inprocess") for mode in ("async", "sync", *STANDBY_MODES)
              if f"{what}_{mode}" in median}
    return {"what": "replication to a folder on the same disk, and a standby process following it: HTTP enqueue "
                    "(64 connections), bulk (1,000 a request) and 50,000 in-process no-op jobs, off against async "
                    "and sync (in-process: the folder only)",
            **median, **ratios, "runs": args.repeat}
