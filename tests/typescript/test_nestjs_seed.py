"""The seed's NestJS code on queueapp (examples/nestjs-seed): every usage example of the
seed gives the appliance's answer, with two instances of the app up against one real
``queueapp serve``."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import free_port
from node import SEED, SEED_MAIN, NodeProcess, call, require_built, until

from queueapp.retry import calculate_backoff_delay, get_default_strategy

TOKEN = "seed-token"


class App:
    def __init__(self, appliance: str, name: str, tmp_path: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = NodeProcess(SEED_MAIN, env={
            "QUEUEAPP_URL": appliance, "QUEUEAPP_TOKEN": TOKEN, "PORT": str(self.port), "INSTANCE": name,
        }, log=tmp_path / f"app-{name}.log", cwd=SEED)

    def ready(self) -> App:
        until(lambda: self._answers(), 60, f"the app on {self.port} answering ({self.process.output()[-2000:]})")
        return self

    def _answers(self) -> bool:
        assert self.process.proc.poll() is None, self.process.output()
        try:
            return call("GET", f"{self.url}/usage/retry-strategy")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> Any:
        status, body = call("GET", self.url + path)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str, body: Any = None) -> Any:
        status, answer = call("POST", self.url + path, body if body is not None else {})
        assert status in (200, 201), (path, status, answer)
        return answer


@pytest.fixture
def seed(serve, tmp_path):
    require_built(SEED_MAIN)
    # the app's processor runs the seed's job types, not the appliance's built-in ones
    appliance = serve("--builtin-jobs", "http", env={"QUEUEAPP_TOKEN": TOKEN})
    apps = [App(appliance.url, name, tmp_path) for name in ("a", "b")]
    try:
        yield appliance, [app.ready() for app in apps]
    finally:
        for app in apps:
            app.process.kill()


def api(appliance: Any, method: str, path: str, body: Any = None) -> Any:
    status, answer = call(method, appliance.url + path, body, token=TOKEN)
    assert status < 300, (path, status, answer)
    return answer


def settled(appliance: Any, job_id: str, queue: str = "default") -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = api(appliance, "GET", f"/queues/jobs/{job_id}?queue={queue}")
        return job if job["state"] in ("completed", "failed") else None

    return until(done, 30, f"job {job_id} finished")


def at_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_the_seed_usage_examples_give_the_appliances_answers(seed):
    appliance, (app, other) = seed

    # Basic Job Addition: JobPriority.HIGH, attempts 3, run by the app's processor
    job = app.post("/usage/basic")
    assert (job["name"], job["priority"], job["attempts"]) == ("send-email", 2, 3)
    done = settled(appliance, job["id"])
    assert done["state"] == "completed"
    assert done["result"]["sent"] is True and done["result"]["to"] == "user@example.com"

    # job.progress(50) visible over the API while the job runs, its result stored
    report = app.post("/queues/jobs", {"name": "generate-report", "data": {"workMs": 6000}})
    running = until(lambda: (lambda j: j if j["state"] == "active" and j["progress"] == 50 else None)(
        api(appliance, "GET", f"/queues/jobs/{report['id']}")), 20, "the report at 50 %")
    assert running["finishedAt"] is None
    assert settled(appliance, report["id"])["result"] == {"reportId": f"report-{report['id']}", "type": "daily"}

    # Priority Calculation: the priority the appliance gives the same factors
    for deadline in ("2099-12-31T00:00:00Z", (datetime.now(UTC) + timedelta(minutes=30)).isoformat()):
        computed = app.post("/usage/priority", {"deadline": deadline})
        factors = {"userTier": "premium", "urgency": "high", "businessImpact": "revenue", "deadline": deadline}
        given = api(appliance, "POST", "/queues/jobs", {"name": "probe", "priorityFactors": factors})
        assert computed["priority"] == given["priority"] == computed["job"]["priority"]
        assert computed["options"]["attempts"] == computed["job"]["attempts"]
    payment = {"name": "process-payment", "data": {"amount": 99.99, "userId": "123"},
               "priorityFactors": {"userTier": "free", "urgency": "low"}}
    through_controller = app.post("/queues/jobs", payment)
    assert through_controller["priority"] == 5

    # Job Scheduling: at a time, and after a delay; each runs then and not before
    at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    scheduled = app.post("/usage/scheduling", {"at": at, "delayMs": 2000})
    reminder, cleanup = scheduled["reminder"], scheduled["cleanup"]
    assert reminder["state"] == cleanup["state"] == "delayed"
    assert at_ms(reminder["runAt"]) == at_ms(at)
    reminder_done, cleanup_done = settled(appliance, reminder["id"]), settled(appliance, cleanup["id"])
    assert at_ms(reminder_done["startedAt"]) >= at_ms(at)
    assert at_ms(cleanup_done["startedAt"]) >= at_ms(cleanup["createdAt"]) + 2000
    assert reminder_done["state"] == cleanup_done["state"] == "completed"

    # Monitoring: metrics, health and failed jobs as the API answers them
    bad = app.post("/queues/jobs", {"name": "process-payment", "data": {"amount": -1}, "options": {"attempts": 1}})
    assert settled(appliance, bad["id"])["error"] == "Invalid payment amount"
    until(lambda: api(appliance, "GET", "/queues/metrics")["active"] == 0, 20, "the queue idle")
    seen = app.get("/usage/monitoring")
    metrics = api(appliance, "GET", "/queues/metrics")
    for count in ("waiting", "active", "completed", "failed", "delayed", "paused", "total"):
        assert seen["metrics"][count] == metrics[count], count
    assert seen["health"]["status"] == api(appliance, "GET", "/queues/health")["status"]
    assert [j["id"] for j in seen["failedJobs"]] == [
        j["id"] for j in api(appliance, "GET", "/queues/jobs/failed?limit=50")["jobs"]] == [bad["id"]]
    assert app.get("/queues/metrics")["completed"] == metrics["completed"]

    # the seed's controller: retry a failed job, pause and resume
    assert app.post(f"/queues/jobs/{bad['id']}/retry")["state"] == "waiting"
    assert app.post("/queues/pause") == {"queue": "default", "paused": True}
    assert app.post("/queues/resume") == {"queue": "default", "paused": False}

    # Custom Strategy: the appliance's strategy for e-mail, and its delay before retry 2
    strategy = app.get("/usage/retry-strategy")
    policy = get_default_strategy("email")
    assert strategy["strategy"] == {"maxAttempts": 3, "backoffType": policy.type, "initialDelay": policy.delay,
                                    "maxDelay": policy.max_delay, "multiplier": policy.multiplier,
                                    "jitter": policy.jitter}
    ceiling = calculate_backoff_delay(2, policy.__class__(policy.type, policy.delay, policy.max_delay,
                                                          policy.multiplier, 0))
    assert ceiling * (1 - policy.jitter) <= strategy["delay"] <= ceiling


def test_a_recurring_jobs_callback_runs_once_per_run_across_two_instances(seed):
    appliance, apps = seed
    (schedule,) = api(appliance, "GET", "/queues/schedules?queue=default.recurring")["schedules"]
    assert (schedule["name"], schedule["cron"], schedule["jobName"]) == ("daily-report", "0 9 * * *", "daily-report")
    fired = [api(appliance, "POST", "/queues/schedules/daily-report/run?queue=default.recurring")["id"]
             for _ in range(6)]
    for job_id in fired:
        assert settled(appliance, job_id, "default.recurring")["state"] == "completed"
    runs = [app.get("/usage/report-runs")["runs"] for app in apps]
    assert sum(runs) == 6, runs


def test_sigterm_lets_the_processor_finish_its_job_and_stops_the_app(seed):
    appliance, (app, other) = seed
    other.process.kill()  # one processor left, so the job runs in the app stopped below
    job = app.post("/queues/jobs", {"name": "backup-data", "data": {"workMs": 1500}})
    until(lambda: api(appliance, "GET", f"/queues/jobs/{job['id']}")["state"] == "active", 20, "the backup started")
    # NestJS runs its shutdown hooks, then ends by the signal it was given
    assert app.process.terminate(30) in (0, -signal.SIGTERM)
    done = api(appliance, "GET", f"/queues/jobs/{job['id']}")
    assert done["state"] == "completed" and done["result"]["backupId"] == f"backup-{job['id']}"
