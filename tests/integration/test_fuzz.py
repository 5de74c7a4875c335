"""Generated bodies, queries and ids against every route of a real ``queueapp serve``:
no 500, and every answer fits the model its route declares (or the error shape)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queueapp.api import endpoints
from queueapp.api.models import ErrorOut

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=40)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

FIELD_NAMES = [
    "name", "data", "options", "priorityFactors", "jobs", "scheduledTime", "names", "max",
    "leaseMs", "waitMs", "leaseToken", "progress", "result", "error", "retry", "grace",
    "status", "limit", "priority", "attempts", "delay", "backoff", "timeout", "jobId",
    "removeOnComplete", "removeOnFail", "userTier", "urgency", "businessImpact", "deadline",
    "cron", "everyMs", "timezone", "missed", "overlap", "enabled", "jobName",
]
plausible_values = (
    json_values
    | st.sampled_from(["send-email", "", "x" * 200, "2026-12-25T09:00:00Z", "2026-12-25T09:00:00",
                       "premium", "critical", "exponential", "completed", "0 9 * * *", "*/5 * * * *",
                       "61 * * * *", "Europe/Berlin", "Mars/Base", "skip", "all"])
    | st.integers(-5, 10) | st.sampled_from([0, 1, 5, 100, 1000, 30_001, 10_001])
)
shaped = st.recursive(
    st.dictionaries(st.sampled_from(FIELD_NAMES), plausible_values, max_size=5),
    lambda inner: st.dictionaries(st.sampled_from(FIELD_NAMES), inner | plausible_values, max_size=4)
    | st.fixed_dictionaries({"jobs": st.lists(inner, max_size=3)}),
    max_leaves=10,
)
bodies = st.one_of(
    shaped.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
)
queries = st.dictionaries(
    st.sampled_from(["queue", "limit", "state", "cursor", "name"]),
    st.sampled_from(["default", "bad/name", "-1", "0", "5", "abc", "waiting", "99999999999999999999", ""]),
    max_size=3,
)
ids = st.sampled_from(["1", "2", "0", "abc", "999999", "-3", "1" * 30])

OPERATIONS = [(e.method, e.path) for e in endpoints()]
DECLARED = {(e.method, e.path): e.responses for e in endpoints()}


CONTENT = {(e.method, e.path): e.content_type for e in endpoints()}


def _request(port: int, method: str, target: str, body: bytes) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, target, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        kind = response.getheader("Content-Type", "")
        if response.status < 400 and not kind.startswith("application/json"):
            # a stream (events) or text (Prometheus): the status and type are the answer
            return response.status, kind
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from conftest import ServeProcess

    server = ServeProcess(tmp_path_factory.mktemp("fuzz") / "fuzz.db", "--audit-interval-ms", "600000").start()
    # some jobs to act upon, of names that generated bodies use
    for _ in range(3):
        _request(server.port, "POST", "/queues/jobs", json.dumps({"name": "send-email"}).encode())
    yield server
    # after everything the fuzzer sent, memory and the table still agree
    status, report = _request(server.port, "GET", "/debug/audit", b"")
    assert (status, report) == (200, {"ok": True, "problems": []}), report
    server.terminate()


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(OPERATIONS), body=bodies, query=queries, job_id=ids)
def test_no_route_answers_500_or_breaks_its_schema(fuzz_server, op, body, query, job_id):
    from urllib.parse import urlencode

    method, path = op
    target = path.replace("{id}", job_id).replace("{name}", job_id)
    if query:
        target += "?" + urlencode(query)
    if path == "/queues/jobs/lease":
        # keep long polls short: the fuzzer is not testing waiting
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("waitMs"), int):
                parsed["waitMs"] = min(parsed["waitMs"], 50)
                body = json.dumps(parsed).encode()
        except ValueError:
            pass
    status, payload = _request(fuzz_server.port, method, target, body)
    assert status < 500, (method, target, body, payload)
    if status >= 400:
        ErrorOut.model_validate(payload)
    elif CONTENT[(method, path)] != "application/json":
        assert payload.startswith(CONTENT[(method, path)]), payload
    else:
        model = DECLARED[(method, path)].get(status)
        assert model is not None, (method, target, status)
        model.model_validate(payload)
