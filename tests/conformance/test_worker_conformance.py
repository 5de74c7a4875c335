"""What every queueapp worker must do, whatever its language (README.md beside this
file): each check runs the client's "worker under test" program against a real
``queueapp serve`` and reads what the appliance and the program's report say.

The Python worker (``queueapp worker``) and the TypeScript ``Worker`` pass it; a
client in another language joins by naming its program in CONFORMANCE_WORKER."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ServeProcess
from fault_proxy import FaultProxy
from node import REPO, TYPESCRIPT, call, require_built, until

HERE = Path(__file__).parent
TOKEN = "conformance-token"
TS_WORKER = TYPESCRIPT / "client" / "test" / "worker-under-test.js"


def commands() -> dict[str, list[str]]:
    """Each client's worker-under-test program; it takes its settings from the
    environment (QUEUEAPP_URL, QUEUEAPP_TOKEN, QUEUEAPP_QUEUE, CONCURRENCY, LEASE_MS,
    GRACE_MS, CONFORMANCE_REPORT)."""
    found = {
        "python": [sys.executable, "-c", "from conformance_launch import main; main()"],
        "typescript": ["node", str(TS_WORKER)],
    }
    if outside := os.environ.get("CONFORMANCE_WORKER"):
        found["outside"] = shlex.split(outside)
    return found


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@dataclass
class Harness:
    client: str
    appliance: ServeProcess
    folder: Path
    report_path: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, *, url: str | None = None, token: str = TOKEN, concurrency: int = 5, lease_ms: int = 30_000,
              grace_ms: int = 20_000) -> WorkerProcess:
        if self.client == "typescript":
            require_built(TS_WORKER.parent.parent / "dist" / "index.js")
        log = self.folder / f"worker-{len(self.started)}.log"
        env = {**os.environ, "QUEUEAPP_URL": url or self.appliance.url, "QUEUEAPP_TOKEN": token,
               "QUEUEAPP_QUEUE": "conformance", "CONCURRENCY": str(concurrency), "LEASE_MS": str(lease_ms),
               "GRACE_MS": str(grace_ms), "CONFORMANCE_REPORT": str(self.report_path),
               "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])}
        with log.open("ab") as out:
            proc = subprocess.Popen(commands()[self.client], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=HERE)
        worker = WorkerProcess(proc, log)
        self.started.append(worker)
        return worker

    def api(self, method: str, path: str, body: Any = None) -> Any:
        sep = "&" if "?" in path else "?"
        status, answer = call(method, f"{self.appliance.url}{path}{sep}queue=conformance", body, token=TOKEN)
        assert status < 300, (path, status, answer)
        return answer

    def add(self, *jobs: dict[str, Any]) -> list[str]:
        return [j["id"] for j in self.api("POST", "/queues/jobs/bulk", {"jobs": list(jobs)})["jobs"]]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.api("GET", f"/queues/jobs/{job_id}")

    def report(self) -> list[dict[str, Any]]:
        if not self.report_path.exists():
            return []
        return [json.loads(line) for line in self.report_path.read_text().splitlines() if line.strip()]

    def events(self, event: str) -> Counter[str]:
        return Counter(r["id"] for r in self.report() if r["event"] == event)

    def settled(self, ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
        def all_done() -> list[dict[str, Any]] | None:
            jobs = [self.job(i) for i in ids]
            return jobs if all(j["state"] in ("completed", "failed") for j in jobs) else None

        return until(all_done, timeout, f"{len(ids)} jobs settled ({self.client})")

    def audit_ok(self) -> None:
        """The appliance's memory and its table agree."""
        assert self.api("GET", "/debug/audit") == {"ok": True, "problems": []}


@pytest.fixture(params=sorted(commands()))
def harness(request, serve, tmp_path) -> Iterator[Harness]:
    appliance = serve("--audit-interval-ms", "60000", env={"QUEUEAPP_TOKEN": TOKEN})
    made = Harness(request.param, appliance, tmp_path, tmp_path / "report.jsonl")
    yield made
    for worker in made.started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def echo(i: int) -> dict[str, Any]:
    return {"name": "echo", "data": {"i": i}}


def test_leases_in_batches_and_runs_each_job_once(harness):
    ids = harness.add(*[echo(i) for i in range(120)])
    with FaultProxy(harness.appliance.url) as proxy:
        harness.start(url=proxy.url, concurrency=16)
        jobs = harness.settled(ids)
        lease_sizes = list(proxy.lease_sizes)
    assert all(j["state"] == "completed" for j in jobs)
    assert [j["result"] for j in jobs] == [{"i": i} for i in range(120)]
    assert set(harness.events("start").values()) == {1} and len(harness.events("done")) == 120
    assert max(lease_sizes) > 1, lease_sizes  # several jobs asked for in one request
    assert len(lease_sizes) < 120, len(lease_sizes)


def test_heartbeats_keep_a_job_longer_than_its_lease(harness):
    (job_id,) = harness.add({"name": "slow", "data": {"ms": 3500}})
    harness.start(lease_ms=1000)
    (job,) = harness.settled([job_id])
    assert (job["state"], job["attemptsMade"], job["errors"]) == ("completed", 1, [])
    assert harness.events("start")[job_id] == 1


def test_progress_is_visible_over_the_api_while_the_job_runs(harness):
    (job_id,) = harness.add({"name": "progress", "data": {"ms": 4000}})
    harness.start()
    seen = until(lambda: (lambda j: j if j["state"] == "active" and j["progress"] == 50 else None)(
        harness.job(job_id)), 30, "progress 50 while active")
    assert seen["finishedAt"] is None
    (job,) = harness.settled([job_id])
    assert (job["state"], job["result"]) == ("completed", "done")


