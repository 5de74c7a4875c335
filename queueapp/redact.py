"""Secrets never leave the appliance in a job's error, an answer or a log line.

Two kinds are hidden: credentials inside URLs (``https://user:pass@host`` becomes
``https://***@host``), and the values of secret settings (the API token, the SMTP
password, the payment token), wherever they appear. Depends on nothing else.
"""

from __future__ import annotations

import re

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*(?::[^/\s@]*)?@")
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Hide ``value`` from now on (too short a value would hide ordinary words)."""
    if len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text
