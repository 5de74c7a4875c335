"""The wire shape of what the API answers: written here, and only here."""

from __future__ import annotations

from typing import Any

from ..clock import to_iso
from ..cron import next_cron_ms, next_every_ms, parse_zone
from ..events import JobEvent
from ..health import HealthReport
from ..model import Job, Schedule
from ..rule_words import rule_words
from ..telemetry import TraceContext


def job_out(job: Job) -> dict[str, Any]:
    """A job as the HTTP API shows it (camelCase, ISO times, string id)."""
    return {
        "id": str(job.id),
        "queue": job.queue,
        "name": job.name,
        "data": job.data,
        "state": str(job.state),
        "priority": job.priority,
        "attempts": job.attempts,
        "attemptsMade": job.attempts_made,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "errors": job.errors,
        "createdAt": to_iso(job.created_at),
        "runAt": to_iso(job.run_at),
        "startedAt": to_iso(job.started_at),
        "finishedAt": to_iso(job.finished_at),
        "jobId": job.job_key,
        "options": job.options,
        "worker": job.worker,
    }


def leased_out(job: Job, trace: TraceContext | None) -> dict[str, Any]:
    return {**job_out(job), "leaseToken": job.lease_token, "leaseExpiresAt": to_iso(job.lease_expires_at),
            "traceparent": None if trace is None else trace.traceparent,
            "tracestate": None if trace is None else trace.state}


def heartbeat_out(job: Job) -> dict[str, Any]:
    return {**job_out(job), "leaseExpiresAt": to_iso(job.lease_expires_at)}


def jobs_out(jobs: list[Job]) -> dict[str, Any]:
    return {"jobs": [job_out(j) for j in jobs]}


def schedule_out(schedule: Schedule) -> dict[str, Any]:
    return {
        "queue": schedule.queue,
        "name": schedule.name,
        "jobName": schedule.job_name,
        "data": schedule.data,
        "options": schedule.options,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "everyMs": schedule.every_ms,
        "missed": schedule.missed,
        "overlap": schedule.overlap,
        "enabled": schedule.enabled,
        "nextRunAt": to_iso(schedule.next_run_at) if schedule.enabled else None,
        "lastRunAt": to_iso(schedule.last_run_at),
        "lastJobId": None if schedule.last_job_id is None else str(schedule.last_job_id),
        "createdAt": to_iso(schedule.created_at),
        "updatedAt": to_iso(schedule.updated_at),
        "description": rule_words(schedule.cron, schedule.every_ms, schedule.timezone),
        "upcoming": [to_iso(t) for t in upcoming(schedule)],
    }


def upcoming(schedule: Schedule, count: int = 5) -> list[int]:
    """The next ``count`` fire times of an enabled schedule."""
    if not schedule.enabled or schedule.next_run_at is None:
        return []
    times = [schedule.next_run_at]
    zone = parse_zone(schedule.timezone)
    while len(times) < count:
        times.append(next_cron_ms(schedule.cron, zone, times[-1]) if schedule.cron
                     else next_every_ms(schedule.anchor_at, schedule.every_ms or 1, times[-1]))
    return times


def health_out(report: HealthReport) -> dict[str, Any]:
    return report.as_dict()


def event_out(event: JobEvent) -> dict[str, Any]:
    return {
        "type": event.type, "jobId": str(event.job_id), "queue": event.queue,
        "name": event.name, "at": to_iso(event.at), **event.detail,
    }
