"""Enqueue rate limit per client (the seed's "prevent queue flooding").

A token bucket per client address: ``rate`` requests that create jobs per second
on average, bursts up to ``burst``. Every request that creates jobs counts: enqueues,
bulk enqueues, scheduled jobs, schedules (each makes jobs for ever) and retries.
Reading, leasing and completing are never limited, so a flood cannot starve the
workers that drain it.

Behind a reverse proxy every request comes from the proxy's address: with
``trusted_proxies`` naming it, the client is the last address in
``X-Forwarded-For`` that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from ..networks import parse_networks
from .errors import error_response

LIMITED = frozenset({"/queues/jobs", "/queues/jobs/bulk", "/queues/jobs/stream", "/queues/jobs/schedule",
                     "/queues/jobs/actions",
                     "/queues/schedules"})
LIMITED_SUFFIXES = ("/retry", "/run")  # POST /queues/jobs/{id}/retry, /queues/schedules/{name}/run
MAX_CLIENTS = 10_000  # buckets kept; the least recently seen client is forgotten first


class TokenBuckets:
    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _filled(self, client: str, now: float) -> float:
        tokens, stamp = self._buckets.get(client, (float(self.burst), now))
        return min(self.burst, tokens + (now - stamp) * self.rate)

    def wait(self, client: str) -> float:
        """The seconds until ``client`` could pass (0: now), taking nothing."""
        tokens = self._filled(client, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, client: str) -> float:
        """0 when the request may pass, else the seconds until it could."""
        now = self.clock()
        tokens = self._filled(client, now)
        self._buckets.pop(client, None)
        if tokens >= 1:
            wait, tokens = 0.0, tokens - 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


def client_address(request: web.Request, trusted: list[Any]) -> str:
    """The client's address: the peer, or behind trusted proxies the nearest address
    in X-Forwarded-For that is not one of them."""
    peer = request.remote or "unknown"
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def rate_limit_middleware(rate: float, burst: int, trusted_proxies: str = "") -> Any:
    buckets = TokenBuckets(rate, burst)
    trusted = parse_networks(trusted_proxies)

    @web.middleware
    async def limit(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and (request.path in LIMITED or request.path.endswith(LIMITED_SUFFIXES)):
            wait = buckets.take(client_address(request, trusted))
            if wait > 0:
                retry_after = str(max(1, math.ceil(wait)))
                return error_response(
                    429, "rate_limited",
                    f"more than {rate:g} requests that create jobs per second from this client; "
                    f"retry after {retry_after} s",
                    headers={"Retry-After": retry_after},
                )
        return await handler(request)

    return limit
