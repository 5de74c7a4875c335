"""Which names the appliance answers to (the ``allowed_hosts`` setting).

DNS rebinding: a web page on ``evil.example`` re-points its own name to 127.0.0.1,
and the browser then sends that page's requests to the appliance with ``Host`` and
``Origin`` both ``evil.example``. The cross-origin guard sees a same-origin request;
on an appliance without a token the page could pause queues or delete jobs. A
request whose ``Host`` the operator did not allow is refused before any route runs.

Allowed without saying so: ``localhost`` (and names under ``.localhost``), every
address literal (an address cannot be re-pointed, so no page can rebind one), and
the ``host`` the appliance listens on. ``allowed_hosts`` adds names (exact, any
case), ``.example.com`` for that domain and every name under it, or ``*`` for any
name (behind a proxy that checks names itself). ``/livez`` answers any name, for
load balancers that probe with a service name.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..networks import AllowedHosts
from .errors import error_response

OPEN_PATHS = frozenset({"/livez"})


def allowed_hosts_middleware(hosts: AllowedHosts) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in OPEN_PATHS or hosts.allows(request.headers.get("Host")):
            return await handler(request)
        return error_response(
            400, "host_not_allowed",
            "this appliance does not answer to that host name; add it to allowed_hosts if it is its own")

    return check
