"""Traces through the queue, against a real ``queueapp serve`` and a real OTLP/HTTP
receiver on loopback (decoding with the official opentelemetry-proto): a job sent
with a producer's traceparent, run by the Python worker, failing once and then
completing; the enqueue, wait and attempt spans and the worker's spans received with
the right parents and links. With traces off, the producer's context still travels
with the job to its worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import ServeProcess
from node import NodeProcess, until
from otlp import Receiver

TESTS = Path(__file__).parent.parent
PRODUCER_TRACE, PRODUCER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"


def send(url: str, method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=20) as answer:
        return json.loads(answer.read())


def test_a_job_is_traced_from_its_producer_through_the_queue_into_the_worker(serve):
    with Receiver() as receiver:
        quick = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
        appliance: ServeProcess = serve("--otel-endpoint", receiver.url, env=quick)
        job = send(appliance.url, "POST", "/queues/jobs?queue=payments",
                   {"name": "traced-charge", "options": {"attempts": 2, "backoff": {"type": "fixed", "delay": 10}}},
                   {"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
        kept = job["options"]["telemetry"]
        assert kept["traceparent"].startswith(f"00-{PRODUCER_TRACE}-") and kept["tracestate"] == "vendor=1"

        env = {**os.environ, **quick, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
               "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "queueapp", "worker", "--url", appliance.url, "--handlers", "worker_handlers",
             "--queue", "payments", "--name", "charger-1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            until(lambda: worker.poll() is not None
                  or send(appliance.url, "GET", f"/queues/jobs/{job['id']}")["state"] == "completed",
                  timeout=60, what="the job completes on its second attempt")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, worker.stdout.read().decode()

        def complete(spans: list) -> bool:
            names = [(s.service, s.name) for s in spans]
            return (names.count(("queueapp", "process payments")) == 2 and names.count(("queueapp", "wait payments"))
                    == 2 and names.count(("queueapp-worker", "process payments")) == 2
                    and names.count(("queueapp-worker", "charge card")) == 2)

        spans = receiver.wait_for(complete)

    assert {s.trace_id for s in spans} == {PRODUCER_TRACE}  # one trace, the producer's
    [sent] = [s for s in spans if s.name == "send payments"]
    assert (sent.service, sent.kind, sent.parent_span_id) == ("queueapp", "producer", PRODUCER_SPAN)
    assert sent.attributes["messaging.system"] == "queueapp"
    assert sent.attributes["messaging.destination.name"] == "payments"
    assert sent.attributes["messaging.batch.message_count"] == 1
    assert kept["traceparent"] == f"00-{PRODUCER_TRACE}-{sent.span_id}-01"  # the job keeps the enqueue's

    waits = sorted((s for s in spans if s.name == "wait payments"), key=lambda s: s.start_ns)
    assert all(w.parent_span_id == sent.span_id and w.kind == "internal" for w in waits)
    assert all(w.attributes["messaging.message.id"] == job["id"] and w.attributes["queueapp.wait.ms"] >= 0
               for w in waits)

    attempts = sorted((s for s in spans if s.service == "queueapp" and s.name == "process payments"),
                      key=lambda s: s.attributes["queueapp.attempt"])
    first, second = attempts
    assert all(a.parent_span_id == sent.span_id and a.kind == "consumer" for a in attempts)
    assert (first.attributes["queueapp.outcome"], first.status, first.status_message) == (
        "retrying", 2, "RuntimeError: card declined")
    assert (second.attributes["queueapp.outcome"], second.status) == ("completed", 0)
    assert second.links == [(PRODUCER_TRACE, first.span_id)]  # a retry links to the attempt before
    assert first.attributes["queueapp.worker"] == "charger-1"
    assert all(a.start_ns <= a.end_ns for a in attempts) and first.end_ns <= second.start_ns

    workers = {s.attributes["queueapp.attempt"]: s for s in spans
               if s.service == "queueapp-worker" and s.name == "process payments"}
    assert workers[1].parent_span_id == first.span_id and workers[2].parent_span_id == second.span_id
    assert (workers[1].status, workers[2].status) == (2, 0)
    charges = [s for s in spans if s.name == "charge card"]
    assert {c.parent_span_id for c in charges} == {workers[1].span_id, workers[2].span_id}
    done = send(appliance.url, "GET", f"/queues/jobs/{job['id']}")
    assert done["result"]["traceparent"] == f"00-{PRODUCER_TRACE}-{second.span_id}-01"


def test_with_traces_off_the_producers_context_travels_with_the_job(serve):
    appliance: ServeProcess = serve()
    url = appliance.url
    one = send(url, "POST", "/queues/jobs", {"name": "a"}, {"traceparent": TRACEPARENT})
    assert one["options"]["telemetry"] == {"traceparent": TRACEPARENT}
    bulk = send(url, "POST", "/queues/jobs/bulk", {"jobs": [
        {"name": "b"}, {"name": "c", "options": {"telemetry": {"traceparent": f"00-{'1' * 32}-{'2' * 16}-00"}}}]},
        {"traceparent": TRACEPARENT})["jobs"]
    assert [j["options"]["telemetry"]["traceparent"] for j in bulk] == [TRACEPARENT, f"00-{'1' * 32}-{'2' * 16}-00"]
    plain = send(url, "POST", "/queues/jobs", {"name": "d"}, {"traceparent": "00-not-a-trace-01"})
    assert "telemetry" not in plain["options"]  # a malformed traceparent is no trace, never a refusal
    leased = {j["name"]: j for j in send(url, "POST", "/queues/jobs/lease", {"max": 10})["jobs"]}
    assert leased["a"]["traceparent"] == TRACEPARENT and leased["b"]["traceparent"] == TRACEPARENT
    assert leased["c"]["traceparent"] == f"00-{'1' * 32}-{'2' * 16}-00"
    assert leased["d"]["traceparent"] is None and leased["d"]["tracestate"] is None


def test_the_typescript_workers_span_is_the_child_of_its_attempt(serve, tmp_path):
    script = TESTS.parent / "clients" / "typescript" / "client" / "test" / "traced-worker.js"
    with Receiver() as receiver:
        appliance: ServeProcess = serve("--otel-endpoint", receiver.url, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
        job = send(appliance.url, "POST", "/queues/jobs?queue=cards", {"name": "traced-charge"},
                   {"traceparent": TRACEPARENT})
        worker = NodeProcess(script, log=tmp_path / "ts-worker.log", env={
            "QUEUEAPP_URL": appliance.url, "QUEUEAPP_QUEUE": "cards", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
        try:
            until(lambda: worker.proc.poll() is not None
                  or send(appliance.url, "GET", f"/queues/jobs/{job['id']}")["state"] == "completed",
                  timeout=60, what="the TypeScript worker completes the job")
            assert worker.terminate() == 0, worker.output()
        finally:
            worker.kill()
        spans = receiver.wait_for(lambda spans: {(s.service, s.name) for s in spans} >= {
            ("queueapp", "process cards"), ("queueapp-ts-worker", "process cards")})

    [attempt] = [s for s in spans if s.service == "queueapp" and s.name == "process cards"]
    [ran] = [s for s in spans if s.service == "queueapp-ts-worker"]
    assert ran.trace_id == attempt.trace_id == PRODUCER_TRACE
    assert ran.parent_span_id == attempt.span_id and ran.kind == "consumer"
    assert ran.attributes["messaging.message.id"] == job["id"] and ran.attributes["queueapp.worker"] == "ts-charger"
    result = send(appliance.url, "GET", f"/queues/jobs/{job['id']}")["result"]
    assert result["traceparent"] == f"00-{PRODUCER_TRACE}-{attempt.span_id}-01"


def test_a_trace_its_producer_does_not_record_is_kept_and_adds_no_span(serve):
    unsampled = f"00-{'c' * 32}-{'d' * 16}-00"
    with Receiver() as receiver:
        appliance: ServeProcess = serve("--otel-endpoint", receiver.url, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
        quiet = send(appliance.url, "POST", "/queues/jobs", {"name": "q"}, {"traceparent": unsampled})
        loud = send(appliance.url, "POST", "/queues/jobs", {"name": "l"}, {"traceparent": TRACEPARENT})
        assert quiet["options"]["telemetry"] == {"traceparent": unsampled}
        leased = {j["name"]: j for j in send(appliance.url, "POST", "/queues/jobs/lease", {"max": 2})["jobs"]}
        assert leased["q"]["traceparent"] == unsampled
        for job in (quiet, loud):
            send(appliance.url, "POST", f"/queues/jobs/{job['id']}/complete",
                 {"leaseToken": leased[job["name"]]["leaseToken"]})
        spans = receiver.wait_for(lambda spans: any(s.name == "process default" for s in spans))
    assert {s.trace_id for s in spans} == {PRODUCER_TRACE}


class Capture:
    """An HTTP peer on loopback that keeps each request's path and headers."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.seen: list[tuple[str, dict[str, str]]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                capture.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def headers_of(self, path: str) -> dict[str, str]:
        return next(headers for seen, headers in self.seen if seen == path)


