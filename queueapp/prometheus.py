"""``GET /metrics``, written by hand (a few dozen lines spare the appliance a
dependency), in the Prometheus text format (version 0.0.4) or, when the scraper
asks for it, in OpenMetrics 1.0.0: the same families, a counter's family named
without its ``_total``, the build as an ``info`` family, and ``# EOF`` at the end."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .dispatch import Dispatcher
from .histogram import Histogram
from .jsonfast import LIBRARY
from .model import JobState
from .store import CommitStats, ReplicaStatus, sqlite_version
from .version import __version__

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Family(NamedTuple):
    name: str  # a counter's with its _total, as the text format names it
    kind: str  # counter, gauge, histogram or info
    help: str
    samples: Sequence[str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> Family:
    return Family(name, kind, help_text, list(samples))


def _histogram(name: str, h: Histogram, **labels: str) -> list[str]:
    lines = [f"{name}_bucket{_labels(**labels, le=le)} {n}" for le, n in h.cumulative()]
    lines.append(f"{name}_sum{_labels(**labels)} {h.sum_s:.6f}")
    lines.append(f"{name}_count{_labels(**labels)} {h.total}")
    return lines


def _per_queue(name: str, histograms: dict[str, Histogram]) -> list[str]:
    return [line for q, h in histograms.items() for line in _histogram(name, h, queue=q)]


def render(dispatcher: Dispatcher, commits: CommitStats, sse_clients: int, build: dict[str, str], *,
           openmetrics: bool = False, replica: ReplicaStatus | None = None) -> str:
    families = _queue_families(dispatcher, commits, sse_clients) + _process_families() + [_build_family(build)]
    if replica is not None:
        families += _replica_families(replica, dispatcher.clock.now_ms())
    return (_openmetrics if openmetrics else _text)(families)


def _replica_families(replica: ReplicaStatus, now: int) -> list[Family]:
    """The database's copy (replicate_to): how far behind it is, and whether it fails."""
    folder = _labels(folder=replica.folder, mode=replica.mode)
    return [
        _family("queueapp_replica_lag_seconds", "gauge",
                "How far behind the replica's copy on its disk is (0: it has every commit).",
                [f"queueapp_replica_lag_seconds{folder} {replica.lag_ms(now) / 1000:.3f}"]),
        _family("queueapp_replica_failing", "gauge", "1 while the replica cannot be written.",
                [f"queueapp_replica_failing{folder} {int(replica.error is not None)}"]),
        _family("queueapp_replica_commits_total", "counter", "Commits shipped to the replica.",
                [f"queueapp_replica_commits_total{folder} {replica.commits}"]),
        _family("queueapp_replica_bytes_total", "counter", "Bytes of write-ahead log shipped to the replica.",
                [f"queueapp_replica_bytes_total{folder} {replica.bytes}"]),
    ]


