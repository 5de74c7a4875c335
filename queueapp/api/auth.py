"""Who may do what. With a token configured every request needs it (but /livez and
the dashboard's login page and assets): as a bearer token, or as the dashboard's
session cookie, which a login with the token sets. A second token, ``read_token``,
may read everything and change nothing (403).

The session cookie holds the role and its expiry, signed with HMAC-SHA256 under the
role's token: changing a token ends its sessions, and no session is kept in memory.
A change made with the cookie must also carry ``X-CSRF-Token`` (the page reads it
from ``GET /ui/session``), so that another site cannot make a browser act with it.
Whatever the auth, a change sent by a browser from another origin is refused."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .errors import error_response

SESSION_COOKIE = "queueapp_session"
SESSION_S = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
ADMIN, READ = "admin", "read"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without credentials: liveness, and what a person needs to log in.
OPEN_PATHS = frozenset({"/livez", "/ui/login"})
OPEN_PREFIXES = ("/ui/static/",)


@dataclass(frozen=True)
class Tokens:
    admin: str
    read: str = ""

    def role_of_bearer(self, given: bytes) -> str | None:
        # compare_digest: the time taken does not tell how much of a token matched.
        found = None
        for role, token in ((ADMIN, self.admin), (READ, self.read)):
            if token and hmac.compare_digest(given, f"Bearer {token}".encode()):
                found = role
        return found

    def role_of_token(self, given: str) -> str | None:
        return self.role_of_bearer(f"Bearer {given}".encode(errors="surrogateescape"))

    def _key(self, role: str) -> str:
        return self.admin if role == ADMIN else self.read

    def _sign(self, role: str, text: str) -> str:
        """HMAC-SHA256 of ``text`` under the role's token, in hex."""
        return hmac.new(self._key(role).encode(), text.encode(errors="surrogateescape"), hashlib.sha256).hexdigest()

    def session(self, role: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + SESSION_S)
        body = f"{role}.{expires}"
        return f"{body}.{self._sign(role, body)}"

    def role_of_session(self, cookie: str, now: float | None = None) -> str | None:
        role, _, rest = cookie.partition(".")
        expires, _, signature = rest.partition(".")
        if role not in (ADMIN, READ) or not self._key(role):
            return None
        expected = self._sign(role, f"{role}.{expires}")
        if not hmac.compare_digest(signature.encode(errors="surrogateescape"), expected.encode()):
            return None
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return role

    def csrf(self, cookie: str) -> str:
        return self._sign(cookie.partition(".")[0], "csrf." + cookie)


def role_of(request: web.Request, tokens: Tokens | None) -> str | None:
    """The role a request's credentials give (ADMIN when there is no auth)."""
    if tokens is None:
        return ADMIN
    header = request.headers.get("Authorization")
    if header is not None:
        return tokens.role_of_bearer(header.encode(errors="surrogateescape"))
    cookie = request.cookies.get(SESSION_COOKIE)
    return None if cookie is None else tokens.role_of_session(cookie)


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _wants_page(request: web.Request) -> bool:
    return request.path == "/ui" or request.path.startswith("/ui/")


def cross_origin(request: web.Request) -> bool:
    """A browser's request from a page of another origin (another site, or another
    port of this host)."""
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not from a browser page, or a same-origin GET
    host = request.headers.get("Host", "")
    try:
        return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()
    except ValueError:
        return True


def forbidden(message: str) -> web.Response:
    return error_response(403, "forbidden", message)


def auth_middleware(tokens: Tokens | None) -> Any:
    """``tokens`` None: no auth, every request may read and change (browsers from
    other origins still may not change)."""

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        unsafe = request.method not in SAFE_METHODS
        if unsafe and cross_origin(request):
            return forbidden("a change sent by a page of another origin is refused")
        if tokens is None or _open(request.path):
            return await handler(request)
        role = role_of(request, tokens)
        by_cookie = "Authorization" not in request.headers
        if role is not None and unsafe and by_cookie and request.path != "/ui/logout":  # logging out harms nobody
            expected = tokens.csrf(request.cookies.get(SESSION_COOKIE, ""))
            if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(errors="surrogateescape"),
                                       expected.encode()):
                return forbidden(f"a change made with the session cookie needs the {CSRF_HEADER} header")
        if role is None:
            if _wants_page(request) and request.method == "GET":
                raise web.HTTPSeeOther("/ui/login")
            return error_response(401, "unauthorized", "missing or wrong bearer token",
                                  headers={"WWW-Authenticate": 'Bearer realm="queueapp"'})
        if role == READ and unsafe and request.path != "/ui/logout":
            return forbidden("the read-only token may look but not change anything")
        return await handler(request)

    return check
