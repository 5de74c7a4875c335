"""Errors the appliance raises, as the domain sees them; the API maps each to one
HTTP status and code (api/errors.py)."""

from __future__ import annotations

from typing import Any


class QueueAppError(Exception):
    def __init__(self, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(QueueAppError):
    """The input is wrong: nothing was changed."""


class NotFound(QueueAppError):
    """No such job or schedule."""


class Conflict(QueueAppError):
    """The job is not in a state that allows the change, or a lease token is stale."""


class StoreUnavailable(QueueAppError):
    """The store cannot take writes now (disk full, read-only, locked): nothing was stored."""
