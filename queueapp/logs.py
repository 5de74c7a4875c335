"""Structured log lines on stderr: one ``key=value`` line per notable event.

    ts=2026-11-27T21:00:00.000Z level=info event=server.started msg="listening" port=3000

Fields given with ``extra={...}`` become keys; ``event`` names what happened so that
lines can be filtered without parsing the message.
"""

from __future__ import annotations

import logging
import sys
import time

from .clock import to_iso
from .errors import StoreUnavailable
from .redact import redact

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_node: str | None = None  # a node of a cluster names itself on every line
# A store or a peer that cannot be reached is a condition, not a fault of the code:
# its line says why, without a traceback.
_conditions: tuple[type[BaseException], ...] = (StoreUnavailable, OSError)


def log_as_conditions(*kinds: type[BaseException]) -> None:
    """Errors of these kinds are logged by their message alone (a driver's "cannot
    connect now", say)."""
    global _conditions
    _conditions = (*_conditions, *kinds)


def name_node(node: str | None) -> None:
    """Every line from now on says which node of a cluster wrote it (None: no node)."""
    global _node
    _node = node


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={to_iso(int(record.created * 1000))}",
            f"level={record.levelname.lower()}",
        ]
        if _node is not None and "node" not in record.__dict__:
            parts.append(f"node={_quote(_node)}")
        event = record.__dict__.get("event")
        if event:
            parts.append(f"event={_quote(event)}")
        parts.append(f"msg={_quote(redact(record.getMessage()))}")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "event":
                parts.append(f"{key}={_quote(redact(str(value)))}")
        if record.exc_info:
            exc = record.exc_info[1]
            if isinstance(exc, _conditions):
                parts.append(f"error={_quote(redact(str(exc)))}")
            else:
                parts.append(f"exc={_quote(redact(self.formatException(record.exc_info)))}")
        return " ".join(parts)


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("queueapp")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # aiohttp's access log is one line per request: too much at the default level.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # A loop that cannot reach the store tries again every second: one line of each
    # kind every ten seconds tells the operator as much.
    handler.addFilter(ConditionsOncePerInterval(10.0))
    # asyncpg's pool says, with a traceback each time, that it cannot reconnect while
    # the database is down: one line a minute, in the same format, is enough.
    pool_log = logging.getLogger("asyncpg")
    pool_log.handlers[:] = [handler]
    pool_log.propagate = False
    floor_log = logging.getLogger("asyncpg.pool")  # a logger's filters see only its own records
    if not any(isinstance(f, OncePerInterval) for f in floor_log.filters):
        floor_log.addFilter(OncePerInterval("connection floor"))
    # The event loop's own errors, in the same format; a failing accept() (out of file
    # descriptors) once a minute rather than at every attempt.
    loop_log = logging.getLogger("asyncio")
    loop_log.handlers[:] = [handler]
    loop_log.propagate = False
    if not any(isinstance(f, OncePerInterval) for f in loop_log.filters):
        loop_log.addFilter(OncePerInterval("accept"))


class OncePerInterval(logging.Filter):
    """Let one record of each kind through per ``interval_s``, counting the rest; the
    next one let through says how many were held back. A record of no kind (``kind``
    answers None) always passes. The event loop logs a failed accept() (out of file
    descriptors) at every attempt, and a loop that cannot reach the store retries
    every second: neither must become a flood of log lines."""

    def __init__(self, marker: str, interval_s: float = 60.0) -> None:
        super().__init__()
        self.marker = marker
        self.interval_s = interval_s
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last let through, held back since)

    def kind(self, record: logging.LogRecord) -> str | None:
        """The records whose message holds ``marker`` are one kind."""
        return self.marker if self.marker in record.getMessage() else None

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self.kind(record)
        if kind is None:
            return True
        now = time.monotonic()
        last, held = self._seen.get(kind, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._seen[kind] = (last, held + 1)
            return False
        self._seen[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more since the last report)"
            record.args = ()
        return True


class ConditionsOncePerInterval(OncePerInterval):
    """Records whose error is a condition (the store unreachable, see
    ``log_as_conditions``) are a kind per event; faults of the code always pass."""

    def __init__(self, interval_s: float) -> None:
        super().__init__("", interval_s)

    def kind(self, record: logging.LogRecord) -> str | None:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, _conditions):
            return None
        return str(record.__dict__.get("event", record.getMessage()))
