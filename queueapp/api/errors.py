"""One error shape for every failure:
``{"error": {"code": "...", "message": "...", "details": [...]}}``."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..errors import Conflict, NotFound, QueueAppError, StoreUnavailable, ValidationFailed
from ..jsonfast import dumps
from ..logs import OncePerInterval
from .keys import CONFIG

log = logging.getLogger("queueapp.api")
# A client that goes away mid-request (a producer closing its stream, a browser tab
# shut) is ordinary: one info line a minute, saying how many others left meanwhile.
_left = logging.getLogger("queueapp.api.client_left")
_left.addFilter(OncePerInterval("client left"))

_HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    503: "store_unavailable",
}


_DOMAIN: list[tuple[type[QueueAppError], int, str]] = [
    (ValidationFailed, 400, "validation_error"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (StoreUnavailable, 503, "store_unavailable"),
]


def code_of(exc: QueueAppError) -> tuple[int, str]:
    """The HTTP status and error code of a domain error."""
    for kind, status, code in _DOMAIN:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


def error_response(
    status: int, code: str, message: str, details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return web.Response(
        status=status, text=dumps(body), content_type="application/json", headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except QueueAppError as exc:
        status, code = code_of(exc)
        return error_response(status, code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            message = f"request body is larger than {request.app[CONFIG].max_body_bytes} bytes"
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "http_error"), message,
            headers={k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")},
        )
    except ConnectionError as exc:
        _left.info("client left before its answer", extra={
            "event": "api.client_left", "path": request.path, "reason": type(exc).__name__})
        # Nobody reads this answer; handing aiohttp one (not the exception) keeps it
        # from logging a traceback of its own.
        return error_response(499, "client_closed", "the client closed the connection")
    except Exception:
        log.exception("unhandled error", extra={"event": "api.error", "path": request.path})
        return error_response(500, "internal_error", "internal error; see the appliance log")
