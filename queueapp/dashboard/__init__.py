"""The dashboard at ``/ui/``: one page and one script, shipped in this package
(``static/``), that draw every view from the HTTP API in the browser. Nothing is
fetched from another host, and a Content-Security-Policy says so to the browser.

Server-side here: the files, the login page (a form; the token becomes the signed
session cookie of api/auth.py), logout, and ``/ui/session``, which tells the page
its role and the CSRF token its changes must carry."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..api.auth import SESSION_COOKIE, SESSION_S, Tokens, role_of
from ..jsonfast import dumps_bytes

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Access:
    tokens: Tokens | None  # None: the appliance has no token


ACCESS = web.AppKey("dashboard_access", Access)
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


def add_dashboard(app: web.Application, tokens: Tokens | None) -> None:
    app[ACCESS] = Access(tokens)
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
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required maxlength="1024" autofocus>
{message}
<button type="submit">Log in</button>
</form><p class="hint">The appliance's token, or its read-only token to look without changing anything.</p>
</main></body></html>
"""


async def _login_page(request: web.Request) -> web.Response:
    message = ""
    if "failed" in request.query:
        message = '<p class="field-error" role="alert">That token is not right.</p>'
    if request.app[ACCESS].tokens is None:
        message = '<p class="hint">This appliance has no token: <a href="/ui/">open the dashboard</a>.</p>'
    return web.Response(text=_LOGIN.format(message=message), content_type="text/html")


async def _login(request: web.Request) -> web.Response:
    tokens: Tokens | None = request.app[ACCESS].tokens
    if tokens is None:
        raise web.HTTPSeeOther("/ui/")
    if (request.content_length or 0) > MAX_LOGIN_BYTES:
        raise web.HTTPSeeOther("/ui/login?failed=1")
    form = await request.post()
    given = form.get("token")
    role = tokens.role_of_token(given) if isinstance(given, str) and given else None
    if role is None:
        raise web.HTTPSeeOther("/ui/login?failed=1")
    response = web.HTTPSeeOther("/ui/")
    response.set_cookie(SESSION_COOKIE, tokens.session(role), max_age=SESSION_S, path="/", httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


async def _logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def _session(request: web.Request) -> web.Response:
    """The page's role (admin or read) and the CSRF token its changes carry."""
    tokens: Tokens | None = request.app[ACCESS].tokens
    cookie = request.cookies.get(SESSION_COOKIE)
    csrf = tokens.csrf(cookie) if tokens is not None and cookie else None
    body = {"auth": tokens is not None, "role": role_of(request, tokens), "csrf": csrf}
    return web.Response(body=dumps_bytes(body), content_type="application/json")
