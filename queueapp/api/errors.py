"""One error shape for every failure:
``{"error": {"code": "...", "message": "...", "details": [...]}}``."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..errors import QueueAppError
from ..model import dumps

log = logging.getLogger("queueapp.api")

_HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    503: "store_unavailable",
}


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
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            message = f"request body is larger than {request.app['config'].max_body_bytes} bytes"
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "http_error"), message,
            headers={k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")},
        )
    except Exception:
        log.exception("unhandled error", extra={"event": "api.error", "path": request.path})
        return error_response(500, "internal_error", "internal error; see the appliance log")
