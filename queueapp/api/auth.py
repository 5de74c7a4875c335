"""Who a request is. With a token configured every request needs credentials (but
/livez and the dashboard's login page and assets): the token, the read-only
``read_token``, or an API key an admin made (access.py), as a bearer token; or the
dashboard's session cookie, which a login with any of them sets. What each may do
is api/rules.py's.

The session cookie holds who and its expiry, signed with HMAC-SHA256 under the
token (the read token for its sessions; a key's sessions also under the key's secret
hash): changing a token, or rotating or revoking a key, ends its sessions, and no
session is kept in memory. A change made with the cookie must also carry
``X-CSRF-Token`` (the page reads it from ``GET /ui/session``), so that another site
cannot make a browser act with it. Whatever the auth, a change sent by a browser
from another origin is refused.

Guessing is throttled per client address: credentials that are no one's (not a key
revoked or expired, which the appliance knows) count as a failed attempt, and an
address that made ``login_attempts_per_minute`` of them in a row (refilled at that
many a minute) gets 429 before its credentials are even read: a right guess then is
not told apart from a wrong one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..access import ADMIN_TOKEN, NOBODY, OPEN, READ_TOKEN, Principal
from ..networks import parse_networks
from ..service_keys import KeyDesk, Refused
from .errors import error_response
from .ratelimit import TokenBuckets, client_address

SESSION_COOKIE = "queueapp_session"
SESSION_S = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
KEY_SESSION = "key:"  # a key's session: "key:<id>.<expires>.<signature>"
ADMIN, READ = "admin", "read"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without credentials: liveness, and what a person needs to log in.
OPEN_PATHS = frozenset({"/livez", "/ui/login"})
OPEN_PREFIXES = ("/ui/static/",)
PRINCIPAL = web.RequestKey("principal", Principal)  # where a request keeps who it is


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
        return self.read if role == READ else self.admin

    def sign(self, role: str, text: str) -> str:
        """HMAC-SHA256 of ``text`` under the role's token, in hex."""
        return hmac.new(self._key(role).encode(), text.encode(errors="surrogateescape"), hashlib.sha256).hexdigest()

    def session(self, role: str, now: float | None = None, *, also: str = "") -> str:
        """A session cookie for ``role`` (admin, read, or ``key:<id>``); ``also``: a
        text the signature covers besides, that the cookie does not carry."""
        expires = int((time.time() if now is None else now) + SESSION_S)
        body = f"{role}.{expires}"
        return f"{body}.{self.sign(role, body + also)}"

    def session_role(self, cookie: str, now: float | None = None, *, also: str = "") -> str | None:
        """The role of a session cookie still good (signed over ``also`` too)."""
        role, _, rest = cookie.partition(".")
        expires, _, signature = rest.partition(".")
        if not (role in (ADMIN, READ) or role.startswith(KEY_SESSION)) or not self._key(role):
            return None
        expected = self.sign(role, f"{role}.{expires}{also}")
        if not hmac.compare_digest(signature.encode(errors="surrogateescape"), expected.encode()):
            return None
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return role

    def csrf(self, cookie: str) -> str:
        return self.sign(cookie.partition(".")[0], "csrf." + cookie)


