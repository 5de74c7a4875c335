"""The ``http`` job type: call a URL, and map the answer to the job's outcome.

2xx completes (the result has the status and the body); 5xx, timeouts and
connection errors retry with the job's backoff; 429 retries after the server's
Retry-After (at most a day); any other 4xx fails for good. Every request carries an
``Idempotency-Key`` header with the job id, so a retried call can be recognised.
Where it may connect is the destination policy's to say (destinations.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from ..retry import MAX_RETRY_AFTER_MS
from ..store.transitions import CALLBACK_QUEUE
from .destinations import DestinationPolicy, DestinationRefused, PolicyResolver
from .registry import JobContext, JobFailed, RetryLater, UnrecoverableError

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
DEFAULT_TIMEOUT_MS = 30_000
MAX_RESULT_BODY = 65_536  # characters of the answer kept in the job's result


def validate_http_data(data: dict[str, Any]) -> None:
    """Refuse at enqueue what can never succeed (raised as ValueError)."""
    url = data.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError("data.url is required: the URL to call")
    check_url(url, "data.url")
    method = data.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ValueError(f"data.method must be one of {', '.join(sorted(METHODS))}")
    headers = data.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("data.headers must be an object of strings")
    timeout = data.get("timeoutMs", DEFAULT_TIMEOUT_MS)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 600_000:
        raise ValueError("data.timeoutMs must be a whole number of ms from 1 to 600000")
    if "sign" in data:
        # Signing is the appliance's word that it sent the body: a producer who could
        # ask for it could have any body signed (a forged "job completed").
        raise ValueError("data.sign is not accepted: only the appliance's own completion callbacks are signed")


def check_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{field} must be an http:// or https:// URL, not {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise ValueError(f"{field} has no host")




def retry_after_ms(value: str | None, now: float | None = None) -> int | None:
    """Retry-After as seconds or as an HTTP date, at most ``MAX_RETRY_AFTER_MS``: the
    server called decides when to try again, within reason."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(int(value[:12]) * 1000, MAX_RETRY_AFTER_MS)
    try:
        when = email.utils.parsedate_to_datetime(value)
        wait = (when.timestamp() - (now or time.time())) * 1000
    except (TypeError, ValueError, OverflowError):
        return None
    return int(min(max(0.0, wait), MAX_RETRY_AFTER_MS))


MAX_REDIRECTS = 5


class HttpCaller:
    """Connection pools for built-in jobs that call HTTP: one for the operator's own
    URLs, and one whose every connection passes the destination policy (``http``
    jobs, whose URL comes from whoever enqueued them)."""

    def __init__(self, policy: DestinationPolicy | None = None) -> None:
        self.policy = policy or DestinationPolicy()
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def session(self, checked: bool) -> aiohttp.ClientSession:
        found = self._sessions.get(checked)
        if found is None or found.closed:
            connector = aiohttp.TCPConnector(resolver=PolicyResolver(self.policy)) if checked else None
            found = self._sessions[checked] = aiohttp.ClientSession(connector=connector)
        return found

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    async def call(
        self, job: JobContext, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
        body: Any = None, timeout_ms: int = DEFAULT_TIMEOUT_MS, checked: bool = True,
    ) -> dict[str, Any]:
        """Call ``url`` and map the answer to the job's outcome. ``checked``: the
        destination policy applies to the URL and to every redirect."""
        sent = {"Idempotency-Key": job.id, **_trace_headers(job), **(headers or {})}
        method = method.upper()
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return await self._follow(url, method, sent, body, checked)
        except ValueError as exc:
            raise UnrecoverableError(f"{method} {url}: {exc}") from None
        except DestinationRefused as exc:
            raise UnrecoverableError(f"{method} {url} refused: {exc}") from None
        except TimeoutError:
            raise JobFailed(f"{method} {url} timed out after {timeout_ms} ms") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DestinationRefused):
                raise UnrecoverableError(f"{method} {url} refused: {exc.os_error}") from None
            raise JobFailed(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise JobFailed(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None

    async def _follow(
        self, url: str, method: str, headers: dict[str, str], body: Any, checked: bool
    ) -> dict[str, Any]:
        """The request, following redirects by hand so that each hop is checked."""
        for _ in range(MAX_REDIRECTS + 1):
            if checked:
                self.policy.check_literal(URL(url).host or "")
            async with self.session(checked).request(
                method, url, headers=headers, allow_redirects=False, **_body_args(body),
            ) as response:
                location = response.headers.get("Location")
                if response.status in (301, 302, 303, 307, 308) and location:
                    url = str(URL(url).join(URL(location)))
                    check_url(url, "redirect")
                    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                        method, body = "GET", None
                    continue
                text = await response.text(errors="replace")
                return _outcome(response.status, response.headers.get("Retry-After"), text)
        raise UnrecoverableError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")


def _body_args(body: Any) -> dict[str, Any]:
    if isinstance(body, str):
        return {"data": body}
    return {} if body is None else {"json": body}


def _outcome(status: int, retry_after: str | None, text: str) -> dict[str, Any]:
    snippet = text[:200]
    if 200 <= status < 300:
        return {"status": status, "body": _body(text)}
    if status == 429:
        delay = retry_after_ms(retry_after)
        if delay is not None:
            raise RetryLater(f"HTTP 429, retry after {delay} ms: {snippet}", delay)
        raise JobFailed(f"HTTP 429: {snippet}")
    if status >= 500:
        raise JobFailed(f"HTTP {status}: {snippet}")
    raise UnrecoverableError(f"HTTP {status}: {snippet}")


def _body(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text[:MAX_RESULT_BODY]


def _trace_headers(job: JobContext) -> dict[str, str]:
    """The attempt's trace, carried on to what it calls (W3C Trace Context)."""
    if job.traceparent is None:
        return {}
    return {"traceparent": job.traceparent, **({"tracestate": job.tracestate} if job.tracestate else {})}


async def http_job(caller: HttpCaller, job: JobContext, secret: str = "") -> dict[str, Any]:
    d = job.data
    headers, body = d.get("headers"), d.get("body")
    if d.get("sign") and job.queue == CALLBACK_QUEUE:  # a finished job's callback (store/transitions.py)
        if not secret:
            raise UnrecoverableError("a callback is signed with callback_secret, which is not set")
        body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        headers = {**(headers or {}), "Content-Type": "application/json", **signature_headers(secret, body)}
    return await caller.call(
        job, d["url"], method=d.get("method", "POST" if "body" in d else "GET"),
        headers=headers, body=body, timeout_ms=d.get("timeoutMs", DEFAULT_TIMEOUT_MS),
    )


SIGNATURE_HEADER = "X-Queueapp-Signature"
TIMESTAMP_HEADER = "X-Queueapp-Timestamp"


def signature_headers(secret: str, body: str, now: float | None = None) -> dict[str, str]:
    """``X-Queueapp-Timestamp`` (Unix seconds at sending) and ``X-Queueapp-Signature:
    v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the secret>``: a receiver
    recomputes it and refuses old timestamps, so a replayed call is refused too."""
    stamp = str(int(time.time() if now is None else now))
    digest = hmac.new(secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1={digest}"}
