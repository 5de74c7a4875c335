"""A Python client for a remote appliance, and a worker that runs handlers on the
jobs it leases.

    async with QueueClient("http://127.0.0.1:3000") as client:
        await client.add_job("resize", {"id": 7})
        worker = RemoteWorker(client, registry, concurrency=5)
        await worker.run(stop_event)

The worker leases only as many jobs as it has free slots, heartbeats each running
job at a third of its lease, completes or fails it, and on stop hands back (without
counting the attempt) whatever it cannot finish within its grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
from typing import Any
from urllib.parse import quote

import aiohttp

from .coalesce import AddCoalescer, job_index
from .model import Job, JobState
from .telemetry import parse_traceparent
from .tls import client_context
from .worker_spans import job_span
from .workers.registry import HandlerRegistry, JobContext, run_handler

log = logging.getLogger("queueapp.worker")


class QueueApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def _refused_job(exc: BaseException) -> int | None:
    """The one job of a bulk that the appliance refused, when that is what ``exc`` says."""
    if isinstance(exc, QueueApiError) and exc.status == 400 and exc.details:
        return job_index(exc.details[0].get("field"))
    return None


class WorkerRefused(Exception):
    """The appliance refuses this worker (wrong or missing token): retrying cannot help."""


def _retryable(exc: BaseException) -> bool:
    """A failure that may pass: the appliance briefly unreachable, busy or restarting."""
    if isinstance(exc, QueueApiError):
        return exc.status >= 500 or exc.code == "bad_response"
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


class QueueClient:
    def __init__(
        self, base_url: str, *, token: str | None = None, queue: str = "default",
        timeout_s: float = 60.0, cacert: str | None = None, coalesce: bool = True,
        user_agent: str | None = None,
    ) -> None:
        """``cacert``: CA certificate(s) to verify an https:// appliance with; the
        server is always verified (against the system's CAs by default).
        ``coalesce``: concurrent ``add_job`` calls go as bulk requests (see
        coalesce.py); each still returns its own job once it is committed."""
        self._adds = AddCoalescer(self._send_bulk, _refused_job) if coalesce else None
        self.base_url = base_url.rstrip("/")
        self.queue = queue
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if user_agent:  # who is calling, as the audit trail records it (the CLI says so)
            headers["User-Agent"] = user_agent
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(ssl=client_context(cacert)),
        )

    async def __aenter__(self) -> QueueClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._adds is not None:
            await self._adds.close()
        await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
        also_ok: tuple[int, ...] = (), queued: bool = True,
    ) -> Any:
        """The answer's JSON; QueueApiError for an error status not in ``also_ok``.
        ``queued``: send the client's queue (routes of every queue: False)."""
        url = f"{self.base_url}{path}"
        params = {**({"queue": self.queue} if queued else {}), **(query or {})}
        async with self._session.request(method, url, params=params, json=body) as r:
            text = await r.text(errors="replace")
            try:
                payload = json.loads(text) if text else None
            except ValueError:  # a proxy's HTML error page, say
                raise QueueApiError(r.status, "bad_response", f"not a queueapp answer: {text[:120]!r}") from None
            if r.status >= 400 and r.status not in also_ok:
                error = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
                raise QueueApiError(r.status, error.get("code", "error"), error.get("message", ""),
                                    error.get("details"))
            return payload

    async def request_any(self, method: str, path: str) -> Any:
        """For answers whose 503 carries the same body as their 200 (health)."""
        return await self.request(method, path, also_ok=(503,))

    async def add_job(self, name: str, data: dict[str, Any] | None = None,
                      options: dict[str, Any] | None = None) -> dict[str, Any]:
        job = {"name": name, "data": data or {}, "options": options or {}}
        if any(str(ref).startswith("#") for ref in (options or {}).get("dependsOn") or ()):
            # "#n" names a job of the same request; adds are sent together in bulks
            raise ValueError('dependsOn "#n" names a job of the same request: use add_bulk, or job ids')
        if self._adds is None:
            return await self.request("POST", "/queues/jobs", job)
        return await self._adds.add(job)

    async def add_bulk(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Jobs (each ``name``, ``data``, ``options``) in one request, all or none."""
        return await self._send_bulk(jobs)

    async def _send_bulk(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return (await self.request("POST", "/queues/jobs/bulk", {"jobs": jobs}))["jobs"]

    async def get_job(self, job_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/queues/jobs/{job_id}")

    async def lease(self, names: list[str] | None = None, max_jobs: int = 1,
                    lease_ms: int = 30_000, wait_ms: int = 0, worker: str | None = None) -> list[dict[str, Any]]:
        """Up to ``max_jobs`` due jobs; ``worker`` is the name kept with each as who ran it."""
        body: dict[str, Any] = {"max": max_jobs, "leaseMs": lease_ms, "waitMs": wait_ms}
        if names:
            body["names"] = names
        if worker:
            body["worker"] = worker
        return (await self.request("POST", "/queues/jobs/lease", body))["jobs"]

    async def heartbeat(self, job_id: str, token: str, progress: Any = None,
                        lease_ms: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"leaseToken": token}
        if progress is not None:
            body["progress"] = progress
        if lease_ms is not None:
            body["leaseMs"] = lease_ms
        return await self.request("POST", f"/queues/jobs/{job_id}/heartbeat", body)

    async def complete(self, job_id: str, token: str, result: Any = None) -> dict[str, Any]:
        return await self.request("POST", f"/queues/jobs/{job_id}/complete",
                                  {"leaseToken": token, "result": result})

    async def complete_many(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return (await self.request("POST", "/queues/jobs/complete", {"jobs": items}))["results"]

    async def fail(self, job_id: str, token: str, error: str, retry: bool = True,
                   retry_after_ms: int | None = None, stack: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"leaseToken": token, "error": error, "retry": retry}
        if retry_after_ms is not None:
            body["retryAfterMs"] = retry_after_ms
        if stack:
            body["stack"] = stack
        return await self.request("POST", f"/queues/jobs/{job_id}/fail", body)

    async def log(self, job_id: str, token: str, lines: list[str]) -> int:
        """Append lines to a leased job's log; the number of its last line."""
        return int((await self.request("POST", f"/queues/jobs/{job_id}/log",
                                       {"leaseToken": token, "lines": lines}))["lastSeq"])

    async def job_log(self, job_id: str, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        """The job's log lines after ``after`` (``{"lines": [...], "lastSeq": n}``)."""
        return await self.request("GET", f"/queues/jobs/{job_id}/logs",
                                  query={"after": str(after), "limit": str(limit)})

    async def release(self, job_id: str, token: str) -> dict[str, Any]:
        return await self.request("POST", f"/queues/jobs/{job_id}/release", {"leaseToken": token})

    # group flow control (docs/api.md, Groups) ------------------------------------------

    async def groups(self, limit: int = 100) -> dict[str, Any]:
        """The queue's group policy, aging, and its keys, the most waiting first."""
        return await self.request("GET", "/queues/groups", query={"limit": str(limit)})

    async def set_group_policy(self, concurrency: int | None = None,
                               rate: tuple[int, int] | None = None) -> dict[str, Any]:
        """Limit every key: ``concurrency`` active jobs, ``rate`` (max, per_ms) starts."""
        return await self.request("PUT", "/queues/groups/policy", _limits(concurrency, rate))

    async def set_group_limits(self, key: str, concurrency: int | None = None,
                               rate: tuple[int, int] | None = None) -> dict[str, Any]:
        """Limits of ``key``'s own, replacing the queue's."""
        return await self.request("PUT", f"/queues/groups/{quote(key, safe='')}", _limits(concurrency, rate))

    async def pause_group(self, key: str, duration_ms: int | None = None) -> dict[str, Any]:
        """Start none of ``key``'s jobs for ``duration_ms`` (None: until resumed)."""
        body = None if duration_ms is None else {"durationMs": duration_ms}
        return await self.request("POST", f"/queues/groups/{quote(key, safe='')}/pause", body)

    async def resume_group(self, key: str) -> dict[str, Any]:
        return await self.request("POST", f"/queues/groups/{quote(key, safe='')}/resume")


def _limits(concurrency: int | None, rate: tuple[int, int] | None) -> dict[str, Any]:
    return {"concurrency": concurrency, "rate": None if rate is None else {"max": rate[0], "perMs": rate[1]}}


def job_from_api(payload: dict[str, Any]) -> Job:
    """The API's job object as the Job a handler's context wraps."""
    return Job(
        id=int(payload["id"]), queue=payload["queue"], name=payload["name"],
        state=JobState(payload["state"]), priority=payload["priority"], data=payload["data"],
        options=payload.get("options", {}), attempts=payload["attempts"],
        attempts_made=payload["attemptsMade"], progress=payload["progress"],
        result=payload["result"], error=payload["error"], errors=payload["errors"],
        job_key=payload["jobId"], created_at=0, run_at=0, started_at=None, finished_at=None,
        lease_token=payload.get("leaseToken"), worker=payload.get("worker"),
    )


class RemoteWorker:
    def __init__(
        self, client: QueueClient, registry: HandlerRegistry, *, concurrency: int = 5,
        lease_ms: int = 30_000, poll_ms: int = 5_000, grace_s: float = 10.0, name: str | None = None,
    ) -> None:
        self.client = client
        # kept with every job it runs: host and process unless told otherwise
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.registry = registry
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        # Long-poll length; also the longest a stop waits for an open poll to return.
        self.poll_ms = poll_ms
        self.grace_s = grace_s
        self.running: dict[str, asyncio.Task[None]] = {}
        self.tokens: dict[str, str] = {}
        self.completed = 0
        self.failed = 0
        self.released = 0

    async def run(self, stop: asyncio.Event) -> None:
        names = self.registry.names()
        if not names:
            raise ValueError("the worker has no handlers: name a module that registers some")
        log.info("worker started", extra={"event": "worker.started", "names": ",".join(names)})
        backoff = LeaseBackoff()
        while not stop.is_set():
            free = self.concurrency - len(self.running)
            if free <= 0:
                await _first_of(stop, *self.running.values())
                continue
            try:
                leased = await self.client.lease(names, free, self.lease_ms, self.poll_ms, self.name)
            except QueueApiError as exc:
                if exc.status in (401, 403):
                    raise WorkerRefused(f"the appliance refused this worker ({exc}); check the token") from None
                log.warning("lease failed; retrying", extra={"event": "worker.lease_failed", "error": str(exc)})
                await _first_of(stop, timeout=backoff.next())
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("lease failed; retrying", extra={"event": "worker.lease_failed", "error": str(exc)})
                await _first_of(stop, timeout=backoff.next())
                continue
            backoff.reset()
            for payload in leased:
                if stop.is_set():  # leased while stopping: hand it straight back
                    await self._release(payload["id"], payload["leaseToken"])
                    continue
                self._start(payload)
        await self._drain()

    def _start(self, payload: dict[str, Any]) -> None:
        job_id = payload["id"]
        self.tokens[job_id] = payload["leaseToken"]
        task = asyncio.create_task(self._run_one(payload), name=f"remote-job-{job_id}")
        self.running[job_id] = task
        task.add_done_callback(lambda _t: self.running.pop(job_id, None))

    async def _run_one(self, payload: dict[str, Any]) -> None:
        job = job_from_api(payload)
        job_id, token = payload["id"], payload["leaseToken"]
        handler = self.registry.get(job.name)
        assert handler is not None
        beats = asyncio.create_task(self._heartbeat_forever(job_id, token))

        async def progress(value: Any) -> None:
            await self.client.heartbeat(job_id, token, value)

        async def log(lines: list[str]) -> None:
            await self.client.log(job_id, token, lines)

        trace = parse_traceparent(payload.get("traceparent"), payload.get("tracestate"))
        try:
            with job_span(job, trace, self.name) as ended:
                outcome = await run_handler(handler, JobContext(job, progress, log, trace), job.timeout_ms)
                ended(outcome.error)
        except asyncio.CancelledError:
            # stopping: hand the job back, its attempt not counted
            beats.cancel()
            await asyncio.shield(self._release(job_id, token))
            raise
        try:
            if outcome.error is None:
                await self._answer(lambda: self.client.complete(job_id, token, outcome.result), completed=True)
            else:
                await self._answer(lambda: self.client.fail(job_id, token, outcome.error or "failed",
                                                            outcome.retry, outcome.retry_after_ms,
                                                            outcome.stack))
        finally:
            beats.cancel()

    async def _answer(self, call: Any, completed: bool = False) -> None:
        """Deliver an outcome, trying again while the appliance is unreachable or
        answers 5xx, for as long as the lease could still be valid (the heartbeats
        keep it so); a 4xx is final (409: the lease was lost)."""
        deadline = asyncio.get_running_loop().time() + self.lease_ms / 1000
        pause = 0.1
        while True:
            try:
                await call()
                break
            except Exception as exc:
                if not _retryable(exc) or asyncio.get_running_loop().time() + pause > deadline:
                    log.warning("answer refused", extra={"event": "worker.answer_refused", "error": str(exc)})
                    return
                log.info("answer not delivered; trying again", extra={"event": "worker.answer_retry",
                                                                       "error": str(exc)})
                await asyncio.sleep(random.uniform(pause / 2, pause))
                pause = min(pause * 2, 2.0)
        if completed:
            self.completed += 1
        else:
            self.failed += 1

    async def _heartbeat_forever(self, job_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.client.heartbeat(job_id, token, lease_ms=self.lease_ms)
            except QueueApiError as exc:
                if exc.status == 409:  # cancelled or lost: stop the handler
                    task = self.running.get(job_id)
                    if task is not None:
                        task.cancel()
                    return
            except (aiohttp.ClientError, TimeoutError):
                pass  # the appliance is briefly unreachable; the lease has slack

    async def _release(self, job_id: str, token: str) -> None:
        with contextlib.suppress(QueueApiError, aiohttp.ClientError, TimeoutError):
            await self.client.release(job_id, token)
            self.released += 1

    async def _drain(self) -> None:
        """Let running jobs finish for up to ``grace_s``; hand back the rest."""
        tasks = list(self.running.values())
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=self.grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        log.info("worker stopped", extra={"event": "worker.stopped", "completed": self.completed,
                                           "failed": self.failed, "released": self.released})


class LeaseBackoff:
    """Pauses between failed lease requests: exponential from 0.1 s to 2 s, each a
    random part of that (full jitter), so that workers that lost the appliance
    together do not all come back in the same instant; back to the start on success."""

    def __init__(self, first_s: float = 0.1, most_s: float = 2.0) -> None:
        self.first_s = first_s
        self.most_s = most_s
        self.ceiling = first_s

    def next(self) -> float:
        pause = random.uniform(0, self.ceiling)
        self.ceiling = min(self.ceiling * 2, self.most_s)
        return pause

    def reset(self) -> None:
        self.ceiling = self.first_s


async def _first_of(stop: asyncio.Event, *tasks: asyncio.Task[Any], timeout: float | None = None) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, *tasks}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
