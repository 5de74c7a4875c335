"""Enqueue rate limit per client (the seed's "prevent queue flooding").

A token bucket per client address: ``rate`` enqueue requests per second on
average, bursts up to ``burst``. Only requests that add jobs are counted; reading,
leasing and completing are never limited, so a flood cannot starve the workers
that drain it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from .errors import error_response

LIMITED = frozenset({"/queues/jobs", "/queues/jobs/bulk", "/queues/jobs/schedule"})
MAX_CLIENTS = 10_000  # buckets kept; the least recently seen client is forgotten first


class TokenBuckets:
    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may pass, else the seconds until it could."""
        now = self.clock()
        tokens, stamp = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens >= 1:
            wait, tokens = 0.0, tokens - 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


def rate_limit_middleware(rate: float, burst: int) -> Any:
    buckets = TokenBuckets(rate, burst)

    @web.middleware
    async def limit(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path in LIMITED:
            wait = buckets.take(request.remote or "unknown")
            if wait > 0:
                retry_after = str(max(1, math.ceil(wait)))
                return error_response(
                    429, "rate_limited",
                    f"more than {rate:g} enqueue requests per second from this client; "
                    f"retry after {retry_after} s",
                    headers={"Retry-After": retry_after},
                )
        return await handler(request)

    return limit
