"""Running jobs: the handler registry and the in-process runner."""

from .registry import HandlerRegistry, JobContext, RetryLater, UnrecoverableError, registry

__all__ = ["HandlerRegistry", "JobContext", "RetryLater", "UnrecoverableError", "registry"]
