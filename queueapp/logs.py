"""Structured log lines on stderr: one ``key=value`` line per notable event.

    ts=2026-11-27T21:00:00.000Z level=info event=server.started msg="listening" port=3000

Fields given with ``extra={...}`` become keys; ``event`` names what happened so that
lines can be filtered without parsing the message.
"""

from __future__ import annotations

import logging
import sys

from .clock import to_iso

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


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
        event = record.__dict__.get("event")
        if event:
            parts.append(f"event={_quote(event)}")
        parts.append(f"msg={_quote(record.getMessage())}")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "event":
                parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
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
