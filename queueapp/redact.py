"""Secrets never leave the appliance in a job's error, an answer or a log line.

Three kinds are hidden: credentials inside URLs (``https://user:pass@host`` becomes
``https://***@host``), the values of URLs' query strings (``/pay?key=s3cret`` becomes
``/pay?key=***``: API keys and signed links travel there), and the values of secret
settings (the API token, the SMTP password, the payment token), wherever they appear.
Depends on nothing else.
"""

from __future__ import annotations

import re

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*(?::[^/\s@]*)?@")
# A URL's query, up to its fragment or the end of the URL (a space or a quote).
_URL_QUERY = re.compile(r"""(?i)(\b[a-z][a-z0-9+.-]*://[^\s"'<>?#]*\?)([^\s"'<>#]*)""")
_QUERY_VALUE = re.compile(r"(^|&)([^&=]*)(=?)[^&]*")
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Hide ``value`` from now on (too short a value would hide ordinary words)."""
    if len(value) >= 4:
        _secrets.add(value)


def _hide_value(item: re.Match[str]) -> str:
    """``key=value`` as ``key=***``; a bare item (``?s3cret``) as ``***``."""
    start, key, equals = item[1], item[2], item[3]
    if equals:
        return f"{start}{key}=***"
    return f"{start}***" if key else item[0]


def _hide_query(url: re.Match[str]) -> str:
    return url[1] + _QUERY_VALUE.sub(_hide_value, url[2])


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    if "?" in text:
        text = _URL_QUERY.sub(_hide_query, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text