def test_http_jobs_callbacks_and_schedule_runs_carry_the_trace_on(serve):
    capture = Capture()
    with Receiver() as receiver:
        appliance: ServeProcess = serve("--otel-endpoint", receiver.url, "--http-allowed-hosts", "127.0.0.1",
                                        "--callback-secret", "whsec-traces", env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
        url = appliance.url
        send(url, "POST", "/queues/jobs?queue=hooks", {"name": "http", "data": {"url": f"{capture.url}/ping"}},
             {"traceparent": TRACEPARENT})
        charged = send(url, "POST", "/queues/jobs?queue=cards", {"name": "charge", "options": {
            "callbackUrl": f"{capture.url}/hook"}}, {"traceparent": TRACEPARENT})
        (leased,) = send(url, "POST", "/queues/jobs/lease?queue=cards", {"max": 1})["jobs"]
        send(url, "POST", f"/queues/jobs/{charged['id']}/complete", {"leaseToken": leased["leaseToken"]})
        send(url, "POST", "/queues/schedules?queue=reports",
             {"name": "nightly", "jobName": "report", "cron": "0 3 * * *"})
        send(url, "POST", "/queues/schedules/nightly/run?queue=reports")
        until(lambda: {p for p, _ in capture.seen} >= {"/ping", "/hook"}, timeout=60, what="the http job and callback")
        spans = receiver.wait_for(lambda spans: {s.name for s in spans} >= {
            "process hooks", "process queueapp.callbacks", "send reports"})
    capture.server.shutdown()

    [ping] = [s for s in spans if s.name == "process hooks"]
    assert capture.headers_of("/ping")["traceparent"] == f"00-{PRODUCER_TRACE}-{ping.span_id}-01"
    [callback] = [s for s in spans if s.name == "process queueapp.callbacks"]
    assert callback.trace_id == PRODUCER_TRACE  # the callback goes on in the finished job's trace
    assert capture.headers_of("/hook")["traceparent"] == f"00-{PRODUCER_TRACE}-{callback.span_id}-01"
    [run] = [s for s in spans if s.name == "send reports"]
    assert run.parent_span_id == "" and run.trace_id != PRODUCER_TRACE  # a trace of its own
    assert run.attributes["queueapp.schedule"] == "nightly"
