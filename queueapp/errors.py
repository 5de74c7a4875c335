"""Errors the service raises; the API maps each to one HTTP status and code."""

from __future__ import annotations

from typing import Any


class QueueAppError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(QueueAppError):
    status = 400
    code = "validation_error"


class NotFound(QueueAppError):
    status = 404
    code = "not_found"


class Conflict(QueueAppError):
    """The job is not in a state that allows the change, or a lease token is stale."""

    status = 409
    code = "conflict"


class StoreUnavailable(QueueAppError):
    """The store cannot take writes now (disk full, read-only, locked): nothing was stored."""

    status = 503
    code = "store_unavailable"