class Authority:
    """Who a request's credentials make it: a token, a key, or no one."""

    def __init__(self, tokens: Tokens | None, keys: KeyDesk, trusted_proxies: str = "",
                 attempts_per_minute: int = 10) -> None:
        self.tokens = tokens
        self.keys = keys
        self.guesses = TokenBuckets(attempts_per_minute / 60, attempts_per_minute)
        self.trusted = parse_networks(trusted_proxies)

    def of_secret(self, given: str) -> Principal | Refused | None:
        """Who a token or key's secret is (as typed into the login form, or sent as a bearer)."""
        assert self.tokens is not None
        role = self.tokens.role_of_token(given)
        return self.keys.principal(given) if role is None else _token(role)

    def of_request(self, request: web.Request) -> Principal | Refused | None:
        """Who the request is (OPEN when there is no auth)."""
        tokens = self.tokens
        if tokens is None:
            return OPEN
        header = request.headers.get("Authorization")
        if header is not None:
            role = tokens.role_of_bearer(header.encode(errors="surrogateescape"))
            if role is not None:
                return _token(role)
            scheme, _, secret = header.partition(" ")
            return self.keys.principal(secret) if scheme.lower() == "bearer" else None
        cookie = request.cookies.get(SESSION_COOKIE)
        return None if cookie is None else self.of_session(cookie)

    def of_session(self, cookie: str) -> Principal | None:
        assert self.tokens is not None
        role = cookie.partition(".")[0]
        if role.startswith(KEY_SESSION):
            key_id = role[len(KEY_SESSION):]
            key = self.keys.active(key_id)
            if key is None or self.tokens.session_role(cookie, also=key.secret_hash) is None:
                return None
            return key.principal()
        role_now = self.tokens.session_role(cookie)
        return None if role_now is None else _token(role_now)

    def session_for(self, principal: Principal) -> str:
        assert self.tokens is not None
        if principal.key_id is not None:
            key = self.keys.get(principal.key_id)
            return self.tokens.session(f"{KEY_SESSION}{key.id}", also=key.secret_hash)
        return self.tokens.session(ADMIN if principal is ADMIN_TOKEN else READ)

    def wait_before_trying(self, request: web.Request) -> float:
        """Seconds this client must wait before its credentials are read again (0: now)."""
        return self.guesses.wait(client_address(request, self.trusted))

    def failed(self, request: web.Request) -> None:
        """A guess: credentials that are no one's."""
        self.guesses.take(client_address(request, self.trusted))


def _token(role: str) -> Principal:
    """Who a configured token's role makes its caller."""
    return ADMIN_TOKEN if role == ADMIN else READ_TOKEN


def principal_of(request: web.Request) -> Principal:
    """Who the request acts as (set by the auth middleware)."""
    found: Principal = request.get(PRINCIPAL, NOBODY)
    return found


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


def throttled(wait: float) -> web.Response:
    retry_after = str(max(1, math.ceil(wait)))
    return error_response(429, "too_many_attempts",
                          f"too many failed attempts to log in from this address; retry after {retry_after} s",
                          headers={"Retry-After": retry_after})


def _unauthorized(message: str) -> web.Response:
    return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="queueapp"'})


def _csrf_carried(request: web.Request, tokens: Tokens) -> bool:
    """A change made with the session cookie carries its CSRF token (logging out
    harms nobody and needs none)."""
    if request.path == "/ui/logout":
        return True
    expected = tokens.csrf(request.cookies.get(SESSION_COOKIE, ""))
    return hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(errors="surrogateescape"),
                               expected.encode())


def auth_middleware(authority: Authority) -> Any:
    """With no token, every request acts as OPEN (browsers from other origins still
    may not change anything)."""

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method not in SAFE_METHODS and cross_origin(request):
            return forbidden("a change sent by a page of another origin is refused")
        if authority.tokens is None:
            request[PRINCIPAL] = OPEN
        elif not _open(request.path):
            who = _identify(request, authority)
            if not isinstance(who, Principal):
                return who
            request[PRINCIPAL] = who
        return await handler(request)

    return check


def _identify(request: web.Request, authority: Authority) -> Principal | web.Response:
    """Who the request is, or the answer that it is no one (or must wait to try again)."""
    assert authority.tokens is not None
    by_cookie = "Authorization" not in request.headers
    has_credentials = not by_cookie or SESSION_COOKIE in request.cookies
    if has_credentials and (wait := authority.wait_before_trying(request)) > 0:
        return throttled(wait)
    who = authority.of_request(request)
    if isinstance(who, Refused):
        return _unauthorized(who.why)
    if who is None:
        if not by_cookie:
            authority.failed(request)  # an old session cookie is not a guess
        if _wants_page(request) and request.method == "GET":
            raise web.HTTPSeeOther("/ui/login")
        return _unauthorized("missing or wrong bearer token")
    if request.method not in SAFE_METHODS and by_cookie and not _csrf_carried(request, authority.tokens):
        return forbidden(f"a change made with the session cookie needs the {CSRF_HEADER} header")
    return who
