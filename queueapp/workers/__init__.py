"""Running jobs: the handler registry and the in-process runner."""

from .registry import HandlerRegistry, JobContext, UnrecoverableError, registry

__all__ = ["HandlerRegistry", "JobContext", "UnrecoverableError", "registry"]
