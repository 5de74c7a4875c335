"""An error's fingerprint: what stays of its message when the parts that differ from
one occurrence to the next are folded, so that failures of one cause group together
("device token 8f3a…" and "device token 91c2…" are one failure, not two).

Folded, in this order: e-mail addresses (``<email>``), URLs' query values (``?k=<v>``),
UUIDs (``<uuid>``), ids (``<id>``: hex or digit runs of 8 or more, and tokens:
runs of 12 or more letters and digits holding a digit), and numbers (``<n>``).
Quoted words stay: ``KeyError: 'price'`` and ``KeyError: 'to'`` are two causes.
What is left: the error's type and its words.
A group is named by ``error_group``, 16 hex characters of the fingerprint's hash,
kept with each failed attempt's job. Depends on nothing.
"""

from __future__ import annotations

import hashlib
import re

_FOLDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"(?<=[?&])([^=&\s#]+)=[^&\s#]*"), r"\1=<v>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    # ids: hex or digit runs of 8 or more, and tokens of 12 or more letters, digits,
    # '_' and '-' holding a digit; one placeholder, as "0001…" and "00a1…" are one kind
    (re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"), "<id>"),
    (re.compile(r"\b(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{12,}\b"), "<id>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
)
MAX_FINGERPRINT = 500


def fingerprint(message: str) -> str:
    """The message with its varying parts folded (see the module docstring)."""
    text = message[:2_000]
    for pattern, replacement in _FOLDS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())[:MAX_FINGERPRINT]


def error_group(message: str | None) -> str | None:
    """The name of the message's group: 16 hex characters of its fingerprint's hash."""
    if message is None:
        return None
    return hashlib.blake2b(fingerprint(message).encode(), digest_size=8).hexdigest()
