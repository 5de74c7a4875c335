"""``GET /metrics`` in the Prometheus text format (version 0.0.4), written by hand:
a few dozen lines spare the appliance a dependency."""

from __future__ import annotations

from collections.abc import Iterable

from .dispatch import Dispatcher
from .histogram import Histogram
from .model import JobState
from .store import CommitStats


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def _histogram(name: str, h: Histogram, **labels: str) -> list[str]:
    lines = [f"{name}_bucket{_labels(**labels, le=le)} {n}" for le, n in h.cumulative()]
    lines.append(f"{name}_sum{_labels(**labels)} {h.sum_s:.6f}")
    lines.append(f"{name}_count{_labels(**labels)} {h.total}")
    return lines


def _per_queue(name: str, histograms: dict[str, Histogram]) -> list[str]:
    return [line for q, h in histograms.items() for line in _histogram(name, h, queue=q)]


def render(dispatcher: Dispatcher, commits: CommitStats, sse_clients: int) -> str:
    queues = sorted(dispatcher.queues)
    m = {q: dispatcher.ledger.metrics.of(q) for q in queues}
    out: list[str] = []
    out += _family("queueapp_jobs", "gauge", "Jobs by queue and state.", (
        f"queueapp_jobs{_labels(queue=q, state=str(s))} {m[q].counts[s]}" for q in queues for s in JobState
    ))
    out += _family("queueapp_queue_paused", "gauge", "1 when the queue is paused.", (
        f"queueapp_queue_paused{_labels(queue=q)} {int(dispatcher.queues[q].paused)}" for q in queues
    ))
    for name, attr, text in (
        ("queueapp_jobs_added_total", "added_total", "Jobs enqueued (rate() of it is the enqueue rate)."),
        ("queueapp_jobs_completed_total", "completed_total", "Jobs completed."),
        ("queueapp_jobs_failed_total", "failed_total", "Jobs failed for good (dead-lettered)."),
        ("queueapp_jobs_retried_total", "retried_total", "Failed attempts that were retried."),
    ):
        out += _family(name, "counter", text, (f"{name}{_labels(queue=q)} {getattr(m[q], attr)}" for q in queues))
    out += _family("queueapp_job_processing_seconds", "histogram",
                   "Time from start to finish of finished jobs.",
                   _per_queue("queueapp_job_processing_seconds", {q: m[q].processing for q in queues}))
    out += _family("queueapp_job_wait_seconds", "histogram",
                   "Time from due (enqueue, or end of delay or backoff) to start.",
                   _per_queue("queueapp_job_wait_seconds", {q: m[q].waiting_time for q in queues}))
    out += _family("queueapp_store_commit_seconds", "histogram",
                   "Latency of store commits (group commits: many changes each).",
                   _histogram("queueapp_store_commit_seconds", commits.latency))
    out += _family("queueapp_store_changes_total", "counter", "Changes committed to the store.",
                   [f"queueapp_store_changes_total {commits.ops}"])
    out += _family("queueapp_event_stream_clients", "gauge", "Clients of GET /queues/events.",
                   [f"queueapp_event_stream_clients {sse_clients}"])
    out += _family("queueapp_lease_polls_waiting", "gauge", "Lease requests waiting for a job (long polls).",
                   [f"queueapp_lease_polls_waiting {dispatcher.leases.polls_waiting()}"])
    return "\n".join(out) + "\n"
