"""Running jobs: the handler registry and the in-process runner."""

from .registry import (
    HandlerRegistry,
    JobContext,
    JobFailed,
    RetryLater,
    UnrecoverableError,
    registry,
)

__all__ = ["HandlerRegistry", "JobContext", "JobFailed", "RetryLater", "UnrecoverableError", "registry"]
