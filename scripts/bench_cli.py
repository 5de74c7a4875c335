"""How long an operator's command takes from the shell (scripts/bench --only cli).

The same two commands (``queueapp --version``, and ``queueapp jobs ls`` against a
running appliance with a few jobs) from each way the command is installed: the pip
install (``python -m queueapp``), the one file (``dist/queueapp``, which unpacks
itself into a temporary folder at every start) and the folder build
(``dist/queueapp-folder/queueapp``, unpacked once). Each copied into an empty folder
and run with an empty environment, as on a host; wall time per command, median of
``--repeat`` runs (at least 5). The build is made first when ``dist`` lacks it."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EMPTY_ENV = {"PATH": "/usr/bin:/bin"}


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def run(work: Path, args: Any, server: Any) -> dict:
    if not (ROOT / "dist" / "queueapp").is_file() or not (ROOT / "dist" / "queueapp-folder" / "queueapp").is_file():
        subprocess.run([str(ROOT / "scripts" / "build-single-file")], cwd=ROOT, check=True, capture_output=True)
    host = work / "cli-host"
    host.mkdir()
    shutil.copy2(ROOT / "dist" / "queueapp", host / "queueapp")
    shutil.copytree(ROOT / "dist" / "queueapp-folder", host / "queueapp-folder", symlinks=True)
    appliance = server(work / "cli.db")
    try:
        import urllib.request
        for i in range(20):
            request = urllib.request.Request(appliance.url + "/queues/jobs", method="POST",
                                             data=b'{"name": "report-%d"}' % i,
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).read()
        ways = {"pip install": ([sys.executable, "-m", "queueapp"], {"PYTHONPATH": str(ROOT)}),
                "one file": (["./queueapp"], {}),
                "folder build": (["./queueapp-folder/queueapp"], {})}
        results: dict[str, dict[str, float]] = {}
        repeat = max(5, args.repeat)
        for way, (command, env) in ways.items():
            results[way] = {
                label: round(statistics.median(_timed(command + extra, host, {**EMPTY_ENV, **env})
                                               for _ in range(repeat)) * 1000)
                for label, extra in (("version_ms", ["--version"]),
                                     ("jobs_ls_ms", ["jobs", "ls", "--url", appliance.url]))}
    finally:
        appliance.stop()
    return {"what": "wall time of `queueapp --version` and `queueapp jobs ls` (20 jobs) from the pip install, "
                    "the one file and the folder build, each from an empty environment",
            "ways": results, "runs": repeat,
            "one_file_mb": round((ROOT / "dist" / "queueapp").stat().st_size / 2**20, 1),
            "folder_mb": round(sum(f.stat().st_size for f in (ROOT / "dist" / "queueapp-folder").rglob("*")
                                   if f.is_file()) / 2**20, 1)}
