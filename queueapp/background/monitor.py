"""The monitor: health of every queue, on demand and every interval, with alerts.

``check`` judges one queue now (the API's ``GET /queues/health`` uses it).
``tick`` checks every queue once, and
raises an alert when a queue's status changes, or on every tick while it stays
critical. Alerts go to the log and, when configured, to a webhook; sending never
blocks or breaks the loop (see ``Alerter``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from ..dispatch import ActiveJob, Dispatcher
from ..dispatch.ledger import Running
from ..health import HealthReport, HealthThresholds, judge
from ..store import ReplicaStatus, StandbyGate

log = logging.getLogger("queueapp.monitor")

# A copy this far behind its database (async replication: its fsync is late, or the
# folder's disk is slow) makes every queue's health a warning.
REPLICA_LAG_WARNING_MS = 5_000


class Monitor:
    def __init__(
        self,
        dispatcher: Dispatcher,
        thresholds_for: Callable[[str], HealthThresholds],
        alerter: Alerter | None = None,
        interval_ms: int = 60_000,
        reclaim: Callable[[], int] | None = None,
        running: Running | None = None,
        replica: ReplicaStatus | None = None,
        standbys: StandbyGate | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        # The database's copy (replicate_to) and its synchronous standbys: every queue's
        # health says when the copy lags or fails, or changes go unconfirmed.
        self.replica = replica
        self.standbys = standbys
        # The running jobs judged stuck or not: this process's, or a cluster's (cluster/node.py).
        self.running: Running = running or dispatcher
        # Frees the memory of queues left with no job and no schedule (each tick).
        self.reclaim = reclaim
        self.thresholds_for = thresholds_for
        self.alerter = alerter
        self.interval_ms = interval_ms
        self.last_status: dict[str, str] = {}

    def _stuck(self, a: ActiveJob, now: int) -> bool:
        return a.heartbeat_at < now - self.thresholds_for(a.queue).stuck_after_ms and not _alive_here(a)

    def stuck_ids(self, queue: str, now: int) -> list[int]:
        return sorted(a.id for a in self.running.active.values() if a.queue == queue and self._stuck(a, now))

    def stuck_counts(self, now: int) -> dict[str, int]:
        """Stuck jobs per queue, in one pass over the active jobs."""
        counts: dict[str, int] = {}
        for a in self.running.active.values():
            if self._stuck(a, now):
                counts[a.queue] = counts.get(a.queue, 0) + 1
        return counts

    def check(self, queue: str, now: int | None = None, stuck: int | None = None) -> HealthReport:
        """``stuck``: the queue's stuck jobs when already counted (see stuck_counts)."""
        d = self.dispatcher
        now = d.clock.now_ms() if now is None else now
        q = d.queues.get(queue)
        metrics = d.ledger.metrics
        snapshot = metrics.snapshot(queue, now, bool(q and q.paused))
        _, _, failure_rate = metrics.peek(queue).window(now)
        stuck = len(self.stuck_ids(queue, now)) if stuck is None else stuck
        status, issues = judge(snapshot, failure_rate, stuck, self.thresholds_for(queue))
        replica = self.replica
        if replica is None:
            return HealthReport(queue, status, issues, snapshot, now)
        lag_ms = replica.lag_ms(now)
        if replica.error is not None:
            status, issues = "critical", [*issues, f"the replica at {replica.folder} is not being written for"
                                                   f" {lag_ms / 1000:.0f} s: {replica.error}"]
        elif lag_ms > REPLICA_LAG_WARNING_MS:
            status = "warning" if status == "healthy" else status
            issues = [*issues, f"the replica at {replica.folder} is {lag_ms / 1000:.1f} s behind"]
        gate = self.standbys
        if gate is not None and gate.degraded_since_ms is not None:
            status, issues = "critical", [*issues, (
                f"no {gate.required} standby(s) confirmed changes for {(now - gate.degraded_since_ms) / 1000:.0f} s:"
                f" {'answering without them' if gate.lost == 'degrade' else 'refusing them (503)'}")]
        return HealthReport(queue, status, issues, snapshot, now, replica.as_dict(now))

    async def tick(self, now: int | None = None) -> list[HealthReport]:
        now = self.dispatcher.clock.now_ms() if now is None else now
        if self.reclaim is not None:
            self.reclaim()
        for gone in set(self.last_status) - set(self.dispatcher.queues):
            del self.last_status[gone]
        stuck = self.stuck_counts(now)
        reports = [self.check(queue, now, stuck.get(queue, 0)) for queue in sorted(self.dispatcher.queues)]
        for report in reports:
            previous = self.last_status.get(report.queue, "healthy")
            self.last_status[report.queue] = report.status
            if report.status != previous or report.status == "critical":
                self._alert(report, previous)
        return reports

    def _alert(self, report: HealthReport, previous: str) -> None:
        level = {"healthy": logging.INFO, "warning": logging.WARNING}.get(report.status, logging.ERROR)
        log.log(
            level, "queue health is %s", report.status,
            extra={"event": "health.alert", "queue": report.queue, "status": report.status,
                   "previous": previous, "issues": "; ".join(report.issues) or "-"},
        )
        if self.alerter is not None:
            self.alerter.send(alert_payload(report, previous))

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the monitor must outlive any one bad check
                log.exception("health check failed", extra={"event": "monitor.error"})
            await asyncio.sleep(self.interval_ms / 1000)


def _alive_here(active: ActiveJob) -> bool:
    """An in-process job whose handler task is alive is not stuck: the loop turns and
    its timeout bounds it; so is one that a live node of the cluster runs. (The
    monitor only reads the dispatcher's state.)"""
    return active.in_process and (active.alive_elsewhere or (active.task is not None and not active.task.done()))


def alert_payload(report: HealthReport, previous: str) -> dict[str, Any]:
    issues = "; ".join(report.issues) if report.issues else "no issues"
    return {
        "text": f"queueapp: queue {report.queue} is {report.status} (was {previous}): {issues}",
        "queue": report.queue,
        "status": report.status,
        "previousStatus": previous,
        **report.as_dict(),
    }


class Alerter:
    """Delivers alerts to a webhook from its own task.

    ``send`` only puts the alert in a bounded buffer and returns: when the buffer is
    full the oldest alert is dropped (and logged), so a webhook that is down can
    never hold up the monitor or grow memory. Each alert is tried up to ``attempts``
    times with doubling pauses from ``first_backoff_s``.
    """

    def __init__(
        self, url: str, *, attempts: int = 5, first_backoff_s: float = 1.0,
        timeout_s: float = 5.0, buffer: int = 100,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(buffer)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def send(self, payload: dict[str, Any]) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            log.warning("alert buffer full; oldest alert dropped", extra={"event": "alert.dropped"})
        self._queue.put_nowait(payload)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._task = asyncio.create_task(self._deliver_forever(), name="queueapp-alerter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    async def _deliver_forever(self) -> None:
        while True:
            payload = await self._queue.get()
            await self._deliver(payload)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        assert self._session is not None
        pause = self.first_backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.post(self.url, json=payload) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "alert webhook failed", extra={"event": "alert.retry", "attempt": attempt, "reason": reason}
            )
            if attempt < self.attempts:
                await asyncio.sleep(pause)
                pause *= 2
        self.failed += 1
        log.error("alert not delivered", extra={"event": "alert.failed", "queue": payload.get("queue")})
