"""Built-in job types that do real work: ``http``, ``send-email``,
``process-payment``, ``backup-data`` and ``generate-report``.

Each is an in-process handler; a job of one of these names runs in the appliance
(unless the type is left out of the ``builtin_jobs`` setting, and then it waits for
an external worker like any other job).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yarl import URL

from ..builtin_settings import BUILTIN_JOBS, BuiltinSettings
from ..clock import Clock, to_iso
from ..options import MAX_DELAY_MS, is_queue_name
from ..store import Store
from .destinations import DestinationPolicy, DestinationRefused
from .email import send_email_job, validate_email_data
from .http_call import HttpCaller, http_job, validate_http_data
from .registry import HandlerRegistry, JobContext, UnrecoverableError


class BuiltinJobs:
    def __init__(self, store: Store, clock: Clock, settings: BuiltinSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.http = HttpCaller(DestinationPolicy(settings.http_allowed_hosts))

    def register(self, registry: HandlerRegistry, names: tuple[str, ...] = BUILTIN_JOBS) -> None:
        handlers = {
            "http": (lambda job: http_job(self.http, job, self.settings.callback_secret), self.validate_http),
            "send-email": (lambda job: send_email_job(self.settings.smtp, job), validate_email_data),
            "process-payment": (self.process_payment, validate_payment_data),
            "backup-data": (self.backup_data, None),
            "generate-report": (self.generate_report, validate_report_data),
        }
        for name in names:
            handler, validator = handlers[name]
            registry.register(name, handler)
            if validator is not None:
                registry.validator(name, validator)

    async def close(self) -> None:
        await self.http.close()

    def validate_http(self, data: dict[str, Any]) -> None:
        """The data's shape, and a URL whose host is an address the policy refuses."""
        validate_http_data(data)
        try:
            self.http.policy.check_literal(URL(data["url"]).host or "")
        except DestinationRefused as exc:
            raise ValueError(f"data.url: {exc}") from None

    async def process_payment(self, job: JobContext) -> dict[str, Any]:
        """POST the payment to the configured endpoint; the job id is the
        idempotency key, so the provider can tell a retry from a second payment."""
        if not self.settings.payment_url:
            raise UnrecoverableError("process-payment needs a payment endpoint: set payment_url in the configuration")
        headers = {"Authorization": f"Bearer {self.settings.payment_token}"} if self.settings.payment_token else {}
        body = {"amount": job.data["amount"], "currency": job.data.get("currency", "USD"),
                "userId": job.data["userId"], "reference": job.id}
        return await self.http.call(job, self.settings.payment_url, method="POST", headers=headers,
                                    body=body, checked=False)  # the operator's own endpoint

    async def backup_data(self, job: JobContext) -> dict[str, Any]:
        """An online backup of the store, keeping the newest ``backup_keep``."""
        folder = Path(self.settings.backup_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"queueapp-{stamp}.db"
        size = await self.store.backup_to(str(path))
        backups = sorted(folder.glob("queueapp-*.db"))
        removed = [str(old) for old in backups[: max(0, len(backups) - self.settings.backup_keep)]]
        for old in removed:
            Path(old).unlink()
        return {"path": str(path.resolve()), "size": size, "removed": removed}

    async def generate_report(self, job: JobContext) -> dict[str, Any]:
        """Counts, throughput, failure reasons and the slowest job types of a queue
        over a window, written as JSON and CSV."""
        queue = job.data.get("queue", job.queue)
        window = job.data.get("windowMs", 24 * 3600 * 1000)
        until = self.clock.now_ms()
        figures = await self.store.report(queue, until - window, until)
        by_name = [{"name": r.name, "completed": r.completed, "failed": r.failed,
                    "avgProcessingMs": r.avg_processing_ms, "maxProcessingMs": r.max_processing_ms}
                   for r in figures.by_name]
        completed = sum(r.completed for r in figures.by_name)
        report = {
            "queue": queue,
            "from": _iso(until - window), "until": _iso(until), "windowMs": window,
            "counts": figures.counts,
            "completed": completed,
            "failed": sum(r.failed for r in figures.by_name),
            "throughputPerMinute": round(completed / (window / 60_000), 3),
            "failureReasons": [{"error": e, "count": n} for e, n in figures.failure_reasons],
            "slowestJobTypes": [row for _, row in sorted(
                ((r.avg_processing_ms, row) for r, row in zip(figures.by_name, by_name, strict=True)
                 if r.avg_processing_ms is not None),
                key=lambda pair: pair[0], reverse=True,
            )][:10],
            "byName": by_name,
        }
        folder = Path(self.settings.report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        # Queue names may hold dots (emails.v2): the suffix is appended, never swapped in.
        stem = f"report-{queue}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
        json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "completed", "failed", "avgProcessingMs", "maxProcessingMs"])
            for row in report["byName"]:
                writer.writerow([row["name"], row["completed"], row["failed"],
                                 row["avgProcessingMs"], row["maxProcessingMs"]])
        return {"json": str(json_path.resolve()), "csv": str(csv_path.resolve()),
                "completed": report["completed"], "failed": report["failed"]}


def validate_payment_data(data: dict[str, Any]) -> None:
    amount = data.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise ValueError("data.amount must be a number above 0")
    if not isinstance(data.get("userId"), str | int) or isinstance(data.get("userId"), bool):
        raise ValueError("data.userId is required")
    if "currency" in data and not (isinstance(data["currency"], str) and len(data["currency"]) == 3):
        raise ValueError("data.currency must be a 3-letter code")


def validate_report_data(data: dict[str, Any]) -> None:
    window = data.get("windowMs", 1)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_DELAY_MS:
        raise ValueError(f"data.windowMs must be a whole number of ms from 1 to {MAX_DELAY_MS}")
    if "queue" in data and not is_queue_name(data["queue"]):
        raise ValueError("data.queue must be a queue name")


def _iso(ms: int) -> str:
    return to_iso(ms) or ""
