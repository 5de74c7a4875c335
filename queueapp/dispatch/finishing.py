"""What a finished attempt tells: its event and its log line (see ledger.py)."""

from __future__ import annotations

import logging
from typing import Any

from ..clock import to_iso
from ..model import Job, JobState

log = logging.getLogger("queueapp.ledger")


def log_finish(job: Job) -> None:
    if job.state is JobState.FAILED:
        log.warning(
            "job failed for good",
            extra={"event": "job.failed", "job": job.id, "queue": job.queue,
                   "job_name": job.name, "attempts": job.attempts_made, "error": job.error},
        )
    elif job.state in (JobState.WAITING, JobState.DELAYED):
        log.debug("job will retry", extra={"event": "job.retry", "job": job.id})


def finish_event(job: Job, counted: bool) -> tuple[str, dict[str, Any]]:
    """The event of a finished attempt: its kind, and what it carries."""
    kind, detail = "retrying", {"error": job.error, "runAt": to_iso(job.run_at), "attempt": job.attempts_made}
    if not counted:
        kind, detail = "released", {}
    elif job.state is JobState.CANCELLED:
        kind, detail = "cancelled", {}
    elif job.state is JobState.COMPLETED:
        kind, detail = "completed", {"result": job.result}
    elif job.state is JobState.FAILED:
        kind, detail = "failed", {"error": job.error}
    return kind, detail
