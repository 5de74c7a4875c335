"""The dashboard's reads and actions over a large table (scripts/bench --only dashboard).

A million jobs (by default) are written straight into a migrated database, spread
over seven days, five states and twenty job names; a real ``queueapp serve`` then
answers the searches a person makes on the Queue page, one after another, and the
actions of the Failed page. Latencies are of whole HTTP requests on loopback."""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from queueapp.fingerprint import error_group

DAY_MS = 86_400_000
STATES = ["waiting"] * 10 + ["delayed"] * 10 + ["completed"] * 60 + ["failed"] * 15 + ["cancelled"] * 5
ERRORS = ["SMTP 550 mailbox unavailable", "timeout after 30000 ms", "HTTP 503 from upstream"]
GROUPS = {error: error_group(error) for error in ERRORS}


def seed(conn: sqlite3.Connection, count: int, now: int) -> None:
    conn.execute("pragma synchronous=off")
    rng = random.Random(7)
    batch = 100_000
    for lo in range(1, count + 1, batch):
        rows = []
        for i in range(lo, min(lo + batch, count + 1)):
            created = now - 7 * DAY_MS + (7 * DAY_MS * i) // count  # ids grow with time
            state = STATES[rng.randrange(len(STATES))]
            finished = created + 50 if state in ("completed", "failed", "cancelled") else None
            run_at = created + DAY_MS if state == "delayed" else created
            data = json.dumps({"userId": i % 50_000, "to": f"user{i}@{'example.com' if i % 2 else 'test.org'}"})
            error = ERRORS[i % 3] if state == "failed" else None
            started = created if finished is not None else None
            rows.append((i, f"job-{i % 20}", state, 1 + i % 5, data, error, GROUPS.get(error), created, run_at,
                         started, finished))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, queue, name, state, priority, data, attempts, attempts_made, error, error_group,"
            " created_at, run_at, started_at, finished_at) VALUES (?, 'default', ?, ?, ?, ?, 3, 1, ?, ?, ?, ?, ?, ?)",
            rows)
        conn.execute("COMMIT")
    # an operator's month: 10,000 changes in the audit trail
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO audit (at, actor, via, address, queue, action, target, changed)"
                     " VALUES (?, 'admin', 'dashboard', '10.0.0.7', 'default', 'retry', ?, 1)",
                     [(now - 30 * DAY_MS + i * 259_200, str(i)) for i in range(10_000)])
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def timed(url: str, method: str = "GET", body: Any = None) -> tuple[float, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    return (time.perf_counter() - start) * 1000, answer


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2), "requests": len(ordered)}


def searches(base: str, now: int, requests: int) -> dict[str, dict[str, Any]]:
    """Each search a number of times, newest first, 50 a page, and walking 20 pages."""
    queries = {
        "state=failed": {"state": "failed"},
        "state=waiting": {"state": "waiting"},
        "name=job-7": {"name": "job-7"},
        "state=failed&name=job-7": {"state": "failed", "name": "job-7"},
        "last hour": {"from": now - 3_600_000},
        "an hour 3 days ago": {"from": now - 3 * DAY_MS - 3_600_000, "to": now - 3 * DAY_MS},
        "failed, an hour 3 days ago": {"state": "failed", "from": now - 3 * DAY_MS - 3_600_000,
                                       "to": now - 3 * DAY_MS},
        "jobId key": {"q": "invoice-1"},
        'data.userId = 4242': {"q": "data.userId = 4242"},
        'data.to contains "user77"': {"q": 'data.to contains "user77"'},
    }
    out: dict[str, dict[str, Any]] = {}
    for label, query in queries.items():
        samples, scanned = [], None
        for _ in range(requests):
            page = urllib.parse.urlencode({**query, "order": "desc", "limit": 50})
            took, answer = timed(f"{base}/queues/jobs?{page}")
            samples.append(took)
            scanned = answer.get("scanned")
        out[label] = {**percentiles(samples), **({"rows_read": scanned} if scanned is not None else {})}
    walk, cursor = [], None
    for _ in range(20):
        query = {"state": "completed", "order": "desc", "limit": 50, **({"cursor": cursor} if cursor else {})}
        took, answer = timed(f"{base}/queues/jobs?{urllib.parse.urlencode(query)}")
        walk.append(took)
        cursor = answer["nextCursor"]
    out["20 pages of completed"] = percentiles(walk)
    return out


def pages(base: str, count: int, requests: int) -> dict[str, dict[str, Any]]:
    """What the operator's pages ask: a job's page (the job, the jobs waiting on it, its
    log), the failed groups, and the audit trail's first page."""
    rng = random.Random(11)
    job_page = []
    for _ in range(requests):
        job_id = rng.randrange(1, count + 1)
        start = time.perf_counter()
        for path in (f"/queues/jobs/{job_id}", f"/queues/jobs/{job_id}/dependents", f"/queues/jobs/{job_id}/logs"):
            timed(base + path)
        job_page.append((time.perf_counter() - start) * 1000)
    out = {"job page (job, dependents, log)": percentiles(job_page)}
    for label, path in (("failed groups", "/queues/jobs/failed/groups"), ("audit page", "/queues/audit?limit=100")):
        out[label] = percentiles([timed(base + path)[0] for _ in range(requests)])
    return out


def actions(base: str) -> dict[str, Any]:
    """Count the failed jobs of one error, retry them all (1,000 a call), then delete a
    day's worth of completed jobs."""
    error = urllib.parse.urlencode({"state": "failed", "error": ERRORS[0]})
    took, dry = timed(f"{base}/queues/jobs/actions?{error}", "POST", {"action": "retry", "dryRun": True})
    out: dict[str, Any] = {"dry_run_ms": round(took, 1), "matched": dry["matched"]}
    for label, query, action in (("retry failed", error, "retry"),
                                 ("delete completed", "state=completed", "delete")):
        changed, calls, cursor, start, per_call = 0, 0, None, time.perf_counter(), []
        while calls < 150:
            took, answer = timed(f"{base}/queues/jobs/actions?{query}", "POST",
                                 {"action": action, **({"cursor": cursor} if cursor else {})})
            per_call.append(took)
            changed, calls, cursor = changed + answer["changed"], calls + 1, answer["nextCursor"]
            if cursor is None:
                break
        seconds = time.perf_counter() - start
        out[label] = {"jobs": changed, "calls": calls, "jobs_per_s": round(changed / seconds),
                      **percentiles(per_call)}
    took, _ = timed(f"{base}/queues/metrics/history?window=7d")
    out["history_7d_ms"] = round(took, 1)
    return out


def run(work: Path, args: Any, server: Callable[..., Any], migrated: Callable[[Path], sqlite3.Connection]) -> dict:
    count = 100_000 if args.quick else args.dashboard_jobs
    db = work / "dashboard.db"
    now = int(time.time() * 1000)
    conn = migrated(db)
    start = time.perf_counter()
    seed(conn, count, now)
    conn.close()
    seeded_s = time.perf_counter() - start
    appliance = server(db)
    try:
        reads = searches(appliance.url, now, 20 if args.quick else 100)
        operator = pages(appliance.url, count, 20 if args.quick else 100)
        acts = actions(appliance.url)
        with urllib.request.urlopen(appliance.url + "/queues/metrics") as r:
            metrics = json.loads(r.read())
    finally:
        appliance.stop()
    return {"what": f"dashboard searches and actions over {count:,} jobs (7 days, 5 states, 20 names)",
            "jobs": count, "seed_s": round(seeded_s, 1), "searches": reads, "pages": operator, "actions": acts,
            "failed_after": metrics["failed"]}
