"""The dashboard at ``/ui/``: one page and one script, shipped in this package
(``static/``), that draw every view from the HTTP API in the browser. Nothing is
fetched from another host, and a Content-Security-Policy says so to the browser.

Server-side here: the files, the login page (a form; a token or an API key becomes
the signed session cookie of api/auth.py, and failed attempts are throttled as a
bearer's are), logout, and ``/ui/session``, which tells the page who it is, what it
may do and in which queues, and the CSRF token its changes must carry."""

from __future__ import annotations

import hashlib
import math
import mimetypes
from pathlib import Path

from aiohttp import web

from ..access import ROLES, Principal
from ..api.auth import SESSION_COOKIE, SESSION_S, Authority, principal_of
from ..jsonfast import dumps_bytes

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


ACCESS = web.AppKey("dashboard_access", Authority)
FILES = web.AppKey("dashboard_files", dict)
MAX_LOGIN_BYTES = 4096


def _load_files() -> dict[str, tuple[bytes, str, str]]:
    """Every file of static/, read once: name -> (body, content type, ETag)."""
    files = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file():
            body = path.read_bytes()
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix == ".js":
                kind = "text/javascript"
            files[path.name] = (body, kind, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return files


def add_dashboard(app: web.Application, authority: Authority) -> None:
    app[ACCESS] = authority
    app[FILES] = _load_files()
    app.router.add_get("/ui", _to_index)
    app.router.add_get("/ui/login", _login_page)
    app.router.add_post("/ui/login", _login)
    app.router.add_post("/ui/logout", _logout)
    app.router.add_get("/ui/session", _session)
    app.router.add_get("/ui/static/{file}", _static)
    app.router.add_get("/ui/{tail:.*}", _index)
    app.on_response_prepare.append(_page_headers)


async def _page_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/ui"):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would make a form's Origin "null"
        response.headers.setdefault("Cache-Control", "no-cache")


async def _to_index(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/ui/")


def _file(request: web.Request, name: str) -> web.Response:
    found = request.app[FILES].get(name)
    if found is None:
        raise web.HTTPNotFound(text=f"no file {name}")
    body, kind, etag = found
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type=kind, headers={"ETag": etag})


async def _static(request: web.Request) -> web.Response:
    return _file(request, request.match_info["file"])


async def _index(request: web.Request) -> web.Response:
    """Every page of the dashboard is this one document; its script draws the view
    the address names."""
    return _file(request, "index.html")


_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · queueapp</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/static/app.css"></head>
<body class="login"><main class="login-box"><h1>queueapp</h1>
<form method="post" action="/ui/login">
<label for="token">Token or API key</label>
<input id="token" name="token" type="password" autocomplete="current-password" required maxlength="1024" autofocus>
{message}
<button type="submit">Log in</button>
</form><p class="hint">The appliance's token, its read-only token, or an API key: the dashboard then shows and
allows what the key may do.</p>
</main></body></html>
"""


async def _login_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    if "failed" in request.query:
        message = '<p class="field-error" role="alert">That token or key is not right.</p>'
    if request.app[ACCESS].tokens is None:
        message = '<p class="hint">This appliance has no token: <a href="/ui/">open the dashboard</a>.</p>'
    return web.Response(text=_LOGIN.format(message=message), content_type="text/html", status=status)


async def _login(request: web.Request) -> web.Response:
    authority: Authority = request.app[ACCESS]
    if authority.tokens is None:
        raise web.HTTPSeeOther("/ui/")
    wait = authority.wait_before_trying(request)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        response = await _login_page(request, f'<p class="field-error" role="alert">Too many failed attempts from'
                                               f' this address: try again in {seconds} s.</p>', 429)
        response.headers["Retry-After"] = str(seconds)
        return response
    if (request.content_length or 0) > MAX_LOGIN_BYTES:
        raise web.HTTPSeeOther("/ui/login?failed=1")
    form = await request.post()
    given = form.get("token")
    who = authority.of_secret(given) if isinstance(given, str) and given else None
    if not isinstance(who, Principal):
        if who is None:
            authority.failed(request)
        raise web.HTTPSeeOther("/ui/login?failed=1")
    response = web.HTTPSeeOther("/ui/")
    response.set_cookie(SESSION_COOKIE, authority.session_for(who), max_age=SESSION_S, path="/", httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


async def _logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def _session(request: web.Request) -> web.Response:
    """Who the page is: its name, roles and queues (null: every queue), with the role
    it mostly acts as (admin, or read when it may not change anything), and the CSRF
    token its changes carry."""
    authority: Authority = request.app[ACCESS]
    cookie = request.cookies.get(SESSION_COOKIE)
    csrf = authority.tokens.csrf(cookie) if authority.tokens is not None and cookie else None
    who = principal_of(request)
    body = {"auth": authority.tokens is not None, "role": "admin" if who.may("admin") else "read",
            "name": who.name, "roles": [r for r in ROLES if who.may(r)],
            "queues": None if who.queues is None else sorted(who.queues), "csrf": csrf}
    return web.Response(body=dumps_bytes(body), content_type="application/json")
