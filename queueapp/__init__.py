"""queueapp: a single-node job queue appliance over a durable SQLite store."""

from .clock import Clock, FakeClock  # noqa: E402
from .model import Job, JobState, Priority  # noqa: E402
from .priority import calculate_priority, get_job_options  # noqa: E402
from .retry import BackoffPolicy, calculate_backoff_delay, get_default_strategy  # noqa: E402
from .service import QueueService  # noqa: E402
from .store import SqliteStore, open_store  # noqa: E402
from .version import __version__
from .workers import HandlerRegistry, JobContext, UnrecoverableError, registry  # noqa: E402

__all__ = [
    "__version__",
    "BackoffPolicy",
    "Clock",
    "FakeClock",
    "HandlerRegistry",
    "Job",
    "JobContext",
    "JobState",
    "Priority",
    "QueueService",
    "SqliteStore",
    "UnrecoverableError",
    "calculate_backoff_delay",
    "calculate_priority",
    "get_default_strategy",
    "get_job_options",
    "open_store",
    "registry",
]
