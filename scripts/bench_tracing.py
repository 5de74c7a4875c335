"""What traces cost (scripts/bench --only tracing), in one run, medians of --repeat:

- HTTP enqueue, 64 connections (wrk): traces off and no traceparent; off with a
  producer's traceparent on every request (the job keeps it); on, exporting every
  enqueue's span over OTLP/HTTP to a sink on loopback that takes and drops them.
- In-process handlers, 50,000 no-op jobs that each carry a trace, concurrency 256:
  off, and on (a wait and an attempt span a job).

Each "on" figure is quoted as a ratio to "off" of the same run."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WITH_TRACE = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
              f'wrk.headers["traceparent"] = "{TRACEPARENT}"\n')


class Sink:
    """An OTLP/HTTP endpoint that answers every export 200 and keeps only counts."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                sink.bytes += len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


RUN = Path(__file__).resolve().parent / "inprocess_run.py"


def _inprocess(db: Path, total: int, endpoint: str) -> float:
    extra = ("--otel-endpoint", endpoint) if endpoint else ()
    out = subprocess.run([sys.executable, str(RUN), str(db), str(total), "--traceparent", TRACEPARENT, *extra],
                         capture_output=True, text=True, timeout=900, cwd=str(ROOT),
                         env={"OTEL_BSP_SCHEDULE_DELAY": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["jobs_per_s"]


def run(work: Path, args: Any, server_class: Any, load: Any, job_body: dict) -> dict:
    sink = Sink()
    try:
        enqueue: dict[str, list[float]] = {"off": [], "off_with_traceparent": [], "on": []}
        inprocess: dict[str, list[float]] = {"off": [], "on": []}
        total = 50_000 if not args.quick else 10_000
        for i in range(args.repeat):
            for mode in enqueue:
                extra = ("--otel-endpoint", sink.url) if mode == "on" else ()
                server = server_class(work / f"tracing-{mode}-{i}.db", "--durability", "full", *extra,
                                      env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
                script = WITH_TRACE + f"wrk.body = [==[{json.dumps(job_body)}]==]\n"
                answer = load(server.url + "/queues/jobs", connections=64, seconds=args.seconds,
                              **({"body": job_body} if mode == "off" else {"script": script}))
                server.stop()
                enqueue[mode].append(answer["requests_per_s"])
            for mode in inprocess:
                inprocess[mode].append(_inprocess(work / f"tracing-inprocess-{mode}-{i}.db", total,
                                                  sink.url if mode == "on" else ""))
    finally:
        sink.close()
    median = {f"enqueue_{k}": round(statistics.median(v)) for k, v in enqueue.items()}
    median |= {f"inprocess_{k}": round(statistics.median(v)) for k, v in inprocess.items()}
    return {"what": "the cost of traces: HTTP enqueue (64 connections) and 50,000 in-process no-op jobs, "
                    "off against on (spans sent over OTLP/HTTP to a sink on loopback)",
            **median,
            "enqueue_traceparent_kept_ratio": round(median["enqueue_off_with_traceparent"] / median["enqueue_off"], 3),
            "enqueue_on_ratio": round(median["enqueue_on"] / median["enqueue_off"], 3),
            "inprocess_on_ratio": round(median["inprocess_on"] / median["inprocess_off"], 3),
            "exports_received": sink.requests, "runs": args.repeat}
