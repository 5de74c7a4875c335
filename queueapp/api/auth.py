"""Bearer-token authentication, when a token is configured."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from .errors import error_response

OPEN_PATHS = frozenset({"/livez"})


def auth_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            # A header that is not UTF-8 arrives with surrogates: it is simply wrong.
            given = request.headers.get("Authorization", "").encode(errors="surrogateescape")
            # compare_digest: the time taken does not tell how much of the token matched.
            if not hmac.compare_digest(given, expected):
                return error_response(
                    401, "unauthorized", "missing or wrong bearer token",
                    headers={"WWW-Authenticate": 'Bearer realm="queueapp"'},
                )
        return await handler(request)

    return check