def _queue_families(dispatcher: Dispatcher, commits: CommitStats, sse_clients: int) -> list[Family]:
    queues = sorted(dispatcher.queues)
    m = {q: dispatcher.ledger.metrics.of(q) for q in queues}
    out = [
        _family("queueapp_jobs", "gauge", "Jobs by queue and state.", (
            f"queueapp_jobs{_labels(queue=q, state=str(s))} {m[q].counts[s]}" for q in queues for s in JobState)),
        _family("queueapp_queue_paused", "gauge", "1 when the queue is paused.", (
            f"queueapp_queue_paused{_labels(queue=q)} {int(dispatcher.queues[q].paused)}" for q in queues)),
    ]
    for name, attr, text in (
        ("queueapp_jobs_added_total", "added_total", "Jobs enqueued (rate() of it is the enqueue rate)."),
        ("queueapp_jobs_completed_total", "completed_total", "Jobs completed."),
        ("queueapp_jobs_failed_total", "failed_total", "Jobs failed for good (dead-lettered)."),
        ("queueapp_jobs_retried_total", "retried_total", "Failed attempts that were retried."),
    ):
        out.append(_family(name, "counter", text, (f"{name}{_labels(queue=q)} {getattr(m[q], attr)}"
                                                    for q in queues)))
    out += [
        _family("queueapp_job_processing_seconds", "histogram", "Time from start to finish of finished jobs.",
                _per_queue("queueapp_job_processing_seconds", {q: m[q].processing for q in queues})),
        _family("queueapp_job_wait_seconds", "histogram",
                "Time from due (enqueue, or end of delay or backoff) to start.",
                _per_queue("queueapp_job_wait_seconds", {q: m[q].waiting_time for q in queues})),
        _family("queueapp_store_commit_seconds", "histogram",
                "Latency of store commits (group commits: many changes each).",
                _histogram("queueapp_store_commit_seconds", commits.latency)),
        _family("queueapp_store_changes_total", "counter", "Changes committed to the store.",
                [f"queueapp_store_changes_total {commits.ops}"]),
        _family("queueapp_event_stream_clients", "gauge", "Clients of GET /queues/events.",
                [f"queueapp_event_stream_clients {sse_clients}"]),
        _family("queueapp_lease_polls_waiting", "gauge", "Lease requests waiting for a job (long polls).",
                [f"queueapp_lease_polls_waiting {dispatcher.leases.polls_waiting()}"]),
    ]
    return out


def _process_families() -> list[Family]:
    """The process's own, named as Prometheus's client libraries name them, so that
    the dashboards made for those work: CPU, resident memory, file descriptors, start."""
    times = os.times()
    out = [_family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.",
                   [f"process_cpu_seconds_total {times.user + times.system:.2f}"])]
    resident = _resident_bytes()
    if resident is not None:
        out.append(_family("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.",
                           [f"process_resident_memory_bytes {resident}"]))
    open_fds = _open_fds()
    if open_fds is not None:
        out.append(_family("process_open_fds", "gauge", "Open file descriptors.", [f"process_open_fds {open_fds}"]))
    out.append(_family("process_max_fds", "gauge", "The most file descriptors the process may open.",
                       [f"process_max_fds {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"]))
    out.append(_family("process_start_time_seconds", "gauge", "When the process started, in seconds since the epoch.",
                       [f"process_start_time_seconds {STARTED_AT:.2f}"]))
    return out


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # no /proc (macOS): the figure is left out rather than made up


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _start_time() -> float:
    """The process's start from /proc (the kernel's boot time plus its start in clock
    ticks), else the time this module was loaded (early in the start-up)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


STARTED_AT = _start_time()


def build_labels(store: str, event_loop: str) -> dict[str, str]:
    """What ``queueapp_build_info`` says of this build and process."""
    return {"version": __version__, "python": platform.python_version(), "sqlite": sqlite_version(),
            "store": store, "json": LIBRARY, "event_loop": event_loop}


def _build_family(labels: dict[str, str]) -> Family:
    return _family("queueapp_build_info", "info", "The running build: version, Python, SQLite, store, libraries.",
                   [f"queueapp_build_info{_labels(**labels)} 1"])


def _text(families: list[Family]) -> str:
    lines: list[str] = []
    for f in families:
        kind = "gauge" if f.kind == "info" else f.kind  # the text format has no info type
        lines += [f"# HELP {f.name} {f.help}", f"# TYPE {f.name} {kind}", *f.samples]
    return "\n".join(lines) + "\n"


# OpenMetrics names a family without the suffix its samples carry.
_SAMPLE_SUFFIX = {"counter": "_total", "info": "_info"}


def _openmetrics(families: list[Family]) -> str:
    lines: list[str] = []
    for f in families:
        name = f.name.removesuffix(_SAMPLE_SUFFIX.get(f.kind, ""))
        lines += [f"# TYPE {name} {f.kind}", f"# HELP {name} {f.help}", *f.samples]
    return "\n".join(lines) + "\n# EOF\n"
