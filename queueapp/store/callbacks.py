"""options.callbackUrl: when a job completes or fails for good, an ``http`` job that
POSTs its outcome is added in the same transaction (so a crash cannot lose it), in
the queue ``queueapp.callbacks``. The ``http`` job signs the body when it sends it
(workers/http_call.py), so the signature's time is the time of sending."""

from __future__ import annotations

import sqlite3

from ..clock import to_iso
from ..model import DEFAULT_ATTEMPTS, Job, JobState, NewJob
from . import dependencies
from .adds import IdAllocator, add_job_groups
from .records import Added, Change

CALLBACK_QUEUE = "queueapp.callbacks"
CALLBACK_JOB = "http"


def outcome_of(job: Job) -> dict[str, object]:
    """What a callback says of a finished job."""
    told: dict[str, object] = {"id": str(job.id), "queue": job.queue, "name": job.name, "state": str(job.state),
                               "attempts": job.attempts, "attemptsMade": job.attempts_made,
                               "finishedAt": to_iso(job.finished_at)}
    if job.state == "completed":
        told["result"] = job.result
    else:
        told["error"] = job.error
    return told


class Callbacks:
    """Adds callback jobs with the store's id allocator (one object per store, so
    that completions passing it still merge in the writer)."""

    def __init__(self, ids: IdAllocator) -> None:
        self.ids = ids

    def after(self, conn: sqlite3.Connection, change: Change, now: int) -> None:
        """What a job that completed or failed for good changes in its transaction:
        its dependents move on (``change.settled``), and its callback job, if it
        asked for one, is added (``change.spawned``)."""
        self.tell(conn, change.job, change, now)
        dependencies.follow(conn, change, str(change.job.state), now, self)

    def tell(self, conn: sqlite3.Connection, job: Job, change: Change, now: int) -> None:
        """``job``'s callback, if it finished with one, added to ``change.spawned``."""
        url = job.options.get("callbackUrl")
        if not url or job.state not in (JobState.COMPLETED, JobState.FAILED):
            return
        data = {"url": url, "method": "POST", "body": outcome_of(job), "sign": True}
        new = NewJob(CALLBACK_QUEUE, CALLBACK_JOB, data, priority=3, attempts=DEFAULT_ATTEMPTS[1], run_at=now)
        added: list[Added] = list(add_job_groups(conn, [([new], now, None)], self.ids)[0])
        change.spawned.extend(added)
