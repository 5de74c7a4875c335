"""The API keeps its contract: OpenAPI from the code, the seed's curl lines, limits."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from queueapp.api import endpoints, models

SEED = Path(__file__).parent.parent.parent.parent / "shared" / "seed" / "queue-management-system.md"


async def test_openapi_is_valid_and_lists_every_route(make_client):
    client = await make_client(token="t")
    r = await client.get("/openapi.json", headers={"Authorization": "Bearer t"})
    doc = await r.json()
    validate(doc)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for route in client.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and not path.startswith("/ui"):  # the dashboard's pages are not the API
            served.add((route.method, path))
    assert documented == served
    add = doc["paths"]["/queues/jobs"]["post"]
    assert set(add["responses"]) >= {"200", "201", "400", "401", "413", "503"}
    assert doc["components"]["schemas"]["JobOptions"]["additionalProperties"] is False


async def test_responses_match_their_documented_models(make_client):
    """Drive each route once and check the answer against the model the route declares."""
    client = await make_client()
    declared = {(e.method, e.path): e.responses for e in endpoints()}

    async def call(method, path, concrete=None, body=None):
        r = await client.request(method, concrete or path, json=body)
        model = declared[(method, path)].get(r.status)
        payload = await r.json()
        assert model is not None, (method, path, r.status, payload)
        model.model_validate(payload)
        return payload

    job = await call("POST", "/queues/jobs", body={"name": "a", "options": {"attempts": 2}})
    await call("POST", "/queues/jobs/bulk", body={"jobs": [{"name": "b"}, {"name": "c"}]})
    await call("POST", "/queues/jobs/schedule",
               body={"name": "d", "scheduledTime": "2099-01-01T00:00:00Z"})
    leased = await call("POST", "/queues/jobs/lease", body={"max": 3, "names": ["a", "b", "c"]})
    first, second, third = leased["jobs"]
    await call("POST", "/queues/jobs/{id}/heartbeat", f"/queues/jobs/{first['id']}/heartbeat",
               {"leaseToken": first["leaseToken"], "progress": 10})
    await call("POST", "/queues/jobs/{id}/fail", f"/queues/jobs/{first['id']}/fail",
               {"leaseToken": first["leaseToken"], "error": "x", "retry": False})
    await call("POST", "/queues/jobs/{id}/complete", f"/queues/jobs/{second['id']}/complete",
               {"leaseToken": second["leaseToken"], "result": [1, 2]})
    many = await call("POST", "/queues/jobs/complete", body={"jobs": [
        {"id": third["id"], "leaseToken": third["leaseToken"], "result": None},
        {"id": second["id"], "leaseToken": second["leaseToken"]},
    ]})
    assert [r["ok"] for r in many["results"]] == [True, False]
    assert many["results"][1]["error"]["code"] == "conflict"
    await call("POST", "/queues/jobs/{id}/retry", f"/queues/jobs/{job['id']}/retry")
    await call("GET", "/queues/jobs/{id}", f"/queues/jobs/{job['id']}")
    await call("DELETE", "/queues/jobs/{id}", f"/queues/jobs/{job['id']}")
    await call("GET", "/queues/jobs", "/queues/jobs?limit=2")
    await call("GET", "/queues/jobs/failed")
    await call("GET", "/queues/jobs/stuck")
    await call("GET", "/queues/metrics")
    await call("GET", "/queues/health")
    await call("GET", "/queues")
    await call("POST", "/queues/pause")
    await call("POST", "/queues/resume")
    await call("POST", "/queues/clean", body={"grace": 0, "status": "failed"})
    await call("GET", "/livez")


async def test_rate_limit_per_client_answers_429_with_retry_after(make_client, db_path):
    client = await make_client(rate_limit=2, rate_burst=3)
    statuses = []
    for _ in range(5):
        r = await client.post("/queues/jobs", json={"name": "flood"})
        statuses.append(r.status)
        if r.status == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert (await r.json())["error"]["code"] == "rate_limited"
    assert statuses[:3] == [201, 201, 201]
    assert 429 in statuses[3:]
    # reading and leasing are never limited
    for _ in range(10):
        assert (await client.get("/queues/metrics")).status == 200
        assert (await client.post("/queues/jobs/lease", json={})).status == 200
    metrics = await (await client.get("/queues/metrics")).json()
    assert metrics["total"] == statuses.count(201)  # refused requests added nothing


def _seed_curl_commands() -> list[str]:
    """The commands of the seed's Testing section, each as bash would read it."""
    block = SEED.read_text().split("## Testing", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    for line in block.splitlines():
        if line.startswith("curl"):
            commands.append(line)
        elif commands and line.strip() and not line.startswith("#"):
            commands[-1] += "\n" + line
    return commands


@pytest.mark.skipif(not SEED.exists(), reason="the seed document is not beside the checkout")
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_seed_testing_curl_lines_work_as_written(serve):
    server = serve()
    commands = _seed_curl_commands()
    assert len(commands) == 3
    outputs = []
    for command in commands:
        # The one change: the port of this test's server instead of 3000.
        command = command.replace("localhost:3000", f"127.0.0.1:{server.port}")
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    job, metrics, health = outputs
    assert job["name"] == "send-email" and job["priority"] == 2 and job["state"] == "waiting"
    assert job["data"] == {"to": "test@example.com"}
    seed_metrics = json.loads(re.search(r"```json\n(\{\n  \"queueName\".*?\})\n```", SEED.read_text(), re.S)[1])
    assert list(metrics) == list(seed_metrics)
    assert metrics == {**{k: 0 for k in seed_metrics}, "queueName": "default", "waiting": 1, "total": 1}
    assert list(health) == ["status", "issues", "metrics", "timestamp"]
    assert health["status"] == "healthy" and health["issues"] == [] and health["metrics"] == metrics


def test_error_model_is_the_documented_shape():
    sample = {"error": {"code": "validation_error", "message": "m", "details": []}}
    models.ErrorOut.model_validate(sample)