def test_failures_retry_with_backoff_fail_for_good_and_keep_the_stack(harness):
    twice, final, stack = harness.add(
        {"name": "fail-twice", "options": {"attempts": 3, "backoff": {"type": "fixed", "delay": 500}}},
        {"name": "fail-final", "options": {"attempts": 5}},
        {"name": "throws-with-stack", "options": {"attempts": 1}},
    )
    harness.start()
    retried, ended, traced = harness.settled([twice, final, stack])
    assert (retried["state"], retried["attemptsMade"], retried["result"]) == ("completed", 3, {"attempt": 3})
    assert [e["message"].rsplit(": ", 1)[-1] for e in retried["errors"]] == ["attempt 1 failed", "attempt 2 failed"]
    gap = _ms(retried["errors"][1]["at"]) - _ms(retried["errors"][0]["at"])
    assert gap >= 500, gap  # the second attempt waited out the backoff
    assert (ended["state"], ended["attemptsMade"], ended["error"]) == ("failed", 1, "card declined")
    assert traced["state"] == "failed"
    trace = traced["errors"][0]["stack"]
    assert "deep failure" in trace and ("deepInside" in trace or "deep_inside" in trace), trace


def test_job_log_lines_are_kept_with_the_job_split_and_cut(harness):
    (job_id,) = harness.add({"name": "log"})
    harness.start()
    (job,) = harness.settled([job_id])
    assert job["state"] == "completed", job
    lines = [line["line"] for line in harness.api("GET", f"/queues/jobs/{job_id}/logs")["lines"]]
    assert lines[:3] == ["first line", "second", "third"]
    assert len(lines) == 4 and len(lines[3]) == 2000 and lines[3].endswith("\u2026")


def test_sigterm_mid_run_finishes_running_jobs_and_hands_back_the_rest(harness):
    ids = harness.add(*[{"name": "slow", "data": {"ms": 1500}} for _ in range(10)])
    worker = harness.start(concurrency=4)
    until(lambda: len(harness.events("start")) >= 4, 30, "four jobs running")
    assert worker.terminate(60) == 0, worker.output()
    started = set(harness.events("start"))
    for job in (harness.job(i) for i in ids):
        if job["id"] in started:
            assert job["state"] == "completed", job
        else:
            assert (job["state"], job["attemptsMade"]) == ("waiting", 0), job
    assert len(started) < 10
    harness.start(concurrency=10)
    assert all(j["state"] == "completed" for j in harness.settled(ids))
    assert set(harness.events("start").values()) == {1}  # none run twice
    harness.audit_ok()


def test_the_appliance_restarted_mid_run_the_worker_reconnects_and_its_completions_land(harness):
    ids = harness.add(*[{"name": "slow", "data": {"ms": 300}} for _ in range(60)])
    harness.start(concurrency=6, lease_ms=15_000)
    until(lambda: len(harness.events("done")) >= 10, 30, "ten jobs done")
    harness.appliance.kill9()
    harness.appliance.start()
    jobs = harness.settled(ids, timeout=90)
    assert all(j["state"] == "completed" for j in jobs), [j for j in jobs if j["state"] != "completed"]
    # Completions sent while the appliance was down land at the first attempt. The one
    # kind of second attempt is a lease the appliance committed as it was killed and
    # never answered: the worker never had that job, and it ran once, later.
    retried = [j for j in jobs if j["attemptsMade"] != 1]
    assert all(e["message"].startswith("lease expired") for j in retried for e in j["errors"]), retried
    assert set(harness.events("start").values()) == {1}
    harness.audit_ok()


def test_503s_and_dropped_connections_lose_nothing_and_complete_nothing_twice(harness):
    # a lease whose answer was lost runs out (3 s: long enough for a worker's retries to
    # get through a burst) and the job goes again at once
    again = {"attempts": 5, "backoff": {"type": "fixed", "delay": 0}}
    ids = harness.add(*[{**echo(i), "options": again} for i in range(150)],
                      *[{"name": "slow", "data": {"ms": 200}, "options": again} for _ in range(10)])
    with FaultProxy(harness.appliance.url) as proxy:
        proxy.break_next(30, rate=0.5)
        harness.start(url=proxy.url, concurrency=8, lease_ms=3000)
        jobs = harness.settled(ids, timeout=120)
        faults = dict(proxy.faults_done)
    assert set(faults) == {"503", "drop-before", "drop-after"}, faults
    assert all(j["state"] == "completed" for j in jobs), [j for j in jobs if j["state"] != "completed"]
    assert set(harness.events("done").values()) == {1}  # each handler finished once
    assert len(harness.events("done")) == len(ids)
    harness.audit_ok()


def test_a_wrong_token_exits_non_zero_with_one_clear_message(harness):
    worker = harness.start(token="not-the-token")
    code = worker.proc.wait(60)
    output = worker.output()
    assert code != 0, output
    refused = [line for line in output.splitlines() if "401" in line]
    assert len(refused) == 1 and "token" in refused[0], output


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_the_report_lines_are_the_documented_shape(harness):
    """The checks above read the report; a client writing another shape fails here
    first, saying so."""
    (job_id,) = harness.add(echo(0))
    harness.start()
    harness.settled([job_id])
    until(lambda: harness.report(), 10, "a report line")
    for line in harness.report():
        assert {"event", "id", "name", "attempt"} <= set(line), line
        assert line["event"] in ("start", "done", "fail") and line["attempt"] >= 1, line
